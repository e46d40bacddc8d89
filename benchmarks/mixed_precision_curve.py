"""Does mixed-precision training follow float32's loss curve? Trains twice from the same start on the same batches.

  python benchmarks/mixed_precision_curve.py -c conf/candy.yml --train_dir DIR [--steps 200] [--image_size 128]

Both runs use the same graph seed (the same initial weights and the same batch order) and differ only in the
session's precision (utils.session_config). Prints the total loss every --every steps for both, their relative
difference, and seconds per step; nothing is saved.
"""
import argparse
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import reader  # noqa: E402
import train  # noqa: E402
import training.graph  # noqa: E402
from config import load_config
from utils import ArgumentParser, computing_precision, session_config, tf  # noqa: E402


def loss_curve(config, filenames, styles, loss_net, reduced_precision, steps, every):
    """Total loss at every `every` steps and the mean seconds per step after the first."""
    loader = reader.ImageLoader(len(filenames), config.max_bad_fraction, config.image_size)
    curve = []
    with tf.Graph().as_default():
        tf.set_random_seed(0)
        ops = training.graph.build_graph(config, filenames, styles, loss_net, loader)
        init_fn = loss_net.init_fn()
        with tf.Session(config=session_config(reduced_precision)) as sess:
            sess.run(tf.global_variables_initializer())
            init_fn(sess)
            start = None
            for step in range(1, steps + 1):
                _, total = sess.run([ops.train_step, ops.losses['total']])
                start = start or time.time()
                if step % every == 0 or step == 1:
                    curve.append((step, float(total)))
    return curve, (time.time() - start) / max(steps - 1, 1)


def main():
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('-c', '--conf', required=True, help='a style config')
    parser.add_argument('--train_dir', required=True, help='training images')
    parser.add_argument('--steps', type=int, default=200, help='(default: %(default)s)')
    parser.add_argument('--every', type=int, default=20, help='print every this many steps (default: %(default)s)')
    parser.add_argument('--image_size', type=int, default=128, help='(default: %(default)s)')
    parser.add_argument('--batch_size', type=int, default=2, help='(default: %(default)s)')
    args = parser.parse_args()
    if computing_precision(True) == 'float32':
        parser.error('this CPU has no bfloat16 support (AVX512_BF16/AMX): both curves would be float32 '
                     '(run it on a CPU with AVX512_BF16 or AMX, or on a GPU)')
    config = load_config(args.conf)
    config.update(image_size=args.image_size, batch_size=args.batch_size)
    filenames = reader.list_images(args.train_dir)
    loss_net = train.loss_network_for(config)
    styles = train.style_targets(config, loss_net)
    float32, float32_seconds = loss_curve(config, filenames, styles, loss_net, False, args.steps, args.every)
    bf16, bf16_seconds = loss_curve(config, filenames, styles, loss_net, True, args.steps, args.every)
    print('| step | float32 total loss | mixed precision total loss | relative difference |')
    print('|---|---|---|---|')
    for (step, full), (_, reduced) in zip(float32, bf16):
        print('| %d | %.4g | %.4g | %+.2f %% |' % (step, full, reduced, 100 * (reduced - full) / full))
    print('\nseconds per step: float32 %.3f, mixed precision %.3f (ratio %.2f); %d images at %d px, batch %d'
          % (float32_seconds, bf16_seconds, bf16_seconds / float32_seconds, len(filenames), args.image_size,
             args.batch_size))


if __name__ == '__main__':
    main()
