"""Speed and memory, ours against the original formulation side by side; the table goes to docs/PERFORMANCE.md.

  python benchmarks/performance.py [--repeats 5] [--rounds 1] [--output docs/PERFORMANCE.md] [--overwrite]
                                   [--only forward,eval,export,train,gatys,arbitrary,masks,batch]

The rows are printed as they are measured, then merged into --output: they replace the rows of the groups run
(--only), the other groups' rows are kept, and each row names the run that measured it (its command, date and
machine). The results behind the report are kept beside it (docs/PERFORMANCE.json).

Every row is measured twice in fresh processes, one after the other (--rounds times, alternating): ours, and the
baseline, the straightforward faithful formulation of docs/ORIGINAL.md (model.ORIGINAL: moments, x4 resize +
stride-2 convolution, one 9x9 convolution to 3 maps; training.graph.build_graph(reference=True): per-image
preprocessing and the loss network run and back-propagated on [generated, content]). Times are the median of
--repeats runs after a warm-up run, with the min and max; cold commands run --repeats times in turn with no
warm-up. Memory is the process's own peak resident set (benchmarks/processes.py: not the parent's it would
inherit). Ratios are ours over the baseline, measured in the same run, since a shared machine's speed drifts.
Weights are random: same shapes, same speed. The `bf16` rows are opt-in reduced precision (eval.py --precision
bf16, mixed_precision: true); the inference row's memory includes a float32 session kept for the pixel difference.
The arbitrary-style transformer's baseline is Magenta's own formulation (nets/arbitrary.transform_reference: batch
norm and moments as written, x2 nearest-neighbour resizes before the expanding convolutions); its style prediction
runs once per style image, not per photo. The batch row's baseline is eval.py over the same folder: batch.py on
Beam's in-process runner should cost nothing on top of it. The masks rows' baseline is the same model in one style
without a mask: styles by region should cost little on top of it.
"""
import argparse
import datetime
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from benchmarks import performance_report as report  # noqa: E402
from benchmarks import roofline  # noqa: E402
from benchmarks.processes import PeakProcess  # noqa: E402
from benchmarks.measurements import (GATYS_SIZE, PHASES, TRAIN_BATCH, TRAIN_SIZE, child_main, eval_phases,  # noqa: E402
                                     original_eval)

REPORT = os.path.join(ROOT, 'docs', 'PERFORMANCE.md')

FORWARD_SIZES = ((256, 256), (512, 512), (1024, 1024), (1080, 1920))


# ---- the parent: runs the children, prints and writes the table ----

class Bench:
    """Runs measurements in child processes and collects table rows, each of the group being run (self.group)."""

    def __init__(self, repeats, rounds=1):
        self.repeats, self.rounds, self.rows, self.group, self.roof = repeats, rounds, [], None, {}

    def measure_pair(self, name, variants, *args):
        """Two variants measured alternately, self.rounds times each, so that a shared machine's drift hits both
        alike: for each, the times of all rounds pooled, the other results of the last, the largest peak."""
        pooled = {variant: ({'times': []}, 0.0) for variant in variants}
        for _ in range(self.rounds):
            for variant in variants:
                result, peak = self.measure(name, variant, *args)
                times = pooled[variant][0]['times'] + result['times']
                pooled[variant] = ({**result, 'times': times}, max(peak, pooled[variant][1]))
        return [pooled[variant] for variant in variants]

    def measure(self, name, variant, *args):
        command = [sys.executable, os.path.abspath(__file__), '--measure', name, variant, str(self.repeats),
                   *map(str, args)]
        _, peak, stdout = run_peak(command)
        result = json.loads(stdout.split('RESULT ', 1)[1])
        return result, result.pop('peak_gb', peak)  # the child's own, where it profiled after measuring

    def cold(self, *commands):
        """Commands run in turn --repeats times as fresh processes (so that drift hits them alike): for each, its
        wall times and largest peak."""
        runs = [[] for _ in commands]
        for _ in range(self.repeats):
            for command, results in zip(commands, runs):
                results.append(run_peak(command))
        return [({'times': [seconds for seconds, _, _ in results]}, max(peak for _, peak, _ in results))
                for results in runs]

    def row(self, what, ours, baseline=None, rate=None, precision='float32'):
        """ours, baseline: (result dict, peak GB); rate(seconds) -> text such as '0.63 img/s'; precision: the roof
        ours is held against, where its result counts its work ('flops')."""
        row = {'group': self.group, 'cells': report.cells(what, ours, baseline, rate)}
        if ours is not None and 'flops' in ours[0]:
            row['machine'] = report.machine_cells(what, ours[0], self.roof[precision])
        self.rows.append(row)
        print(report.markdown_row(row['cells']), flush=True)
        if 'machine' in row:
            print('  against the machine: ' + ' | '.join(row['machine'][1:]), flush=True)

    def measure_roof(self):
        """The practical peak of each precision this machine computes natively, in GFLOP/s (the best kernel's)."""
        from utils import computing_precision
        precisions = ['float32'] + (['bfloat16'] if computing_precision(True) == 'bfloat16' else [])
        rates = {precision: self.measure('roof', precision)[0]['rates'] for precision in precisions}
        self.roof = {precision: max(kinds.values()) for precision, kinds in rates.items()}
        return rates


def run_peak(command):
    """Run a command and return (wall seconds, peak memory GB, stdout), the peak the command's own (processes)."""
    start = time.perf_counter()
    launched = PeakProcess(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    stdout, stderr = launched.process.communicate()
    seconds = time.perf_counter() - start
    if launched.wait():
        raise SystemExit('benchmark step failed: %s\n%s' % (' '.join(command), stderr.decode()[-3000:]))
    return seconds, launched.peak_gb(), stdout.decode()


def machine_description():
    cpu = platform.processor() or 'unknown CPU'
    try:
        with open('/proc/cpuinfo') as f:
            cpu = f.read().split('model name', 1)[1].split(':', 1)[1].split('\n', 1)[0].strip()
    except (OSError, IndexError):
        pass
    from utils import cpu_flags, tf
    flags = ', '.join(flag for flag in ('avx512f', 'avx512_bf16', 'amx_bf16') if flag in (cpu_flags() or ()))
    memory = os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 1024 ** 3
    gpus = [d.name for d in tf.config.list_physical_devices('GPU')]
    return ('%s, %d cores (%s), %.0f GB memory; %s; TensorFlow %s, Python %s, %s'
            % (cpu, os.cpu_count(), flags or 'no AVX-512', memory, ', '.join(gpus) or 'no GPU', tf.__version__,
               platform.python_version(), platform.platform()))


def roof_description(rates):
    """The measured roof of each precision (rates: {precision: {kernel: GFLOP/s}}) and the theoretical one."""
    from utils import cpu_flags
    try:
        with open('/proc/cpuinfo') as f:
            cpuinfo = f.read()
    except OSError:
        cpuinfo = ''
    measured = '; '.join('%s %.0f GFLOP/s (matrix product %.0f, 3x3 convolution %.0f)'
                         % (precision, max(kinds.values()), kinds['matmul'], kinds['conv'])
                         for precision, kinds in rates.items())
    theoretical = []
    for precision in rates:
        peak, how = roofline.theoretical_roof(cpu_flags() or (), cpuinfo, os.cpu_count(), precision)
        theoretical.append('%s %s' % (precision, '%.0f GFLOP/s (%s)' % (peak, how) if peak else how))
    return 'measured %s; theoretical %s' % (measured, '; '.join(theoretical))


def make_inputs(scratch):
    """A random transform model, a random VGG-16, a random arbitrary-style network, a 1024 JPEG and training images,
    all in `scratch`."""
    import numpy as np
    from PIL import Image
    import checkpoints
    from nets import pretrained
    rng = np.random.default_rng(0)

    def photo(size):
        small = rng.integers(0, 256, (size // 8, size // 8, 3), dtype=np.uint8)
        return Image.fromarray(small).resize((size, size), Image.BICUBIC)
    from nets import arbitrary
    paths = {'model': checkpoints.save_random_model(os.path.join(scratch, 'model', 'fast-style-model.ckpt-done')),
             'two': checkpoints.save_random_model(os.path.join(scratch, 'two', 'two.ckpt'), styles=2),
             'arbitrary': arbitrary.save_random_checkpoint(os.path.join(scratch, 'arbitrary', 'model.ckpt')),
             'vgg': pretrained.save_random_vgg(os.path.join(scratch, 'vgg_16.ckpt')),
             'jpeg': os.path.join(scratch, 'photo.jpg'), 'train': os.path.join(scratch, 'train')}
    photo(1024).save(paths['jpeg'], quality=90)
    os.makedirs(paths['train'])
    for i in range(3 * TRAIN_BATCH):
        photo(320).save(os.path.join(paths['train'], '%d.jpg' % i), quality=90)
    return paths


def per_second(unit, count=1):
    return lambda seconds, result: '%.2f %s/s' % (count / seconds, unit)


def bf16_rate(seconds, result):
    return '%.2f img/s; pixels vs float32: mean %.2f, max %d grey levels' % (
        1 / seconds, result['mean_difference'], result['max_difference'])


def train_rate(seconds, result):
    return '%.2f img/s; input alone %.0f ms/batch' % (TRAIN_BATCH / seconds, 1000 * result['input_s'])


BF16_NEEDS = ' (needs AVX512_BF16 or AMX)'
BF16_NOTE = ('The bfloat16 rows need a CPU with AVX512_BF16 or AMX: on others the commands run float32 and say so '
             'at start-up, and this script marks those rows not measured.')


def bf16_pair(bench, name, baseline, *args):
    """measure_pair of ('bf16', baseline) where this machine computes bfloat16 natively; [None] (not measured)
    where it would run float32 (utils.computing_precision) and measure float32 under a bfloat16 label."""
    from utils import computing_precision
    if computing_precision(True) == 'float32':
        return [None]
    return bench.measure_pair(name, ('bf16', baseline), *args)


def run_forward(bench, paths):
    for height, width in FORWARD_SIZES:
        args = (paths['model'], height, width)
        what = 'transform forward %dx%d' % (width, height)
        bench.row(what, *bench.measure_pair('forward', ('fast', 'reference'), *args), per_second('img'))
        if (height, width) == (1024, 1024):
            bench.row(what + ', --precision bf16%s (baseline: ours in float32)' % BF16_NEEDS,
                      *bf16_pair(bench, 'forward', 'fast', *args), bf16_rate, precision='bfloat16')


def run_eval(bench, paths):
    output = os.path.join(os.path.dirname(paths['jpeg']), 'out.jpg')
    # Our commands end without the interpreter's teardown (utils.run_and_exit); the import alone ends so too.
    import_alone, ours, original = bench.cold(
        [sys.executable, '-c', 'import os, tensorflow; os._exit(0)'],
        [sys.executable, 'eval.py', '--model_file', paths['model'], '--image_file', paths['jpeg'], '--output', output,
         '--overwrite'],  # each run replaces the last one's result
        [sys.executable, os.path.abspath(__file__), '--original_eval', paths['model'], paths['jpeg'], output])
    bench.row('TensorFlow import alone (cold, ended without teardown)', import_alone)
    bench.row('eval.py cold, 1024x1024 JPEG to JPEG', ours, original)
    runs = [run_peak([sys.executable, os.path.abspath(__file__), '--eval_phases', paths['model'], paths['jpeg']])
            for _ in range(bench.repeats)]
    phases = [json.loads(stdout.split('RESULT ', 1)[1]) for _, _, stdout in runs]
    medians = {phase: statistics.median(run[phase] for run in phases) for phase in PHASES}
    in_process = [sum(run.values()) - run['warm run'] for run in phases]  # eval.py's work: all but the warm run
    bench.row('eval.py cold, 1024x1024, phase by phase in one process (each phase: its median)',
              ({'times': in_process}, max(peak for _, peak, _ in runs)), None,
              lambda seconds, result: ', '.join('%s %.2f s' % item for item in medians.items()))


def run_arbitrary(bench, paths):
    args = (paths['arbitrary'], 1024, 1024)
    bench.row("arbitrary-style network: style prediction, 1024x1024 style image (resized to 256)",
              bench.measure('arbitrary', 'predict', *args), None, per_second('style'))
    bench.row("arbitrary-style network: transformer 1024x1024 (baseline: Magenta's formulation)",
              *bench.measure_pair('arbitrary', ('fast', 'reference'), *args), per_second('img'))


def run_export(bench, paths):
    for fmt in ('pb', 'savedmodel', 'tflite'):
        args = (paths['model'], fmt, 1024, 1024)
        bench.row('%s, 1024x1024' % {'pb': 'frozen graph', 'savedmodel': 'SavedModel', 'tflite': 'TFLite'}[fmt],
                  *bench.measure_pair('export', ('fast', 'reference'), *args), per_second('img'))


def run_train(bench, paths):
    args = (paths['vgg'], paths['train'])
    what = 'training step, batch %d at %d' % (TRAIN_BATCH, TRAIN_SIZE)
    bench.row(what, *bench.measure_pair('train', ('fast', 'reference'), *args), train_rate)
    bench.row(what + ', mixed_precision (bf16)' + BF16_NEEDS, *bf16_pair(bench, 'train', 'reference', *args),
              train_rate, precision='bfloat16')
    bench.row(what + ', 8 styles in one network (baseline: ours, 1 style)',
              *bench.measure_pair('train', ('styles8', 'fast'), *args), train_rate)


def run_gatys(bench, paths):
    what = 'stylize.py (Gatys) Adam iteration at %d' % GATYS_SIZE
    bench.row(what, *bench.measure_pair('gatys', ('fast', 'reference'), paths['vgg']), per_second('it'))
    bench.row(what + ', --precision bf16%s (baseline: ours in float32)' % BF16_NEEDS,
              *bf16_pair(bench, 'gatys', 'fast', paths['vgg']), per_second('it'), precision='bfloat16')


COLLECTION_SIZES = ((640, 480), (1024, 768), (600, 600), (768, 1024), (480, 320))  # a photo folder's mix


def run_masks(bench, paths):
    """Styles by region: the per-pixel path against the model's own graph in one style, at 1024 x 1024."""
    for kind, model_file in (('two-style network', paths['two']), ('arbitrary-style network', paths['arbitrary'])):
        bench.row('%s, left/right mask of two styles, 1024x1024 (baseline: one style, no mask)' % kind,
                  *bench.measure_pair('masks', ('masked', 'whole'), model_file, 1024, 1024), per_second('img'))


def make_collection(folder, count=200):
    """`count` JPEG photos of COLLECTION_SIZES in turn (about 0.5 megapixels on average) in `folder`."""
    import numpy as np
    from PIL import Image
    rng = np.random.default_rng(1)
    os.makedirs(folder)
    for index in range(count):
        width, height = COLLECTION_SIZES[index % len(COLLECTION_SIZES)]
        small = rng.integers(0, 256, (height // 8, width // 8, 3), dtype=np.uint8)
        Image.fromarray(small).resize((width, height), Image.BICUBIC).save(
            os.path.join(folder, '%03d.jpg' % index), quality=90)
    return folder


def run_batch(bench, paths):
    """batch.py on Beam's in-process runner against eval.py over the same folder, cold, each writing anew."""
    scratch = os.path.dirname(paths['jpeg'])
    photos = make_collection(os.path.join(scratch, 'collection'))
    common = ['--model_file', paths['model'], '--overwrite']
    batch, eval_folder = bench.cold(
        [sys.executable, 'batch.py', *common, '--input', photos, '--output', os.path.join(scratch, 'batch_out')],
        [sys.executable, 'eval.py', *common, '--image_file', photos, '--output', os.path.join(scratch, 'eval_out/')])
    bench.row('batch.py (Beam, in-process runner), 200 photos of mixed sizes, cold (baseline: eval.py over the same '
              'folder)', batch, eval_folder, per_second('img', 200))


GROUPS = {'forward': run_forward, 'eval': run_eval, 'export': run_export, 'train': run_train, 'gatys': run_gatys,
          'arbitrary': run_arbitrary, 'masks': run_masks, 'batch': run_batch}  # in the report's order


def run_all(bench, paths, only):
    """The groups `only`, in GROUPS' order."""
    for name, run in GROUPS.items():
        if name in only:
            bench.group = name
            run(bench, paths)


def groups(text):
    """--only: comma-separated names from GROUPS, each once."""
    names = list(dict.fromkeys(name.strip() for name in text.split(',')))
    unknown = [name for name in names if name not in GROUPS]
    if unknown or not names:
        raise argparse.ArgumentTypeError('unknown group %s; the groups are %s' % (','.join(unknown),
                                                                                  ','.join(GROUPS)))
    return names


def parse_args(argv=None):
    from utils import ArgumentParser, positive_int
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--repeats', type=positive_int, default=5, help='timed runs per row after warm-up (default: '
                                                               '%(default)s)')
    parser.add_argument('--rounds', type=positive_int, default=1,
                        help='alternate ours and the baseline this many times per row, pooling their runs, on noisy '
                             'machines (default: %(default)s)')
    parser.add_argument('--only', type=groups, default=list(GROUPS),
                        help='comma-separated groups to run, their rows replacing those in the report (default: %s)'
                             % ','.join(GROUPS))
    parser.add_argument('--output', default=REPORT,
                        help='the report the rows are merged into, its results kept beside it as .json (default: '
                             'docs/PERFORMANCE.md)')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace an existing --output other than the default one, which this script exists to '
                             'rewrite, and start afresh from results it cannot read')
    return parser.parse_args(argv)


def measure_all(argv=None):
    """The command: every row of --only, printed as measured, then merged into the report."""
    from files import Outputs
    from utils import UsageError
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    outputs = Outputs(overwrite=args.overwrite, own=[REPORT, report.results_path(REPORT)])
    results_path = report.results_path(args.output)
    for path in (args.output, results_path):
        outputs.claim(path)  # before an hour of measuring, not after
    try:
        results = report.load(results_path, GROUPS)
    except UsageError:
        if not args.overwrite:
            raise
        results = report.empty()
    started = time.time()
    machine = machine_description()
    print('Machine: %s\n\n%s' % (machine, report.table_header(report.COLUMNS[1:])), flush=True)
    bench = Bench(args.repeats, args.rounds)
    roof = roof_description(bench.measure_roof())
    print('Roof: %s\n' % roof, flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        run_all(bench, make_inputs(scratch), args.only)
    run = {'command': ' '.join(['python benchmarks/performance.py'] + [shlex.quote(arg) for arg in argv]),
           'date': datetime.date.today().isoformat(), 'minutes': round((time.time() - started) / 60),
           'machine': machine, 'roof': roof}
    results = report.merged(results, run, args.only, bench.rows, list(GROUPS))
    report.save(results, '%s\n\n%s' % (BF16_NOTE, __doc__.split('\n\n', 2)[2].strip()), args.output, outputs)
    print('\nmerged into %s (its results: %s)' % (args.output, results_path))


def main():
    if len(sys.argv) > 1 and sys.argv[1] == '--measure':
        return child_main(sys.argv[2:])
    if len(sys.argv) > 1 and sys.argv[1] == '--original_eval':
        return original_eval(*sys.argv[2:])
    if len(sys.argv) > 1 and sys.argv[1] == '--eval_phases':
        return eval_phases(*sys.argv[2:])
    from utils import cli_main
    return cli_main(measure_all)()


if __name__ == '__main__':
    main()
