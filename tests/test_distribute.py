"""Data-parallel training: mirrored over two logical CPU devices, two worker processes on 127.0.0.1, the sharded
input, checkpoints moving between distributed and single-device runs, and the errors of a bad setup."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

import distribute
import eval as eval_py
import export
import model
import reader
import train
import training.graph
import training.loop
from helpers import ROOT, usage_error, write_config, write_image_file
from utils import tf

FOUR_IMAGES = 'four'
PARAMETER_SERVER = json.dumps({'cluster': {'ps': ['a:1']}, 'task': {'type': 'ps', 'index': 0}})


def _four_image_config(workspace, **values):
    """4 of the workspace's images in their own folder and a config with global batch 4: every step then trains
    on all four, whatever the shuffle, so two runs can be compared step for step."""
    os.makedirs(FOUR_IMAGES)
    for i in range(4):
        shutil.copy('train/img%d.jpg' % i, FOUR_IMAGES)
    return write_config('tiny.yml', **{'batch_size': 4, 'epoch': 10, 'train_dir': FOUR_IMAGES, **values})


def _checkpoint(prefix):
    reader_ = tf.train.load_checkpoint(prefix)
    return {name: reader_.get_tensor(name) for name in reader_.get_variable_to_shape_map()}


def _assert_same_step(single_prefix, distributed_prefix, before_prefix):
    """The distributed run's checkpoint holds what the single-device step made from the same checkpoint before."""
    single, distributed = _checkpoint(single_prefix), _checkpoint(distributed_prefix)
    assert sorted(single) == sorted(distributed)  # the same names: the Adam slots, the global step
    weights = model.expected_transform_variables()
    for name, value in single.items():
        # Adam's moments scale with the gradient, so they catch a sum over replicas taken for a mean (a factor of 2
        # on every element). The replicas' summation order and oneDNN's threaded reductions round the gradients
        # differently: up to about 2e-6 of their largest value with AVX-512 kernels, 7e-5 seen with AVX2 ones on a
        # loaded machine. There a few elements of 150,000 differ more: single elements of the second moment (a
        # square) 0.5 % apart, and three of the first moment 1.1e-3 of its largest value, where the rounding
        # turned a ReLU on or off. So a few elements in ten thousand may differ beyond the tolerance.
        assert np.isfinite(distributed[name]).all(), name
        atol = 1e-3 * np.abs(value).max()
        apart = np.abs(distributed[name] - value)
        if name in weights:
            # A weight moves by Adam's normalized step, about the learning rate whatever the gradient's size. Where
            # a gradient is near zero that rounding can change the step by a few percent (seen: 2 %), and where it
            # is nearly zero flip its sign: up to twice the learning rate (seen: 1.4 times, on one element).
            atol = max(atol, 0.1 * training.graph.LEARNING_RATE)
            assert apart.max() <= 2.5 * training.graph.LEARNING_RATE, name
        assert (apart > atol + 2e-2 * np.abs(value)).mean() <= 1e-4, (name, apart.max(), atol)
    assert not np.allclose(single['conv1/conv/weight'], _checkpoint(before_prefix)['conv1/conv/weight'])


def test_mirrored_step_equals_the_single_device_step(workspace, monkeypatch, caplog):
    monkeypatch.setattr(training.loop, 'SUMMARY_EVERY', 1)
    caplog.set_level('INFO')
    config = _four_image_config(workspace)
    train.main(['-c', config, '--max_steps', '1'])
    shutil.copytree('models', 'mirrored_models')

    train.main(['-c', config, '--max_steps', '2'])
    mirrored_config = write_config('mirrored.yml', batch_size=4, epoch=10, train_dir=FOUR_IMAGES,
                                   model_path='mirrored_models')
    caplog.clear()
    train.main(['-c', mirrored_config, '--max_steps', '2', '--distribute', 'mirrored', '--devices', 'cpu:0,cpu:1'])
    assert '2 replicas, 2 images per replica per step' in caplog.text
    assert 'resumed from mirrored_models/tiny/fast-style-model.ckpt-1 at step 1' in caplog.text  # single -> mirrored

    _assert_same_step('models/tiny/fast-style-model.ckpt-2', 'mirrored_models/tiny/fast-style-model.ckpt-2',
                      'models/tiny/fast-style-model.ckpt-1')
    tags = {value.tag for path in os.listdir('mirrored_models/tiny') if path.startswith('events.')
            for event in tf.train.summary_iterator('mirrored_models/tiny/' + path) for value in event.summary.value}
    assert {'total_loss', 'losses/style_loss', 'style_losses/vgg_16/conv4/conv4_3'} <= tags

    # Mirrored -> single device, eval.py and export.py, from the distributed run's checkpoint.
    caplog.clear()
    train.main(['-c', mirrored_config, '--max_steps', '3'])
    assert 'resumed from mirrored_models/tiny/fast-style-model.ckpt-2 at step 2' in caplog.text
    eval_py.main(['--model_file', 'mirrored_models/tiny/fast-style-model.ckpt-2', '--image_file',
                  'train/img0.jpg', '--output', 'styled.png'])
    assert os.path.getsize('styled.png') > 0
    export.main(['--model_file', 'mirrored_models/tiny/fast-style-model.ckpt-2', '--output', 'frozen.pb'])
    assert os.path.getsize('frozen.pb') > 0


def test_mirrored_training_of_two_styles_trains_them_in_turn(workspace):
    write_image_file('style2.jpg', 44, 36, seed=9)
    config = _four_image_config(workspace, style_image=['style.jpg', 'style2.jpg'], mixed_precision=True)
    train.main(['-c', config, '--max_steps', '1', '--distribute', 'mirrored', '--devices', 'cpu:0,cpu:1'])
    scale = _checkpoint('models/tiny/fast-style-model.ckpt-1')['deconv3/style_scale']
    assert not np.all(scale[0] == 1) and np.all(scale[1] == 1)  # both replicas trained the first style
    train.main(['-c', config, '--max_steps', '2', '--distribute', 'mirrored', '--devices', 'cpu:0,cpu:1'])
    assert not np.all(_checkpoint('models/tiny/fast-style-model.ckpt-2')['deconv3/style_scale'][1] == 1)


def test_replicas_and_workers_read_different_images(tmp_path):
    # Eight solid images whose grey level names them; global batch 4 over 2 replicas.
    files = [str(tmp_path / ('%d.png' % i)) for i in range(8)]
    for i, path in enumerate(files):
        Image.new('RGB', (8, 8), (10 * i,) * 3).save(path)
    loader = reader.ImageLoader(len(files), 0.0, 8)

    def identity(image, height, width):
        return tf.cast(image, tf.float32)

    input_fn = reader.sharded_input_fn(files, 4, 8, 8, identity, loader)
    # Two workers of two replicas each: disjoint halves of the files.
    for worker in range(2):
        context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=worker, num_replicas_in_sync=4)
        with tf.Graph().as_default():
            batch = tf.data.make_one_shot_iterator(input_fn(context)).get_next()
            with tf.Session() as sess:
                seen = [int(sess.run(batch)[0, 0, 0, 0]) // 10 for _ in range(4)]
        assert sorted(seen) == list(range(worker, 8, 2))  # one pass over its own share
    # One process, two logical CPU devices: every step's 4 images are 4 different files, each epoch covers all.
    with tf.Graph().as_default():
        placement = distribute.place('mirrored', 'cpu:0,cpu:1', 4)
        iterator = placement.strategy.make_input_fn_iterator(input_fn)
        per_replica = placement.strategy.experimental_local_results(iterator.get_next())
        with placement.session() as sess:
            sess.run(iterator.initialize())
            epoch = []
            for _ in range(2):
                step = [int(v) // 10 for batch in sess.run(per_replica) for v in batch[:, 0, 0, 0]]
                assert len(set(step)) == 4
                epoch += step
    assert sorted(epoch) == list(range(8))


@pytest.mark.parametrize('argv, environ, message', [
    (['--distribute', 'multi_worker'], {}, 'needs the TF_CONFIG environment variable'),
    (['--distribute', 'multi_worker'], {'TF_CONFIG': '{"cluster": '}, 'TF_CONFIG is not a valid cluster'),
    (['--distribute', 'multi_worker'], {'TF_CONFIG': PARAMETER_SERVER}, 'uses "chief" and "worker" tasks'),
    (['--distribute', 'mirrored', '--devices', 'tpu:0'], {}, "unknown device 'tpu:0'"),
    (['--distribute', 'mirrored', '--devices', 'cpu:0,cpu:0'], {}, 'named twice'),
    (['--distribute', 'mirrored', '--devices', 'cpu:0,cpu:1,cpu:2'], {}, 'batch_size 2 does not split over 3'),
    (['--devices', 'cpu:0,cpu:1'], {}, '--devices applies to --distribute mirrored only'),
    (['--worker_timeout', '5'], {}, '--worker_timeout applies to --distribute multi_worker only'),
    (['--distribute', 'mirrored', '--devices', 'gpu:0'], {}, 'this machine has 0 GPUs'),
])
def test_setup_errors(workspace, capsys, monkeypatch, argv, environ, message):
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    if tf.config.list_physical_devices('GPU') and 'GPUs' in message:
        pytest.skip('this machine has a GPU')
    err = usage_error(train.main, ['-c', write_config('tiny.yml')] + argv, capsys)
    assert message in err
    assert not os.path.exists('models') and not os.path.exists('generated')  # nothing written yet


class Cluster:
    """Two train.py worker processes on 127.0.0.1, each in its own folder (only the chief's may get files),
    sharing the model folder through an absolute model_path as machines would through a shared file system."""

    def __init__(self, root, config):
        self.root, self.config = root, config
        self.tf_configs = distribute.local_cluster(2)

    def start(self, *argv):
        self.processes, self.logs = [], []
        for index in range(2):
            folder = os.path.join(self.root, 'worker%d' % index)
            os.makedirs(folder, exist_ok=True)
            log_path = os.path.join(self.root, 'worker%d.log' % index)
            with open(log_path, 'w') as log_file:
                self.processes.append(subprocess.Popen(
                    [sys.executable, os.path.join(ROOT, 'train.py'), '-c', self.config,
                     '--distribute', 'multi_worker'] + list(argv), cwd=folder, stdout=log_file,
                    stderr=subprocess.STDOUT, env=self._environment(self.tf_configs[index])))
            self.logs.append(log_path)

    @staticmethod
    def _environment(tf_config):
        # As in a user's shell: this process set TF_CPP_MIN_LOG_LEVEL when it imported TensorFlow.
        environment = {k: v for k, v in os.environ.items() if k != 'TF_CPP_MIN_LOG_LEVEL'}
        return dict(environment, TF_CONFIG=tf_config)

    def log(self, index):
        with open(self.logs[index]) as f:
            return f.read()

    def wait(self, timeout=300):
        codes = [process.wait(timeout) for process in self.processes]
        return codes, [self.log(i) for i in range(2)]

    def wait_for(self, index, text, timeout=300):
        deadline = time.time() + timeout
        while text not in self.log(index):
            assert time.time() < deadline and self.processes[index].poll() is None, self.log(index)
            time.sleep(0.2)

    def kill(self):
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait(60)


def test_two_workers_checkpoint_and_resume_after_a_kill(workspace):
    root = str(workspace)
    paths = {key: os.path.join(root, value) for key, value in [
        ('style_image', 'style.jpg'), ('model_path', 'models'), ('loss_model_file', 'vgg/vgg_16.ckpt'),
        ('train_dir', 'train')]}
    config = os.path.abspath(write_config('cluster.yml', epoch=1000, batch_size=4, **paths))
    folder = os.path.join(root, 'models', 'tiny')
    cluster = Cluster(root, config)
    try:
        # Past step 25, where every worker runs the summaries' all-reduces and the chief writes them.
        cluster.start('--max_steps', '26')
        codes, logs = cluster.wait()
        assert codes == [0, 0], logs
        assert 'worker 0 of 2 workers (the chief)' in logs[0] and 'worker 1 of 2 workers at' in logs[1]
        assert all('step 26/26' in text for text in logs)
        assert tf.train.latest_checkpoint(folder).endswith('fast-style-model.ckpt-26')
        assert [name for name in os.listdir(folder) if name.startswith('events.')]
        assert os.listdir(os.path.join(root, 'worker1')) == []  # only the chief writes
        assert os.path.isfile(os.path.join(root, 'worker0', 'generated', 'target_style_tiny.jpg'))

        cluster.start('--max_steps', '500', '--worker_timeout', '30')
        cluster.wait_for(1, 'step 30/500')
        cluster.processes[1].send_signal(signal.SIGKILL)
        codes, logs = cluster.wait()
        assert codes[0] == 2, logs[0]
        assert logs[0].strip().splitlines()[-1].startswith('error: lost contact with the other workers after step')
        assert 'fast-style-model.ckpt-26 is intact' in logs[0]

        cluster.start('--max_steps', '27')
        codes, logs = cluster.wait()
        assert codes == [0, 0], logs
        for text in logs:
            assert 'resumed from %s/fast-style-model.ckpt-26 at step 26' % folder in text
        assert tf.train.latest_checkpoint(folder).endswith('fast-style-model.ckpt-27')

        # Ctrl-C on one worker stops every worker after the next step; the chief saves that step.
        cluster.start('--max_steps', '500')
        cluster.wait_for(1, 'step 30/500')
        cluster.processes[1].send_signal(signal.SIGINT)
        codes, logs = cluster.wait()
        assert codes == [0, 0], logs
        signalled = re.search(r'stopped by SIGINT at step (\d+)', logs[1])
        told = re.search(r'stopped by a stop request on another worker at step (\d+)', logs[0])
        assert signalled and told and signalled.group(1) == told.group(1), logs
        assert tf.train.latest_checkpoint(folder).endswith('fast-style-model.ckpt-%s' % told.group(1))
    finally:
        cluster.kill()


def test_a_multi_worker_step_equals_the_single_device_step(workspace):
    root = str(workspace)
    config = os.path.abspath(_four_image_config(workspace, model_path=os.path.join(root, 'models'),
                                                style_image=os.path.join(root, 'style.jpg'),
                                                loss_model_file=os.path.join(root, 'vgg/vgg_16.ckpt'),
                                                train_dir=os.path.join(root, FOUR_IMAGES)))
    train.main(['-c', config, '--max_steps', '1'])
    shutil.copytree('models', 'single_models')
    single = write_config('single.yml', batch_size=4, epoch=10, train_dir=FOUR_IMAGES, model_path='single_models')
    train.main(['-c', single, '--max_steps', '2'])
    cluster = Cluster(root, config)  # global batch 4: each worker trains on two of the four images
    try:
        cluster.start('--max_steps', '2')
        codes, logs = cluster.wait()
        assert codes == [0, 0], logs
        assert all('resumed from %s/models/tiny/fast-style-model.ckpt-1 at step 1' % root in text for text in logs)
    finally:
        cluster.kill()
    _assert_same_step('single_models/tiny/fast-style-model.ckpt-2', 'models/tiny/fast-style-model.ckpt-2',
                      'single_models/tiny/fast-style-model.ckpt-1')


def test_workers_that_restore_different_checkpoints_stop(workspace):
    root = str(workspace)
    paths = {key: os.path.join(root, value) for key, value in [
        ('style_image', 'style.jpg'), ('loss_model_file', 'vgg/vgg_16.ckpt'), ('train_dir', 'train')]}
    shared = write_config('shared.yml', model_path=os.path.join(root, 'models'), **paths)
    assert train.main(['-c', shared, '--max_steps', '1']) is None
    # Each worker reads the model_path of its own folder's config: worker 1 sees no checkpoint.
    cluster = Cluster(root, 'cluster.yml')
    for index, model_path in enumerate([os.path.join(root, 'models'), 'models']):
        os.makedirs(os.path.join(root, 'worker%d' % index))
        write_config(os.path.join(root, 'worker%d' % index, 'cluster.yml'), model_path=model_path, **paths)
    try:
        cluster.start('--max_steps', '2')
        codes, logs = cluster.wait()
        assert codes == [2, 2], logs
        assert all('error: the workers restored different checkpoints' in text for text in logs)
    finally:
        cluster.kill()
