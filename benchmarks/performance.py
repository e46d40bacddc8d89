"""Speed and memory, ours against the original formulation side by side; the table goes to docs/PERFORMANCE.md.

  python benchmarks/performance.py [--repeats 5] [--rounds 1] [--only forward,eval,export,train,gatys,arbitrary]
                                   [--output PATH] [--overwrite]

With --only some of the groups, the table is printed and written only where --output says: the whole report is
not replaced by some of its rows.

Every row is measured twice in fresh processes, one after the other (--rounds times, alternating): ours, and the
baseline, the straightforward faithful formulation of docs/ORIGINAL.md (model.ORIGINAL: moments, x4 resize +
stride-2 convolution, one 9x9 convolution to 3 maps; training.graph.build_graph(reference=True): per-image preprocessing
and the loss network run and back-propagated on [generated, content]). Times are the median of --repeats runs
after a warm-up run, with the min and max; cold commands run --repeats times in turn with no warm-up. Memory is
the process's peak resident set (os.wait4). Ratios are ours over the baseline, measured in the same run, since a
shared machine's speed drifts. Weights are random: same shapes, same speed. The `bf16` rows are opt-in reduced
precision (eval.py --precision bf16, mixed_precision: true); the inference row's memory includes a float32
session kept for the pixel difference.
"""
import argparse
import datetime
import functools
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
REPORT = os.path.join(ROOT, 'docs', 'PERFORMANCE.md')

FORWARD_SIZES = ((256, 256), (512, 512), (1024, 1024), (1080, 1920))
TRAIN_BATCH, TRAIN_SIZE, GATYS_SIZE = 4, 256, 512


# ---- measurements, each run in a child process: python performance.py --measure NAME VARIANT ARGS... ----

def _formulation(variant):
    """The transform network's formulation (model.py) a variant measures: the original's for 'reference'."""
    import model
    return model.ORIGINAL if variant == 'reference' else model.INFERENCE


def _time_runs(run, repeats):
    run()  # warm-up: first-run set-up is not what these rows measure
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return times


def measure_forward(variant, repeats, model_prefix, height, width):
    """Warm session, batch 1, uint8 in and out, as eval.py runs it."""
    import numpy as np
    import checkpoints
    import model
    from utils import session_config, tf
    bf16 = variant == 'bf16'
    image = np.random.default_rng(0).integers(0, 256, (1, int(height), int(width), 3), dtype=np.uint8)
    with tf.Graph().as_default():
        images = tf.placeholder(tf.uint8, [None, None, None, 3])
        stylized = model.stylize_uint8(images, _formulation(variant))
        sessions = [tf.Session(config=session_config(reduced)) for reduced in ([True, False] if bf16 else [False])]
        for sess in sessions:
            checkpoints.transform_saver().restore(sess, model_prefix)
        times = _time_runs(lambda: sessions[0].run(stylized, {images: image}), repeats)
        outputs = [sess.run(stylized, {images: image}).astype(int) for sess in sessions]
    difference = abs(outputs[0] - outputs[-1])  # bf16 against float32; 0 for float32 runs
    return times, {'mean_difference': float(difference.mean()), 'max_difference': int(difference.max())}


def measure_export(variant, repeats, model_prefix, fmt, height, width):
    """An exported form run as a user would, with plain TensorFlow or the TFLite interpreter."""
    import numpy as np
    import export
    from files import Outputs
    from utils import tf
    formulation = _formulation(variant)
    image = np.random.default_rng(0).integers(0, 256, (int(height), int(width), 3), dtype=np.uint8)
    with tempfile.TemporaryDirectory() as scratch:
        if fmt == 'tflite':
            path = os.path.join(scratch, 'model.tflite')
            export.export_tflite(model_prefix, path, Outputs([model_prefix]), formulation=formulation)
            interpreter = tf.lite.Interpreter(model_path=path, num_threads=os.cpu_count())
            interpreter.resize_tensor_input(0, [1, image.shape[0], image.shape[1], 3])
            interpreter.allocate_tensors()
            feed = image[None].astype(np.float32)

            def run():
                interpreter.set_tensor(interpreter.get_input_details()[0]['index'], feed)
                interpreter.invoke()
                return interpreter.get_tensor(interpreter.get_output_details()[0]['index'])
            return _time_runs(run, repeats), {}
        with tf.Graph().as_default() as graph, tf.Session() as sess:
            if fmt == 'pb':
                build = functools.partial(export.build_frozen_interface, formulation=formulation)
                tf.import_graph_def(export.freeze(model_prefix, build), name='')
                output = graph.get_tensor_by_name('output_image:0')
                feed = {'input_image:0': image.astype(np.int32).ravel(), 'height:0': image.shape[0],
                        'width:0': image.shape[1]}
            else:
                path = os.path.join(scratch, 'savedmodel')
                export.export_saved_model(model_prefix, path, Outputs([model_prefix]), formulation)
                tf.saved_model.loader.load(sess, [tf.saved_model.tag_constants.SERVING], path)
                output, feed = graph.get_tensor_by_name('stylized:0'), {'image:0': image[None]}
            return _time_runs(lambda: sess.run(output, feed), repeats), {}


def measure_train(variant, repeats, vgg_prefix, image_dir):
    """Seconds per training step at TRAIN_BATCH x TRAIN_SIZE, and the input pipeline's own time per batch; variant
    'styles8' trains a network of 8 styles (conditional instance normalization)."""
    import numpy as np
    import reader
    import training.graph
    from nets.loss_network import LossNetwork
    from utils import session_config, tf
    bf16 = variant == 'bf16'
    config = argparse.Namespace(image_size=TRAIN_SIZE, batch_size=TRAIN_BATCH, loss_model='vgg_16',
                                mixed_precision=bf16,
                                content_layers=['vgg_16/conv3/conv3_3'], content_weight=1.0, style_weight=100.0,
                                tv_weight=0.0, style_layers=['vgg_16/conv1/conv1_2', 'vgg_16/conv2/conv2_2',
                                                             'vgg_16/conv3/conv3_3', 'vgg_16/conv4/conv4_3'])
    filenames = reader.list_images(image_dir)
    loss_net = LossNetwork('vgg_16', config.content_layers + config.style_layers, vgg_prefix, 'vgg_16/fc')
    grams = [np.eye(channels, dtype=np.float32) for channels in (64, 128, 256, 512)]
    loader = reader.ImageLoader(len(filenames), 0.05, TRAIN_SIZE)
    with tf.Graph().as_default():
        styles = [([gram * (1 + index) for gram in grams], config.style_weight)
                  for index in range(8 if variant == 'styles8' else 1)]
        ops = training.graph.build_graph(config, filenames, styles, loss_net, loader, reference=variant == 'reference')
        batch = tf.get_default_graph().get_tensor_by_name('IteratorGetNext:0')
        init_loss_network = loss_net.init_fn()
        with tf.Session(config=session_config(bf16)) as sess:
            sess.run(tf.global_variables_initializer())
            init_loss_network(sess)
            sess.run(ops.train_step)  # the first step also sets up kernels; not measured
            times = _time_runs(lambda: sess.run(ops.train_step), repeats)
            input_times = _time_runs(lambda: sess.run(batch), repeats)
    return times, {'input_s': statistics.median(input_times)}


def measure_gatys(variant, repeats, vgg_prefix):
    """stylize.py's Adam iteration at GATYS_SIZE; the baseline builds VGG-16 through pool5, as tutorials do."""
    import numpy as np
    import stylize
    from nets.loss_network import LossNetwork
    from utils import session_config, tf
    bf16 = variant == 'bf16'
    args = stylize.parse_args(['--content', 'c.jpg', '--style', 's.jpg', '--optimizer', 'adam'])
    layers = args.content_layers + args.style_layers
    features = LossNetwork('vgg_16', layers, vgg_prefix, 'vgg_16/fc')
    built = layers + ['vgg_16/pool5'] if variant == 'reference' else layers
    rng = np.random.default_rng(0)
    with tf.Graph().as_default():
        image = tf.Variable(rng.uniform(0, 255, (1, GATYS_SIZE, GATYS_SIZE, 3)).astype(np.float32))
        end_points = features.end_points(image, built)
        content_targets = [np.zeros(end_points[layer].shape.as_list(), np.float32) for layer in args.content_layers]
        grams = [np.eye(end_points[layer].shape.as_list()[-1], dtype=np.float32) for layer in args.style_layers]
        loss = stylize.build_losses(end_points, image, (content_targets, grams), stylize.recipe_of(args))['total']
        step = tf.train.AdamOptimizer(args.learning_rate).minimize(loss, var_list=[image])
        init_loss_network = features.init_fn()
        with tf.Session(config=session_config(bf16)) as sess:
            sess.run(tf.global_variables_initializer())
            init_loss_network(sess)
            return _time_runs(lambda: sess.run(step), repeats), {}


def measure_arbitrary(variant, repeats, prefix, height, width):
    """Magenta's arbitrary-style network, warm, batch 1: for 'predict' the style prediction of a style image (resized
    to 256 as Magenta does); else the transformer on a photo, as nets/arbitrary.transform computes it ('fast') or
    as Magenta's code does ('reference')."""
    import numpy as np
    from nets import arbitrary
    from utils import session_config, tf
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (1, int(height), int(width), 3), dtype=np.uint8)
    with tf.Graph().as_default():
        pixels = tf.placeholder(tf.uint8, [1, None, None, 3])
        if variant == 'predict':
            output = arbitrary.style_embedding(arbitrary.style_input(pixels))
        else:
            parameters = arbitrary.style_parameters(tf.constant(rng.normal(size=(1, arbitrary.EMBEDDING)), tf.float32))
            transform = arbitrary.transform if variant == 'fast' else arbitrary.transform_reference
            output = arbitrary.stylize_uint8(pixels, parameters, transform)
        with tf.Session(config=session_config(False)) as sess:
            tf.train.Saver().restore(sess, prefix)
            return _time_runs(lambda: sess.run(output, {pixels: image}), repeats), {}


MEASUREMENTS = {'forward': measure_forward, 'export': measure_export, 'train': measure_train,
                'gatys': measure_gatys, 'arbitrary': measure_arbitrary}


def child_main(argv):
    name, variant, repeats, *rest = argv
    times, extra = MEASUREMENTS[name](variant, int(repeats), *rest)
    print('RESULT ' + json.dumps({'times': times, **extra}))


# ---- the parent: runs the children, prints and writes the table ----

class Bench:
    """Runs measurements in child processes and collects table rows."""

    def __init__(self, repeats, rounds=1):
        self.repeats, self.rounds, self.rows = repeats, rounds, []

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
        return result, peak

    def cold(self, *commands):
        """Commands run in turn --repeats times as fresh processes (so that drift hits them alike): for each, its
        wall times and largest peak."""
        runs = [[] for _ in commands]
        for _ in range(self.repeats):
            for command, results in zip(commands, runs):
                results.append(run_peak(command))
        return [({'times': [seconds for seconds, _, _ in results]}, max(peak for _, peak, _ in results))
                for results in runs]

    def row(self, what, ours, baseline=None, rate=None):
        """ours, baseline: (result dict, peak GB); rate(seconds) -> text such as '0.63 img/s'."""
        self.rows.append((what, ours, baseline, rate))
        print(format_row(*self.rows[-1]), flush=True)


def run_peak(command):
    """Run a command and return (wall seconds, peak memory GB, stdout), the peak taken from wait4's rusage."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    stdout = process.stdout.read()
    stderr = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status):
        raise SystemExit('benchmark step failed: %s\n%s' % (' '.join(command), stderr.decode()[-3000:]))
    return seconds, usage.ru_maxrss / 1024 / 1024, stdout.decode()


def _spread(times):
    return '%.3f (%.3f-%.3f)' % (statistics.median(times), min(times), max(times))


HEADER = ('| measurement | ours: s, median (min-max) | ours: peak GB | rate | baseline: s, median (min-max) '
          '| baseline: peak GB | time ratio | memory ratio |\n|---|---|---|---|---|---|---|---|')


def format_row(what, ours, baseline, rate):
    if ours is None:
        return '| %s | not measured: this CPU has no native bfloat16 | | | | | | |' % what
    (result, peak), median = ours, statistics.median(ours[0]['times'])
    cells = [what, _spread(result['times']), '%.2f' % peak, rate(median, result) if rate else '']
    if baseline:
        base_median = statistics.median(baseline[0]['times'])
        cells += [_spread(baseline[0]['times']), '%.2f' % baseline[1], '%.2f' % (median / base_median),
                  '%.2f' % (peak / baseline[1])]
    else:
        cells += ['', '', '', '']
    return '| ' + ' | '.join(cells) + ' |'


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


def run_all(bench, paths, only):
    if 'forward' in only:
        for height, width in FORWARD_SIZES:
            args = (paths['model'], height, width)
            what = 'transform forward %dx%d' % (width, height)
            bench.row(what, *bench.measure_pair('forward', ('fast', 'reference'), *args), per_second('img'))
            if (height, width) == (1024, 1024):
                bench.row(what + ', --precision bf16%s (baseline: ours in float32)' % BF16_NEEDS,
                          *bf16_pair(bench, 'forward', 'fast', *args), bf16_rate)
    if 'eval' in only:
        output = os.path.join(os.path.dirname(paths['jpeg']), 'out.jpg')
        # Our commands end without the interpreter's teardown (utils.run_and_exit); the import alone ends so too.
        import_alone, ours, original = bench.cold(
            [sys.executable, '-c', 'import os, tensorflow; os._exit(0)'],
            [sys.executable, 'eval.py', '--model_file', paths['model'], '--image_file', paths['jpeg'], '--output',
             output],
            [sys.executable, os.path.abspath(__file__), '--original_eval', paths['model'], paths['jpeg'], output])
        bench.row('TensorFlow import alone (cold, ended without teardown)', import_alone)
        bench.row('eval.py cold, 1024x1024 JPEG to JPEG', ours, original)
    if 'arbitrary' in only:
        args = (paths['arbitrary'], 1024, 1024)
        bench.row("arbitrary-style network: style prediction, 1024x1024 style image (resized to 256)",
                  bench.measure('arbitrary', 'predict', *args), None, per_second('style'))
        bench.row("arbitrary-style network: transformer 1024x1024 (baseline: Magenta's formulation)",
                  *bench.measure_pair('arbitrary', ('fast', 'reference'), *args), per_second('img'))
    if 'export' in only:
        for fmt in ('pb', 'savedmodel', 'tflite'):
            args = (paths['model'], fmt, 1024, 1024)
            bench.row('%s, 1024x1024' % {'pb': 'frozen graph', 'savedmodel': 'SavedModel', 'tflite': 'TFLite'}[fmt],
                      *bench.measure_pair('export', ('fast', 'reference'), *args), per_second('img'))
    if 'train' in only:
        args = (paths['vgg'], paths['train'])
        what = 'training step, batch %d at %d' % (TRAIN_BATCH, TRAIN_SIZE)
        bench.row(what, *bench.measure_pair('train', ('fast', 'reference'), *args), train_rate)
        bench.row(what + ', mixed_precision (bf16)' + BF16_NEEDS, *bf16_pair(bench, 'train', 'reference', *args),
                  train_rate)
        bench.row(what + ', 8 styles in one network (baseline: ours, 1 style)',
                  *bench.measure_pair('train', ('styles8', 'fast'), *args), train_rate)
    if 'gatys' in only:
        what = 'stylize.py (Gatys) Adam iteration at %d' % GATYS_SIZE
        bench.row(what, *bench.measure_pair('gatys', ('fast', 'reference'), paths['vgg']), per_second('it'))
        bench.row(what + ', --precision bf16%s (baseline: ours in float32)' % BF16_NEEDS,
                  *bf16_pair(bench, 'gatys', 'fast', paths['vgg']), per_second('it'))


def original_eval(model_prefix, image_path, output):
    """The original eval.py's flow, as the cold baseline: a graph built for the image's size with the reference
    network, restore, one run, tf.image.encode_jpeg."""
    import model
    from preprocessing import vgg_preprocessing
    from utils import tf
    with tf.Graph().as_default(), tf.Session() as sess:
        image = tf.image.decode_jpeg(tf.read_file(image_path), channels=3)
        generated = model.net(tf.expand_dims(vgg_preprocessing.mean_image_subtraction(image), 0), model.ORIGINAL)
        encoded = tf.image.encode_jpeg(tf.cast(tf.clip_by_value(generated[0], 0, 255), tf.uint8))
        tf.train.Saver(model.transform_variables()).restore(sess, model_prefix)
        with open(output, 'wb') as f:
            f.write(sess.run(encoded))


def write_report(path, outputs, machine, bench, elapsed):
    lines = ['# Performance', '',
             'Written by `python benchmarks/performance.py --repeats %d --rounds %d` on %s in %.0f minutes.' % (
                 bench.repeats, bench.rounds, datetime.date.today().isoformat(), elapsed / 60), '',
             'Machine: %s. Every figure below was measured on it.' % machine, '', BF16_NOTE, '',
             __doc__.split('\n\n', 2)[2].strip(), '', HEADER]
    lines += [format_row(*row) for row in bench.rows]
    lines += ['', '## GPU', '', 'Not yet measured: no GPU was available to this run. Run the same command on a '
              'GPU machine to fill this table.', '']
    outputs.data(path, '\n'.join(lines).encode())


GROUPS = ('forward', 'eval', 'export', 'train', 'gatys', 'arbitrary')


def groups(text):
    """--only: comma-separated names from GROUPS."""
    names = [name.strip() for name in text.split(',')]
    unknown = [name for name in names if name not in GROUPS]
    if unknown or not names:
        raise argparse.ArgumentTypeError('unknown group %s; the groups are %s' % (','.join(unknown),
                                                                                  ','.join(GROUPS)))
    return names


def measure_all(argv=None):
    """The command: every row of --only, then the report."""
    from files import Outputs
    from utils import ArgumentParser
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--repeats', type=int, default=5, help='timed runs per row after warm-up (default: '
                                                               '%(default)s)')
    parser.add_argument('--rounds', type=int, default=1,
                        help='alternate ours and the baseline this many times per row, pooling their runs, on noisy '
                             'machines (default: %(default)s)')
    parser.add_argument('--only', type=groups, default=GROUPS,
                        help='comma-separated groups to run (default: %s)' % ','.join(GROUPS))
    parser.add_argument('--output', help='where the table is written (default: docs/PERFORMANCE.md when every '
                                         'group runs, else nowhere)')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace an existing --output other than the default one, which this script exists to '
                             'rewrite')
    args = parser.parse_args(argv)
    if args.output is None and set(args.only) == set(GROUPS):
        args.output = REPORT
    outputs = Outputs(overwrite=args.overwrite, own=[REPORT])
    if args.output:
        outputs.claim(args.output)  # before an hour of measuring, not after
    started = time.time()
    machine = machine_description()
    print('Machine: %s\n\n%s' % (machine, HEADER), flush=True)
    bench = Bench(args.repeats, args.rounds)
    with tempfile.TemporaryDirectory() as scratch:
        run_all(bench, make_inputs(scratch), args.only)
    if args.output:
        write_report(args.output, outputs, machine, bench, time.time() - started)
        print('\nwritten to %s' % args.output)


def main():
    if len(sys.argv) > 1 and sys.argv[1] == '--measure':
        return child_main(sys.argv[2:])
    if len(sys.argv) > 1 and sys.argv[1] == '--original_eval':
        return original_eval(*sys.argv[2:])
    from utils import cli_main
    return cli_main(measure_all)()


if __name__ == '__main__':
    main()
