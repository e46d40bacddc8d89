"""Training throughput on one device against data-parallel training, through train.py itself.

  python benchmarks/distributed_scaling.py [--image_size 128] [--batch_size 4] [--steps 30]

Rows: one device; --distribute mirrored over every local GPU (or two logical CPU devices without a GPU); and
--distribute multi_worker with two worker processes on 127.0.0.1. Images per second are train.py's own log
figures averaged over the windows after the first LOG_EVERY steps (graph building and first-run set-up left
out); memory is the peak resident set of each process, summed over the workers. Weights are random: same shapes,
same speed.
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile

import numpy as np
import yaml
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from benchmarks.processes import PeakProcess  # noqa: E402 (after the path it lives on)
from utils import ArgumentParser  # noqa: E402

STEP_LINE = re.compile(r'step (\d+)/\d+ .* ([\d.]+) img/s')


def make_workspace(folder, image_size, batch_size, steps):
    """A random VGG-16, 4 batches' worth of training images, a style image and the config; returns its path."""
    from nets import pretrained
    rng = np.random.default_rng(0)

    def photo(path, size):
        small = rng.integers(0, 256, (size // 8, size // 8, 3), dtype=np.uint8)
        Image.fromarray(small).resize((size, size), Image.BICUBIC).save(path, quality=90)
    os.makedirs(os.path.join(folder, 'train'))
    for i in range(4 * batch_size):
        photo(os.path.join(folder, 'train', '%d.jpg' % i), image_size + 64)
    photo(os.path.join(folder, 'style.jpg'), image_size)
    config = {'style_image': 'style.jpg', 'naming': 'bench', 'model_path': 'models', 'image_size': image_size,
              'batch_size': batch_size, 'epoch': steps, 'content_weight': 1.0, 'style_weight': 100.0,
              'tv_weight': 0.0, 'loss_model_file': pretrained.save_random_vgg(os.path.join(folder, 'vgg_16.ckpt')),
              'train_dir': 'train'}
    for key in ('style_image', 'model_path', 'train_dir'):
        config[key] = os.path.join(folder, config[key])
    path = os.path.join(folder, 'bench.yml')
    with open(path, 'w') as f:
        yaml.safe_dump(config, f)
    return path


def run_workers(config, steps, extra_args, worker_count=1):
    """Start `worker_count` train.py processes; returns (img/s after warm-up, summed peak GB, log of worker 0)."""
    import distribute
    tf_configs = distribute.local_cluster(worker_count)
    processes = []
    for index in range(worker_count):
        environment = {k: v for k, v in os.environ.items() if k != 'TF_CONFIG'}
        if worker_count > 1:
            environment['TF_CONFIG'] = tf_configs[index]
        processes.append(PeakProcess(
            [sys.executable, os.path.join(ROOT, 'train.py'), '-c', config, '--max_steps', str(steps)] + extra_args,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=environment, cwd=os.path.dirname(config)))
    logs, peak = [], 0.0
    for launched in processes:
        logs.append(launched.process.stdout.read().decode())
        if launched.wait():
            raise SystemExit('train.py failed:\n' + logs[-1][-3000:])
        peak += launched.peak_gb()
    rates = [float(rate) for step, rate in STEP_LINE.findall(logs[0]) if int(step) > 10]
    if not rates:
        raise SystemExit('no step after the warm-up in the log (raise --steps):\n' + logs[0][-3000:])
    return statistics.mean(rates), peak, logs[0]


def configurations():
    """(name, train.py arguments, worker processes) of each row."""
    from utils import tf
    gpus = len(tf.config.list_physical_devices('GPU'))
    devices = ','.join('gpu:%d' % i for i in range(gpus)) if gpus else 'cpu:0,cpu:1'
    return [('one device', [], 1),
            ('mirrored over %s' % devices, ['--distribute', 'mirrored', '--devices', devices], 1),
            ('multi_worker, 2 processes on 127.0.0.1', ['--distribute', 'multi_worker'], 2)]


def main():
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--image_size', type=int, default=128, help='training size (default: %(default)s)')
    parser.add_argument('--batch_size', type=int, default=4, help='global batch (default: %(default)s)')
    parser.add_argument('--steps', type=int, default=30,
                        help='steps per row, the first 10 are warm-up (default: %(default)s)')
    args = parser.parse_args()
    rows = []
    print('| configuration | img/s | speed-up | peak GB (all processes) |\n|---|---|---|---|', flush=True)
    for name, extra_args, workers in configurations():
        with tempfile.TemporaryDirectory() as scratch:
            config = make_workspace(scratch, args.image_size, args.batch_size, args.steps)
            rate, peak, _ = run_workers(config, args.steps, extra_args, workers)
        rows.append(rate)
        print('| %s | %.2f | %.2f | %.2f |' % (name, rate, rate / rows[0], peak), flush=True)
    print('(batch %d at %d px, %d steps per row, images per second averaged after step 10)'
          % (args.batch_size, args.image_size, args.steps))


if __name__ == '__main__':
    main()
