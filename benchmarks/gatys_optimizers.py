"""Adam against L-BFGS for the Gatys method: the loss each reaches after the same number of seconds.

  python benchmarks/gatys_optimizers.py --content img/test.jpg --style img/wave.jpg \
      --loss_model_file pretrained/vgg_16.ckpt [--max_size 512]

Both start from the same image with the same losses (stylize.py's defaults); the table shows each optimizer's
total loss at common points in time, its seconds per iteration, and the ratio of the two losses.
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from utils import ArgumentParser  # noqa: E402 (after the path it lives on)

import gatys  # noqa: E402  (after the path: the benchmark runs from a checkout)
import stylize  # noqa: E402  (after the path: the benchmark runs from a checkout)
from nets.loss_network import LossNetwork  # noqa: E402
from images import read_image  # noqa: E402

ITERATIONS = {'adam': 100, 'lbfgs': 50}


class Trace(stylize.Progress):
    """Records (seconds since start, total loss) after every iteration."""

    def __init__(self, iterations):
        super().__init__(iterations, '', 0)
        self.start, self.points = time.time(), []

    def update(self, step, values, pixels=None):
        self.points.append((time.time() - self.start, float(values['total'])))
        super().update(step, values, pixels)

    def loss_at(self, seconds):
        """The best loss reached by `seconds`, or None before the first iteration ended."""
        reached = [loss for t, loss in self.points if t <= seconds]
        return min(reached) if reached else None


def run(optimizer, options):
    args = stylize.parse_args(options + ['--optimizer', optimizer, '--iterations', str(ITERATIONS[optimizer])])
    content = read_image(args.content)
    content = stylize.resize(content, *stylize.result_size(*content.shape[:2], args.max_size, args.width, args.height))
    style = stylize.resize_long_side(read_image(args.style[0]), max(content.shape[:2]))
    features = LossNetwork('vgg_16', args.content_layers + args.style_layers, args.loss_model_file, 'vgg_16/fc')
    targets = gatys.compute_targets(features, content, [style], stylize.recipe_of(args))
    trace = Trace(args.iterations)
    gatys.optimize(features, stylize.initial_image(args.init, content, style, args.seed), targets,
                     stylize.recipe_of(args), trace, args.optimizer, args.iterations, args.learning_rate)
    trace.close()
    return trace


def main():
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--content', required=True)
    parser.add_argument('--style', required=True)
    parser.add_argument('--loss_model_file', default='pretrained/vgg_16.ckpt')
    parser.add_argument('--max_size', default='512')
    args = parser.parse_args()
    options = ['--content', args.content, '--style', args.style, '--loss_model_file', args.loss_model_file,
               '--max_size', args.max_size]
    traces = {name: run(name, options) for name in ('adam', 'lbfgs')}
    end = min(trace.points[-1][0] for trace in traces.values())
    first_loss = traces['adam'].points[0][1]
    name = os.path.basename(args.content)
    print('\n%s, %s px, loss after the first Adam step %.4g' % (name, args.max_size, first_loss))
    print('| after | Adam (lr 10) loss | L-BFGS loss | L-BFGS / Adam |')
    print('|---|---|---|---|')
    for fraction in (0.1, 0.25, 0.5, 1.0):
        seconds = end * fraction
        adam, lbfgs = traces['adam'].loss_at(seconds), traces['lbfgs'].loss_at(seconds)
        ratio = '%.2f' % (lbfgs / adam) if adam and lbfgs else '-'
        cells = ['%.4g' % loss if loss else '-' for loss in (adam, lbfgs)]
        print('| %.0f s | %s | %s | %s |' % (seconds, cells[0], cells[1], ratio))
    for name, trace in traces.items():
        print('%s: %d iterations in %.1f s (%.2f s/iteration), final loss %.4g'
              % (name, len(trace.points), trace.points[-1][0], trace.points[-1][0] / len(trace.points),
                 trace.points[-1][1]))


if __name__ == '__main__':
    main()
