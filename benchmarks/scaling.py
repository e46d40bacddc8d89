"""Time and peak memory against the image's side, so that a photo of any size can be costed before it is run.

  python benchmarks/scaling.py [--eval_sides 256,512,1024,2048,4096] [--whole_sides 256,512,1024,2048,4096]
                               [--gatys_sides 256,512,1024,2048] [--repeats 2] [--plot docs/images/scaling.png]
                               [--overwrite]

Three series, each size in a fresh process (benchmarks/performance.py's children, so that its peak memory is its
own): eval.py's Stylizer on a square photo at its default pixel budget (2.5 megapixels; tiled above it), the same
in one run whatever the size (--max_pixels raised), both warm, and one Adam iteration of stylize.py (VGG-16 forward
and backward through the image) on a square image. Times are medians of --repeats runs after a warm-up run;
weights are random (same shapes, same speed). The table is printed with seconds and gigabytes per megapixel, which
stay flat where the cost is linear in pixels; the plot shows both on log axes beside a line of slope one (linear
in pixels) through each series' largest size.
"""
import argparse
import io
import os
import statistics
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from utils import ArgumentParser, UsageError, positive_int, positive_int_list  # noqa: E402 (after the path)

PLOT = os.path.join(ROOT, 'docs', 'images', 'scaling.png')


def parse_args(argv=None):
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--eval_sides', type=positive_int_list, default=[256, 512, 1024, 2048, 4096],
                        help="eval.py's sides, comma-separated (default: 256,512,1024,2048,4096)")
    parser.add_argument('--whole_sides', type=positive_int_list, default=[256, 512, 1024, 2048, 4096],
                        help="eval.py's sides in one run (default: 256,512,1024,2048,4096; 4096 needs about 9 GB)")
    parser.add_argument('--gatys_sides', type=positive_int_list, default=[256, 512, 1024, 2048],
                        help="stylize.py's sides (default: 256,512,1024,2048; 2048 needs about 10 GB)")
    parser.add_argument('--repeats', type=positive_int, default=2, help='timed runs per size (default: %(default)s)')
    parser.add_argument('--plot', default=PLOT, help='where the plot goes (PNG; default: docs/images/scaling.png)')
    parser.add_argument('--overwrite', action='store_true', help='replace an existing --plot')
    return parser.parse_args(argv)


SERIES = (('eval.py, tiled above 2.5 MP', 'stylizer', 'tiled', 'model', 'o-'),
          ('eval.py, whole image', 'stylizer', 'whole', 'model', '^--'),
          ('Gatys iteration', 'gatys', 'fast', 'vgg', 's-'))  # what, measurement, variant, weights, plot style


def check_memory(sides, memory_gb):
    """UsageError naming the first side whose estimated peak passes memory_gb, before any measuring: the whole
    image at 0.6 GB plus 0.5 KB a pixel (measured), tiles near their budget plus the photo and its result (6 bytes
    a pixel), Gatys by stylize.py's own estimate."""
    import stylize
    estimates = (lambda pixels: 2.5e9 + 6 * pixels, lambda pixels: 0.6e9 + 500 * pixels,
                 lambda pixels: stylize.estimate_memory(pixels, 0, 0))
    for option, estimate, series_sides in zip(('--eval_sides', '--whole_sides', '--gatys_sides'), estimates, sides):
        for side in series_sides:
            needed = estimate(side * side) / 1e9
            if needed > memory_gb:
                raise UsageError('%s %d needs about %.0f GB, more than this machine\'s %.0f GB: give smaller sides'
                                 % (option, side, needed, memory_gb))


def measure(bench, paths, sides):
    """[(what, side, median seconds, peak GB)] for every series' sides (sides: one list per SERIES)."""
    rows = []
    for (what, name, variant, weights, _), series_sides in zip(SERIES, sides):
        for side in series_sides:
            result, peak = bench.measure(name, variant, paths[weights], side)
            rows.append((what, side, statistics.median(result['times']), peak))
            print(table_row(rows[-1]), flush=True)
    return rows


def table_row(row):
    what, side, seconds, peak = row
    megapixels = side * side / 1e6
    return '| %s | %d | %.2f | %.2f | %.3f | %.2f | %.3f |' % (what, side, megapixels, seconds, seconds / megapixels,
                                                              peak, peak / megapixels)


def plot(rows):
    """The PNG bytes of time and peak memory against the side, on log axes, with slope-one guides."""
    import matplotlib
    matplotlib.use('Agg')
    from matplotlib import pyplot
    figure, axes = pyplot.subplots(1, 2, figsize=(10, 4))
    for index, (axis, label) in enumerate(zip(axes, ('seconds', 'peak memory (GB)'))):
        for what, *_, style in SERIES:
            points = [(side, row[2 + index]) for row in rows if row[0] == what for side in [row[1]]]
            if not points:
                continue
            sides, values = zip(*points)
            axis.plot(sides, values, style, label=what)
            axis.plot(sides, [values[-1] * (side / sides[-1]) ** 2 for side in sides], ':', color='grey')
        axis.set(xscale='log', yscale='log', xlabel='image side (pixels, square)', ylabel=label)
        axis.minorticks_off()  # the log axis's own labels would print over the sides'
        axis.set_xticks(sorted({row[1] for row in rows}), [str(row) for row in sorted({row[1] for row in rows})])
        axis.legend(title='dotted: linear in pixels')
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format='png', dpi=100)
    return buffer.getvalue()


def main(argv=None):
    args = parse_args(argv)
    from benchmarks import performance
    from files import Outputs
    sides = (args.eval_sides, args.whole_sides, args.gatys_sides)
    check_memory(sides, os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 1e9)
    outputs = Outputs(overwrite=args.overwrite, own=[PLOT])
    outputs.claim(args.plot, '--plot')  # before the measuring, not after
    print('Machine: %s\n' % performance.machine_description())
    print('| run | side | megapixels | seconds | s per MP | peak GB | GB per MP |\n|---|---|---|---|---|---|---|')
    bench = performance.Bench(args.repeats)
    with tempfile.TemporaryDirectory() as scratch:
        rows = measure(bench, performance.make_inputs(scratch), sides)
    outputs.data(args.plot, plot(rows))
    print('\nplot written to %s' % args.plot)


if __name__ == '__main__':
    from utils import cli_main
    cli_main(main)()
