"""Stylize a collection of images of any size on Apache Beam, with eval.py's pixels: on this machine by default, on
Dataflow, Flink or Spark with Beam's pipeline options (docs/BATCH.md).

  python batch.py --model_file models/wave.ckpt --input photos/ --output stylized/
  python batch.py --model_file models/wave.ckpt --input 'photos/*.jpg' 'more/**.png' --output out/ --format webp
  python batch.py --style_image img/udnie.jpg --input photos/ --output udnie/          # Magenta's network
  python batch.py --model_file gs://bucket/wave.ckpt --input gs://bucket/photos/ --output gs://bucket/wave/ \\
      --runner DataflowRunner --project P --region R --temp_location gs://bucket/tmp --setup_file ./setup.py

Inputs are file patterns on any file system Beam knows (a folder, searched recursively for images; a glob; a
file). Results go under --output with the same relative names and formats as eval.py's folder mode; an image that
cannot be read, decoded or encoded goes to <output>/batch_failures.jsonl (one JSON object a line) and the run goes
on, its exit status 1. A result already there is left as it is, so the same command finishes a stopped run or adds
new inputs; --overwrite redoes them. Options batch.py does not know are Beam's (--runner, --direct_num_workers, ...).
"""
import argparse
import contextlib
import glob
import logging
import os
import sys
import time

from checkpoints import model_exists
from files import Outputs, contains
from inference.options import (INPUT_EXTENSIONS, add_image_options, add_model_option, check_image_options,
                               missing_model, recipe_of)
from nets import pretrained
from utils import ArgumentParser, UsageError, cli_main, log, run_and_exit, setup_logging, shorten, unknown_name_hint

MATCH_LIMIT = 1000  # files listed per --input before the pipeline, to check it finds images (the pipeline lists all)


def parse_args(argv):
    """(batch.py's options, Beam's pipeline options as flags)."""
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_option(parser)
    parser.add_argument('--input', nargs='+', required=True, metavar='PATTERN',
                        help="folders (searched recursively for %s images), quoted globs or files, on any file "
                             "system Beam knows" % ', '.join(sorted({e[1:].upper() for e in INPUT_EXTENSIONS})))
    parser.add_argument('--output', required=True, metavar='PREFIX',
                        help='the folder (or gs://, s3:// ... prefix) the results go under, with the inputs\' '
                             'relative names; never inside an input folder')
    parser.add_argument('--overwrite', action='store_true',
                        help='stylize again the inputs whose results exist (default: leave them as they are)')
    add_image_options(parser, "the results' format (default: each input's own)")
    args, beam_flags = parser.parse_known_args(argv)
    check_image_options(parser, args)
    return args, beam_flags


def pipeline_options(flags):
    """Beam's PipelineOptions of `flags`, every one checked: an unknown option or runner is a UsageError naming
    it, where Beam would warn and go on; without --runner, Beam's in-process FnApiRunner (Beam's DirectRunner
    would first try its Prism runner, which downloads a binary)."""
    from apache_beam.options import pipeline_options as beam_options
    from apache_beam.runners import create_runner

    class Flags(beam_options._BeamArgumentParser):  # what Beam's get_all_options parses with
        def error(self, message):
            raise UsageError('%s (Beam\'s pipeline options, see docs/BATCH.md)' % message)
    parser = Flags(allow_abbrev=False, add_help=False)
    for cls in {str(cls): cls for cls in beam_options.PipelineOptions.__subclasses__()}.values():
        cls._add_argparse_args(parser)
    known, unknown = parser.parse_known_args(flags)
    if unknown:
        options = [option for action in parser._actions for option in action.option_strings]
        raise UsageError('unknown option %s (%s)' % (unknown[0], unknown_name_hint(
            unknown[0].split('=')[0], options, "batch.py's own options are in its --help; Beam's are")))
    blank = [name for name, value in vars(known).items()
             if isinstance(value, str) and not value.strip() and value != parser.get_default(name)]
    if blank:
        raise UsageError('--%s: an empty value; give one, or leave the option out' % blank[0])
    options = beam_options.PipelineOptions(flags)
    runner = options.view_as(beam_options.StandardOptions).runner
    if runner is None:
        from apache_beam.runners.portability.fn_api_runner import FnApiRunner
        return options, FnApiRunner()
    try:
        return options, create_runner(runner)
    except (ValueError, ImportError) as error:
        raise UsageError('--runner %s: %s' % (runner, str(error).split('\n')[0])) from None


def sources(specs, output):
    """collection.Source of every --input, each checked to match something, and the output prefix checked to lie
    inside none of them."""
    from apache_beam.io.filesystems import FileSystems
    from inference.collection import Source, is_remote, join
    found = []
    for spec in specs:
        folder = spec if spec.endswith(('/', os.sep)) or (not is_remote(spec) and os.path.isdir(spec)) else None
        source = Source(join(folder, '**') if folder else spec, folder)
        try:
            matched = FileSystems.match([source.pattern], limits=[MATCH_LIMIT])[0].metadata_list
        except (ValueError, OSError) as error:
            raise UsageError('--input %s: %s' % (spec, str(error).split('\n')[0])) from None
        if not matched and not folder and not glob.has_magic(spec):
            raise UsageError('--input %s: not found (check the path)' % spec)
        if not [m for m in matched if source.name(m.path)] and len(matched) < MATCH_LIMIT:
            raise UsageError('no images found for %r (give folders, quoted globs or files)' % spec)
        base = folder or os.path.dirname(spec.split('*')[0].split('?')[0].split('[')[0]) or '.'
        if (folder or glob.has_magic(spec)) and (output.startswith(base.rstrip('/') + '/') if is_remote(output)
                                                  else contains(base, output)):
            raise UsageError('--output %s lies inside the input %s: a run would take its own results for photos; '
                             'choose a prefix outside the inputs' % (output, spec))
        found.append(source)
    return tuple(found)


def check_masks_apart(given, output):
    """Raise UsageError for an --output that holds a mask or lies inside a folder of them: a result could replace
    a mask (with --overwrite), or a mask be taken for a result."""
    from inference.collection import is_remote
    for mask in given:
        if is_remote(mask.path) or is_remote(output):
            overlap = (output.rstrip('/') + '/').startswith(mask.path.rstrip('/') + '/') or mask.path.startswith(
                output.rstrip('/') + '/')
        else:
            overlap = contains(mask.path, output) or contains(output, mask.path)
        if overlap:
            raise UsageError('--output %s and --mask %s overlap: a result could replace a mask; choose an output '
                             'apart from the masks' % (output, mask.path))


def check_file_systems(args):
    """Raise UsageError for a path on a file system this Beam cannot reach (gs:// without apache-beam[gcp], ...)."""
    from apache_beam.io.filesystems import FileSystems
    for option, paths in (('--model_file', [args.model_file]), ('--input', args.input), ('--output', [args.output]),
                          ('--style_image', args.style_image or []),
                          ('--mask', [mask.path for mask in args.mask or ()])):
        for path in paths:
            try:
                FileSystems.get_filesystem(path)
            except ValueError:
                raise UsageError("%s %s: Beam has no file system for it here; install Beam's extra for it (gs://: "
                                 "pip install 'apache-beam[gcp]', s3://: [aws])" % (option, path)) from None


def check_prerequisites(args):
    """One UsageError naming every missing model and style image (Magenta's network at its default path is
    downloaded later unless --no_download)."""
    from apache_beam.io.filesystems import FileSystems
    check_file_systems(args)
    def exists(path):  # a checkpoint prefix's files, a file or a folder, on any file system
        return bool(FileSystems.match([path + '*'])[0].metadata_list) if '://' in path else model_exists(path)
    missing = [problem for problem in [missing_model(args.model_file, not args.no_download, exists)] if problem]
    missing += ['style image not found: %s (check the path)' % path for path in args.style_image or ()
                if not FileSystems.exists(path)]
    missing += ['mask not found: %s (check the path)' % mask.path for mask in args.mask or ()
                if not (FileSystems.exists(mask.path) or os.path.isdir(mask.path)
                        or FileSystems.match([mask.path.rstrip('/') + '/*'], [1])[0].metadata_list)]
    if missing:
        raise UsageError('; '.join(missing))


def check_model(recipe, download):
    """Load the model once here, predicting its style images, so that a broken model or a style it cannot take is
    one line before the pipeline starts rather than a failure of every image."""
    from inference.collection import StyleHandler
    if recipe.style_images:
        pretrained.ensure_arbitrary_checkpoint(recipe.model_file, download)
    StyleHandler(recipe).load_model().stylizer.close()


def held_output(prefix):
    """A context manager holding a local output folder for the run (made if missing, gone again if left empty):
    two runs into one folder would stylize the same images twice and report each other's results as failures.
    The folder must be a folder (or nothing yet), hold no input, and not be the working directory."""
    from inference.collection import FAILURES, is_remote
    if is_remote(prefix):
        return contextlib.nullcontext()
    if os.path.exists(prefix) and not os.path.isdir(prefix):
        raise UsageError('--output %s is a file; the results go under a folder: choose a new path' % prefix)
    outputs = Outputs()
    outputs.claim(prefix, '--output', folder=True, resumable=os.path.isdir, kind='a folder')
    failures = os.path.join(prefix, FAILURES)
    if os.path.lexists(failures) and not os.path.isfile(failures):
        raise UsageError('%s is not a file: it is where batch.py writes its failures; move it away' % failures)
    return outputs.locked(prefix, 'another batch.py is writing into %s now; wait for it to end, or choose another '
                                  '--output' % prefix,
                          'cannot create --output %s (%%s); choose a writable folder' % prefix.replace('%', '%%'))


def import_beam():
    """Import Apache Beam with its import's notes about Google Cloud libraries that a local run does not need left
    out, and its logs down to its errors (a run's lines are ours)."""
    root = logging.getLogger()
    level, root.level = root.level, logging.ERROR
    try:
        import apache_beam  # noqa: F401 (imported here, where its notes are muted)
    except ImportError:
        raise UsageError('batch.py needs Apache Beam: pip install -r requirements-beam.txt') from None
    finally:
        root.setLevel(level)
    logging.getLogger('apache_beam').setLevel(logging.ERROR)
    # RunInference says this through the root logger at every model load when an optional import of its own
    # failed (its model manager's), though the resource module is there; it is about Beam, not the run.
    root.addFilter(lambda record: not str(record.msg).startswith('Resource module is not available'))


@cli_main
def main(argv=None):
    setup_logging()
    args, flags = parse_args(argv)
    import_beam()
    from inference import collection
    options, runner = pipeline_options(flags)
    check_prerequisites(args)
    check_masks_apart(args.mask or (), args.output)
    job = collection.Job(sources(args.input, args.output), args.output, args.format, args.quality, args.overwrite,
                         recipe_of(args))
    holding = held_output(args.output)
    check_model(job.recipe, not args.no_download)
    with holding:
        failed = run(job, options, runner)
    if failed:
        print('error: %d image%s could not be stylized (see %s)' % (failed, 's' * (failed > 1),
              collection.join(args.output, collection.FAILURES)), file=sys.stderr)
        sys.exit(1)


@contextlib.contextmanager
def one_line_failure():
    """A pipeline that fails ends with one line, exit status 1: the results written by then stay (each is complete),
    and the same command goes on from them. (A local output folder the run made and left empty goes with its
    lock: held_output.)"""
    try:
        yield
    except Exception as error:  # a worker's or a runner's; Beam wraps them in its own types
        reason = str(error).strip().split('\n')[-1]
        print('error: the pipeline stopped: %s (the results written so far are complete; run the same command to go '
              'on from them)' % shorten(reason, 400), file=sys.stderr)
        sys.exit(1)


def run(job, options, runner):
    """Run the pipeline to its end; logs its counts and rate, and returns how many images failed."""
    import apache_beam as beam
    from apache_beam.metrics.metric import MetricsFilter
    from inference.collection import NAMESPACE, PROGRESS, build
    start = time.time()
    log.info('stylizing %s into %s on %s', ', '.join(s.pattern for s in job.sources), job.prefix,
             type(runner).__name__)
    pipeline = beam.Pipeline(runner=runner, options=options)
    build(pipeline, job)
    PROGRESS.restart()
    with one_line_failure():
        result = pipeline.run()
        result.wait_until_finish()
    counts = {'stylized': 0, 'failed': 0, 'skipped': 0}
    for counter in result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))['counters']:
        counts[counter.key.metric.name] += counter.committed or counter.attempted or 0
    seconds = time.time() - start
    log.info('%d stylized, %d failed, %d left as they were (existing results) in %.1f s (%.2f images/s); '
             'results under %s', counts['stylized'], counts['failed'], counts['skipped'], seconds,
             counts['stylized'] / seconds, job.prefix)
    return counts['failed']


if __name__ == '__main__':
    run_and_exit(main)
