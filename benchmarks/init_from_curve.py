"""Training from a trained network against training from scratch: content and style distance by step.

  python benchmarks/init_from_curve.py [--config conf/udnie.yml] [--init_from models/wave.ckpt]
                                       [--photos img/photos/] [--test img/test.jpg] [--steps 25,50,100,300,1000]
                                       [--work init-from-curve/] [--output docs/INIT_FROM.md] [--overwrite]
                                       [--parallel]

Two runs of train.py learn the config's style on --photos: one started with --init_from, one from random weights
(the config as it is, but its model folder under --work). At each of --steps both stop, and each stylizes the
--test photos, which neither trains on, at the config's image_size (cover-resized and centrally cropped as training
crops its images). On those results the table gives the config's own loss terms, unweighted:
  content distance: the content loss between the stylized photo and the photo (mean squared difference of their
    VGG features at the content layers);
  style distance: the style loss against the style image's Gram matrices (summed over the style layers).
Lower is closer. Step 0 of the first run is the trained network itself; the photo row is the photo unchanged.
The results are kept in <work>/results.json and every stylized --test photo (at its own size, as eval.py makes it)
in <work>/<run>-<step>.jpg; a stopped benchmark resumes where it was, training included, and --report_only writes
the table of what is measured so far (the rest marked not measured).
"""
import argparse
import json
import math
import os
import re
import subprocess
import sys
import threading

import numpy as np
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
import losses  # noqa: E402 (after the path it lives on)
import reader  # noqa: E402
from benchmarks.performance import machine_description  # noqa: E402
from docs.figure import grid  # noqa: E402
import train  # noqa: E402
from config import load_config  # noqa: E402
from files import Outputs  # noqa: E402
from images import read_image  # noqa: E402
from inference.stylizer import Stylizer  # noqa: E402
from preprocessing import preprocessing_factory  # noqa: E402
from utils import ArgumentParser, UsageError, cli_main, setup_logging, shorten, tf  # noqa: E402

RUNS = ('init_from', 'scratch')
REPORT, FIGURE = os.path.join(ROOT, 'docs', 'INIT_FROM.md'), os.path.join(ROOT, 'docs', 'images', 'init_from_curve.jpg')


class Distances:
    """The config's content and style loss terms of stylized photos against the photos and the style image."""

    def __init__(self, config):
        self.config = config
        self.loss_net = train.loss_network_for(config)
        style_grams, _ = train.get_style_features(config, read_image(config.style_image, 'style image'),
                                                  self.loss_net)
        self.graph = tf.Graph()
        with self.graph.as_default():
            self.pair = tf.placeholder(tf.float32, [2, None, None, 3])  # (stylized, photo), RGB 0..255
            points = self.loss_net.end_points(self.pair)
            stylized, photo = losses.split_halves(points)
            self.content = losses.content_loss(stylized, photo, config.content_layers)
            self.style, _ = losses.style_loss(stylized, style_grams, config.style_layers)
            init = self.loss_net.init_fn()
            self.sess = tf.Session()
            init(self.sess)

    def __call__(self, stylized, photo):
        """(content distance, style distance) of one stylized crop, both uint8 (S, S, 3)."""
        return self.sess.run([self.content, self.style], {self.pair: [stylized, photo]})


def training_crop(pixels, config):
    """The photo as training sees it: cover-resized to image_size and centrally cropped, uint8."""
    preprocess, unprocess = preprocessing_factory.get_preprocessing(config.loss_model, is_training=False)
    with tf.Graph().as_default(), tf.Session() as sess:
        crop = unprocess(preprocess(tf.constant(pixels), config.image_size, config.image_size))
        return sess.run(tf.cast(tf.clip_by_value(tf.round(crop), 0, 255), tf.uint8))


def train_command(run_config, step, photos, init_from, epoch):
    """The train.py command that trains a run up to the global step (resuming the run's model folder)."""
    command = [sys.executable, os.path.join(ROOT, 'train.py'), '-c', run_config, '--train_dir', photos,
               '--epoch', str(epoch), '--max_steps', str(step)]
    return command + (['--init_from', init_from] if init_from else [])


def train_runs(commands, parallel):
    """Run the train.py commands (run name -> command) one after the other, or with `parallel` at once (on 2 cores
    two runs at once made 1.17 times the steps per second of one alone), each log line marked with its run.

    Ctrl-C reaches the runs too; each then saves a checkpoint, which is waited for, and the next start resumes
    from it. Raises UsageError for a run that failed.
    """
    def start(run, command):
        process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, bufsize=1)

        def relay_lines():
            for line in process.stderr:
                print('[%s] %s' % (run, line), end='', file=sys.stderr, flush=True)
        relay = threading.Thread(target=relay_lines)
        relay.start()
        return run, process, relay, command

    def finish(started):
        try:
            for _, process, _, _ in started:
                process.wait()
        except KeyboardInterrupt:
            for _, process, _, _ in started:
                process.wait(timeout=300)  # each got the signal too and is saving its checkpoint
            raise
        for run, process, relay, command in started:
            relay.join()
            if process.returncode:
                raise UsageError('the %s run failed: %s exited with status %d (its error is above)'
                                 % (run, os.path.basename(command[1]), process.returncode))

    if parallel:
        finish([start(run, command) for run, command in commands.items()])
    else:
        for run, command in commands.items():
            finish([start(run, command)])


def measure(model_file, tests, crops, distances, outputs, picture):
    """Mean (content, style) distance of a model over the test crops; the first test photo stylized whole is
    written to `picture`."""
    stylizer = Stylizer(model_file)
    try:
        pairs = [distances(stylizer(crop, progress=False), crop) for crop in crops]
        outputs.image(picture, stylizer(tests[0], progress=False))
    finally:
        stylizer.close()
    return [float(sum(values) / len(values)) for values in zip(*pairs)]


def run_config(config_path, work, run, outputs):
    """A copy of the config whose model folder is <work>/<run>/<naming>; returns its path."""
    with open(config_path) as f:
        values = yaml.safe_load(f)
    values['model_path'] = os.path.join(work, run)
    path = os.path.join(work, run + '.yml')
    outputs.data(path, yaml.safe_dump(values, sort_keys=False).encode())
    return path


def curve(args, config, outputs, results):
    """Train both runs milestone by milestone and measure them, adding to `results` (load_results'); returns them,
    also kept in results.json."""
    results_path = os.path.join(args.work, RESULTS)
    photos = reader.list_images(args.photos)
    epoch = math.ceil((max(args.steps) + 1) * config.batch_size / len(photos))  # the runs never end early
    tests = [read_image(path, 'test photo') for path in args.test]
    crops = [training_crop(pixels, config) for pixels in tests]
    distances = Distances(config)

    def record(key, model_file):
        if key not in results:
            results[key] = measure(model_file, tests, crops, distances, outputs, picture(args.work, key))
            outputs.data(results_path, json.dumps(results, indent=1).encode())
        print('%s: content %.4g, style %.4g' % (key, *results[key]), flush=True)

    if 'photo' not in results:
        results['photo'] = [0.0, float(sum(distances(crop, crop)[1] for crop in crops) / len(crops))]
    record('init_from-0', args.init_from)
    configs = {run: run_config(args.config, args.work, run, outputs) for run in RUNS}
    for step in args.steps:
        train_runs({run: train_command(configs[run], step, args.photos, args.init_from if run == 'init_from' else None,
                                       epoch) for run in RUNS if '%s-%d' % (run, step) not in results}, args.parallel)
        for run in RUNS:
            prefix = os.path.join(args.work, run, config.naming, 'fast-style-model.ckpt-%d' % step)
            record('%s-%d' % (run, step), prefix)
    return results


def figure(args, results):
    """The first test photo stylized by both runs at each step measured for both, a row a run, as uint8 pixels;
    None if no step is."""
    steps = [step for step in args.steps if all('%s-%d' % (run, step) in results for run in RUNS)]
    if not steps:
        return None, steps
    pictures = [read_image(os.path.join(args.work, '%s-%d.jpg' % (run, step))) for run in RUNS for step in steps]
    return np.asarray(grid(pictures, len(steps), 200, 8)), steps


def report(args, config, results, figure_steps=()):
    """The markdown table of the results, and the figure's caption if it has one."""
    lines = ['# Training from a trained network: how fast a new style is learned', '',
             'Written by `python benchmarks/init_from_curve.py --config %s --init_from %s --photos %s --test %s '
             '--steps %s`.' % (args.config, args.init_from, args.photos, ' '.join(args.test),
                               ','.join(map(str, args.steps))), '',
             'Machine: %s (train.py logs its seconds per step).' % machine_description(), '',
             __doc__.split('\n\n', 2)[2].split('The results are kept')[0].strip(), '',
             '| steps | from %s: content | style | from scratch: content | style |' % args.init_from,
             '|---|---|---|---|---|',
             '| the photo unchanged | 0 | %.4g | | |' % results['photo'][1]]
    for step in [0] + args.steps:
        cells = ['%.4g | %.4g' % tuple(results[key]) if key in results else 'not measured | not measured'
                 for key in ('init_from-%d' % step, 'scratch-%d' % step)]
        lines.append('| %d | %s | %s |' % (step, cells[0], cells[1] if step else 'random weights | -'))
    if figure_steps:
        lines += ['', '![%s stylized by both runs](%s)' % (args.test[0], os.path.relpath(args.figure, os.path.dirname(
            args.output))), '', '*%s after %s steps (left to right), from %s (top) and from scratch (bottom).*'
                  % (args.test[0], ', '.join(map(str, figure_steps)), args.init_from)]
    return '\n'.join(lines) + '\n'


RESULTS = 'results.json'
_RESULT_KEY = re.compile(r'(%s)-\d+' % '|'.join(RUNS))


def is_work_folder(path):
    """Whether `path` is a folder this benchmark may write into: empty, or holding its results."""
    return os.path.isdir(path) and (not os.listdir(path) or os.path.isfile(os.path.join(path, RESULTS)))


def load_results(work):
    """The results kept in <work>/results.json ({} where there are none yet): 'photo' and '<run>-<step>' ->
    [content, style], each finite.

    Raises:
      UsageError: the file is not this benchmark's results (not JSON, not an object, a key or value it never writes).
    """
    path = os.path.join(work, RESULTS)
    if not os.path.isfile(path):
        return {}
    try:
        with open(path, encoding='utf-8') as f:
            results = json.load(f)
    except (ValueError, RecursionError, OSError) as error:
        problem = 'is not readable JSON (%s)' % shorten(str(error).split('\n')[0])
    else:
        problem = _results_problem(results)
    if problem:
        raise UsageError('%s %s: it is not results of this benchmark; move it away, or choose another --work'
                         % (path, problem))
    return results


def _results_problem(results):
    """What makes `results` other than this benchmark's results, or None."""
    if not isinstance(results, dict):
        return 'is not a JSON object'
    if 'photo' not in results:
        return 'has no row for the photo unchanged'
    for key, value in results.items():
        if key != 'photo' and not _RESULT_KEY.fullmatch(key):
            return 'has the key %s, which this benchmark never writes' % shorten(key)
        if not (isinstance(value, list) and len(value) == 2 and all(
                isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in value)):
            return 'has %s for %s, not two finite numbers' % (shorten(value), key)
    return None


def own_files(args, results):
    """The files in --work that are this benchmark's own, replaced without --overwrite: its results, the runs'
    configs, and the pictures its results name. Anything else in --work is a user's."""
    return ([os.path.join(args.work, name) for name in (RESULTS,) + tuple(run + '.yml' for run in RUNS)]
            + [picture(args.work, key) for key in results if key != 'photo'])


def picture(work, key):
    """Where the stylized first test photo of the result `key` goes."""
    return os.path.join(work, key + '.jpg')


def plan_outputs(args, results):
    """The run's files.Outputs, with every file it may write claimed before any work: --work, its own files and
    pictures, --output and --figure."""
    outputs = Outputs([args.config, args.init_from, args.photos] + args.test, args.overwrite,
                      own=[REPORT, FIGURE] + own_files(args, results))
    outputs.claim(args.work, '--work', folder=True, resumable=is_work_folder, kind="this benchmark's work folder")
    keys = ['init_from-0'] + ['%s-%d' % (run, step) for step in args.steps for run in RUNS]
    pictures = [] if args.report_only else [picture(args.work, key) for key in keys]  # --report_only makes none
    for path in own_files(args, {}) + pictures:  # its results, never replaced by --output or --figure
        outputs.claim(path, '--work')
    outputs.claim(args.output)
    outputs.claim(args.figure, '--figure')
    return outputs


def steps_list(text):
    steps = sorted({int(value) for value in text.split(',')})
    if not steps or steps[0] <= 0:
        raise argparse.ArgumentTypeError('steps must be positive integers, e.g. 25,50,100')
    return steps


@cli_main
def main(argv=None):
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--config', default='conf/udnie.yml', help='the style to learn (default: %(default)s)')
    parser.add_argument('--init_from', default='models/wave.ckpt', help='the trained model (default: %(default)s)')
    parser.add_argument('--photos', default='img/photos/', help='training photos (default: %(default)s)')
    parser.add_argument('--test', nargs='+', default=['img/test.jpg'], help='held-out photos (default: %(default)s)')
    parser.add_argument('--steps', type=steps_list, default=[25, 50, 100, 300, 1000],
                        help='global steps to measure at, comma-separated (default: 25,50,100,300,1000)')
    parser.add_argument('--work', default='init-from-curve', help='model folders and results (default: %(default)s)')
    parser.add_argument('--output', default=REPORT, help='where the table is written (default: docs/INIT_FROM.md)')
    parser.add_argument('--figure', default=FIGURE,
                        help='the picture of both runs at each step (default: docs/images/init_from_curve.jpg)')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace an existing --output or --figure other than the default ones, which this '
                             'script exists to rewrite')
    parser.add_argument('--parallel', action='store_true',
                        help='train both runs at once (more steps a second in all where one run leaves cores idle)')
    parser.add_argument('--report_only', action='store_true',
                        help="write the table of <work>/results.json as it is, without training or measuring")
    args = parser.parse_args(argv)
    setup_logging()
    config = load_config(args.config)
    if os.path.lexists(args.work) and not is_work_folder(args.work):
        raise UsageError('--work %s exists and is not this benchmark\'s work folder (empty, or holding its %s); '
                         'choose a new path' % (args.work, RESULTS))
    results = load_results(args.work)
    if args.report_only and not results:
        raise UsageError('--work %s holds no %s of this benchmark; run it without --report_only first'
                         % (args.work, RESULTS))
    outputs = plan_outputs(args, results)
    if not args.report_only:
        results = curve(args, config, outputs, results)
    pixels, steps = figure(args, results)
    if pixels is not None:
        outputs.image(args.figure, pixels, quality=90)
    text = report(args, config, results, steps)
    outputs.data(args.output, text.encode())
    print('\n' + text + '\nwritten to %s' % args.output)


if __name__ == '__main__':
    main()
