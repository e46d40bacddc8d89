"""Data-parallel training on TensorFlow's own distribution engine, in graph mode (tf.compat.v1.distribute).

  --distribute mirrored       one process, one replica per local GPU (or per device named with --devices);
                              variables mirrored, gradients all-reduced every step.
  --distribute multi_worker   one process per machine, configured with TF_CONFIG the usual way; every local GPU
                              of every worker is a replica, gradients all-reduced across the cluster
                              (collective ops over gRPC).

Both are synchronous: one step on N replicas with a global batch B computes the same update as one device on
the same B images. Variables keep their names, so checkpoints move freely between distributed and single-device
runs and load in eval.py and export.py.
"""
import json
import os
import re
import socket

from utils import UsageError, gpu_available, log, session_config, stderr_to_devnull, tf

MODES = ('none', 'mirrored', 'multi_worker')
_DEVICE = re.compile(r'^/?(?:device:)?(cpu|gpu):(\d+)$', re.IGNORECASE)
_TF_CONFIG_EXAMPLE = ('e.g. TF_CONFIG=\'{"cluster": {"worker": ["host1:2222", "host2:2222"]}, '
                      '"task": {"type": "worker", "index": 0}}\'')


class Placement:
    """Where training runs: the strategy (None for one device), the session's target and options, and whether
    this process is the chief, the one that writes checkpoints, summaries and the style target image."""

    def __init__(self, strategy=None, target='', config=None, is_chief=True, description='one device',
                 deadline=None):
        self.strategy, self.target, self.config = strategy, target, config
        self.is_chief, self.description, self.deadline = is_chief, description, deadline

    @property
    def num_replicas(self):
        return self.strategy.num_replicas_in_sync if self.strategy else 1

    def session(self):
        return tf.Session(self.target, config=self.config)


class StepDeadline:
    """How long a multi-worker step may wait for the other workers: a worker that died leaves the others
    blocked in an all-reduce, and the step's timeout turns that into an error. The first step has none (it waits
    for every worker to start); later ones get `seconds`, or by default 20 times the slowest step so far and at
    least MIN_SECONDS."""

    MIN_SECONDS = 120

    def __init__(self, seconds=None):
        self.fixed, self.slowest = seconds, None

    def seconds(self):
        return self.fixed or max(self.MIN_SECONDS, 20 * self.slowest)

    def run_options(self):
        if self.slowest is None:
            return None
        return tf.RunOptions(timeout_in_ms=int(self.seconds() * 1000))

    def record(self, step_seconds):
        self.slowest = max(self.slowest or 0, step_seconds)


def parse_devices(text):
    """'cpu:0,cpu:1' or 'gpu:0,gpu:1' -> ['/device:CPU:0', '/device:CPU:1'] (also '/gpu:0', 'GPU:1')."""
    devices = []
    for name in (part.strip() for part in text.split(',') if part.strip()):
        match = _DEVICE.match(name)
        if not match:
            raise UsageError('unknown device %r in --devices (name them like gpu:0,gpu:1, or cpu:0,cpu:1 for '
                             'logical CPU devices)' % name)
        device = '/device:%s:%d' % (match.group(1).upper(), int(match.group(2)))
        if device in devices:
            raise UsageError('device %s named twice in --devices (name each device once)' % name)
        devices.append(device)
    if not devices:
        raise UsageError('--devices is empty (name them like gpu:0,gpu:1)')
    return devices


def place(mode, devices, batch_size, reduced_precision=False, worker_timeout=None):
    """The Placement for a --distribute mode.

    Args:
      mode: one of MODES.
      devices: --devices as given (mirrored only), or None for every local GPU.
      batch_size: the global batch, split evenly over the replicas.
      reduced_precision: the session's mixed precision (utils.session_config).
      worker_timeout: seconds a multi-worker step waits for the others (StepDeadline; None: automatic).

    Raises:
      UsageError: unknown devices, no GPU to mirror over, a batch that does not split, a missing or malformed
        TF_CONFIG, a port that cannot be opened.
    """
    config = session_config(reduced_precision)
    if worker_timeout is not None and mode != 'multi_worker':
        raise UsageError('--worker_timeout applies to --distribute multi_worker only')
    if devices and mode != 'mirrored':
        raise UsageError('--devices applies to --distribute mirrored only (multi_worker uses every GPU of each '
                         'worker)')
    if mode == 'none':
        return Placement(config=config)
    if mode == 'mirrored':
        placement = _mirrored(parse_devices(devices) if devices else None, config)
    else:
        placement = _multi_worker(config)
        placement.deadline = StepDeadline(worker_timeout)
    if batch_size % placement.num_replicas:
        raise UsageError('batch_size %d does not split over %d replicas (make batch_size a multiple of %d)'
                         % (batch_size, placement.num_replicas, placement.num_replicas))
    log.info('data-parallel training: %s, %d replicas, %d images per replica per step', placement.description,
             placement.num_replicas, batch_size // placement.num_replicas)
    return placement


def _mirrored(devices, config):
    if devices is None:
        if not gpu_available():
            raise UsageError('--distribute mirrored found no GPU (name devices with --devices, e.g. cpu:0,cpu:1 '
                             'for logical CPU devices)')
        devices = ['/device:GPU:%d' % i for i in range(len(tf.config.list_physical_devices('GPU')))]
    _check_gpus_exist(devices)
    # Logical CPU devices: the session splits the one CPU into as many as are named.
    cpus = [int(d.rsplit(':', 1)[1]) for d in devices if 'CPU' in d]
    if cpus:
        config.device_count['CPU'] = max(cpus) + 1
    strategy = tf.distribute.MirroredStrategy(devices)
    config = strategy.update_config_proto(config)
    return Placement(strategy, '', config, True, 'mirrored on ' + ', '.join(d.split('device:')[1] for d in devices))


def _check_gpus_exist(devices):
    count = len(tf.config.list_physical_devices('GPU'))
    for device in devices:
        if 'GPU' in device and int(device.rsplit(':', 1)[1]) >= count:
            raise UsageError('%s named in --devices, but this machine has %d GPU%s (name existing devices, or '
                             'cpu:0,cpu:1 for logical CPU devices)' % (device.split('device:')[1], count,
                                                                       '' if count == 1 else 's'))


def _multi_worker(config):
    cluster, task_type, task_index = _read_tf_config()
    strategy = tf.distribute.experimental.MultiWorkerMirroredStrategy()
    config = strategy.update_config_proto(config)
    address = cluster[task_type][task_index]
    try:
        with stderr_to_devnull():  # gRPC's own lines about the port; the error below says it in one
            server = tf.distribute.Server(tf.train.ClusterSpec(cluster), job_name=task_type, task_index=task_index,
                                          config=config, start=True)
    except (tf.errors.OpError, ValueError) as error:
        raise UsageError('cannot serve %s for %s %d (%s); free that port or change TF_CONFIG'
                         % (address, task_type, task_index, str(error).strip().splitlines()[0])) from None
    workers = sum(len(cluster[job]) for job in ('chief', 'worker') if job in cluster)
    is_chief = strategy.extended.should_checkpoint
    description = '%s %d of %d workers%s at %s' % (task_type, task_index, workers, ' (the chief)' if is_chief
                                                   else '', address)
    placement = Placement(strategy, server.target, config, is_chief, description)
    placement.server = server  # kept alive as long as the placement
    return placement


def _read_tf_config():
    """(cluster dict, task type, task index) from the TF_CONFIG environment variable, checked."""
    text = os.environ.get('TF_CONFIG')
    if not text:
        raise UsageError('--distribute multi_worker needs the TF_CONFIG environment variable on every worker '
                         '(%s)' % _TF_CONFIG_EXAMPLE)
    try:
        value = json.loads(text)
        cluster, task = value['cluster'], value['task']
        task_type, task_index = task['type'], int(task['index'])
        address = cluster[task_type][task_index]
    except (ValueError, KeyError, TypeError, IndexError) as error:
        raise UsageError('TF_CONFIG is not a valid cluster description (%s: %s); it needs "cluster" with the '
                         'workers\' host:port lists and this process\'s "task" (%s)'
                         % (type(error).__name__, error, _TF_CONFIG_EXAMPLE)) from None
    unknown = set(cluster) - {'chief', 'worker'}
    if unknown or task_type not in ('chief', 'worker') or not isinstance(address, str):
        raise UsageError('TF_CONFIG: multi_worker training uses "chief" and "worker" tasks with "host:port" '
                         'addresses, got %s for task %s (%s)' % (sorted(cluster), task, _TF_CONFIG_EXAMPLE))
    return cluster, task_type, task_index


def local_cluster(count):
    """TF_CONFIG values for `count` worker processes on this machine, on free ports (worker 0 the chief): for
    trying multi_worker out on one machine, as the tests and benchmarks do."""
    sockets = [socket.socket() for _ in range(count)]
    for each in sockets:
        each.bind(('127.0.0.1', 0))
    addresses = ['127.0.0.1:%d' % each.getsockname()[1] for each in sockets]
    for each in sockets:
        each.close()
    return [json.dumps({'cluster': {'worker': addresses}, 'task': {'type': 'worker', 'index': index}})
            for index in range(count)]
