"""Stylizing a collection of any size on Apache Beam (batch.py): file patterns in, results under a prefix out, with
eval.py's pixels.

The pipeline is made of Beam's own parts: fileio matches the patterns on any file system Beam knows, a GroupByKey by
result finds two inputs that would make one result, RunInference runs the model through StyleHandler (loaded once
per worker process, a style image's embedding predicted once with it), Beam's file systems read the images and
write the results, each complete or not at all (files.write_anywhere), and Beam's metrics count them. An image that
cannot be read, decoded, stylized or encoded goes to the failures file beside the results (one JSON object a line:
input, reason) and the pipeline goes on; a result already there is left as it is unless overwrite, so that a run
again after a crash or with new inputs does only what is missing.
"""
import dataclasses
import io
import json
import os
import posixpath
import shutil
import tempfile
import time

import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.ml.inference.base import ModelHandler, RunInference

import files
from images import check_encodable, encode_image, load_image, output_format
from inference import masks, styling
from inference.options import INPUT_EXTENSIONS
from utils import UsageError, log

NAMESPACE = 'batch'  # of the counters: stylized, failed, skipped
FAILURES = 'batch_failures.jsonl'
FAILED = 'failed'  # the tag of every step's failures
PROGRESS_SECONDS = 10


def is_remote(path):
    """Whether `path` is on a file system other than this machine's (gs://, s3://, hdfs://, ...)."""
    return '://' in path and not path.startswith('file://')


def join(prefix, name):
    """`name` (with / between its parts) under the prefix `prefix`, as its file system spells it."""
    parts = name.split('/')
    return posixpath.join(prefix, *parts) if is_remote(prefix) else os.path.join(prefix, *parts)


@dataclasses.dataclass(frozen=True)
class Source:
    """One --input: the pattern Beam matches, and how a match is named under the prefix (eval.py's folder mode):
    relative to a folder given (whose images alone, by extension, are taken), else by the file's own name."""
    pattern: str
    folder: str = None

    def name(self, path):
        """The match `path`'s name under the prefix, with / between folders; None for a file a folder holds that is
        not an image by its extension."""
        if self.folder is None:
            return path.replace('\\', '/').rsplit('/', 1)[-1]
        if not path.lower().endswith(INPUT_EXTENSIONS):
            return None
        return path[len(self.folder):].lstrip('/\\').replace('\\', '/')


@dataclasses.dataclass(frozen=True)
class Job:
    """A run: its sources, the prefix results go to, their format (None: each input's own) and quality, whether
    existing results are replaced, and what is asked of the model (styling.Recipe)."""
    sources: tuple
    prefix: str
    fmt: str
    quality: int
    overwrite: bool
    recipe: styling.Recipe

    def result_path(self, name):
        stem, extension = posixpath.splitext(name)
        return join(self.prefix, stem + ('.' + self.fmt if self.fmt else extension))


def count(what):
    """One more image `what` ('stylized', 'failed' or 'skipped'): Beam's counter, and this process's progress."""
    Metrics.counter(NAMESPACE, what).inc()
    PROGRESS.count(what)


def failure(path, reason):
    """A failures-file record, counted."""
    count('failed')
    return beam.pvalue.TaggedOutput(FAILED, {'input': path, 'reason': str(reason)})


def plan(grouped, job):
    """(result, the inputs that make it) -> (input, result) to stylize; a result that two inputs would make is a
    failure of each, and one already there is skipped unless job.overwrite."""
    result, inputs = grouped
    inputs = sorted(set(inputs))
    if len(inputs) > 1:
        for path in inputs:
            yield failure(path, 'the inputs %s make one result, %s; rename one, or stylize them apart'
                          % (' and '.join(inputs), result))
    elif not job.overwrite and FileSystems.exists(result):
        count('skipped')
    else:
        yield inputs[0], result


def read(planned):
    """(input, result) -> (input, result, rgb, alpha), the image read through Beam's file systems and decoded as
    eval.py decodes it."""
    path, result = planned
    try:
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
            data = f.read()
        rgb, alpha = load_image(io.BytesIO(data), 'content image', name=path)
    except (UsageError, OSError, MemoryError) as error:
        yield failure(path, error)
        return
    yield path, result, rgb, alpha


class StyleHandler(ModelHandler):
    """RunInference's handler of our inference runtime (inference.stylizer) for any model form eval.py loads.

    Beam's TensorFlow handlers load through Keras, which cannot load our SavedModels under Keras 3, and stack
    same-shape tensors, which photos are not: this one takes a batch of one image of any size, and returns the
    finished result, or the reason it could not be made."""

    def __init__(self, recipe, prefix=''):
        """recipe: the styling.Recipe; prefix: where the results go, under which a result's name is its photo's
        (by which a folder of masks holds the photo's mask)."""
        super().__init__(max_batch_size=1)
        self.recipe, self.prefix = recipe, prefix

    def load_model(self):
        """(stylizer, style_for): once per worker process, the model copied here first from a remote file system,
        and the style images read and their embeddings predicted."""
        model_file = local_copy(self.recipe.model_file)
        pixels = []
        for path in self.recipe.style_images:
            with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
                pixels.append(styling.load_style_image(path, self.recipe.style_size, io.BytesIO(f.read())))
        return Loaded(*styling.open_model(self.recipe, pixels, model_file))

    def run_inference(self, batch, model, inference_args=None):
        for path, result, rgb, alpha in batch:
            try:
                name = result[len(self.prefix):].lstrip('/\\')
                given = mask_maps(self.recipe.masks, name, *rgb.shape[:2])
                yield path, result, styling.stylize(self.recipe, model.stylizer, model.style_for, rgb, name,
                                                    progress=False, given=given), alpha
            except (UsageError, MemoryError) as error:
                yield path, result, error, None

    def get_num_bytes(self, batch):
        return sum(rgb.nbytes for _, _, rgb, _ in batch)  # what Beam's default, pickling the batch, would measure

    def get_metrics_namespace(self):
        return NAMESPACE + '_inference'


def mask_maps(masks_given, name, height, width):
    """{a mask's index: its grey map} of the masks (masks.Mask values) for the photo of relative name `name`, read
    through Beam's file systems: a mask file, or a folder (a prefix) holding one under the photo's name.

    Raises:
      UsageError: no mask for the photo, or one that is not a mask of its shape.
    """
    maps = {}
    for index, mask in enumerate(masks_given):
        path = masks.mask_file(mask, name, _is_mask_folder, FileSystems.exists, join)
        if path is None:
            raise UsageError('no mask for %s in %s (give it the photo\'s name)' % (name, mask.path))
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
            data = f.read()
        maps[index] = masks.load_mask(io.BytesIO(data), height, width, name, name=path)
    return maps


def _is_mask_folder(path):
    """A mask path that is not a file on its file system: a folder (a prefix) of masks by the photos' names."""
    return not FileSystems.exists(path) or (not is_remote(path) and os.path.isdir(path))


class Loaded:
    """A loaded model as Beam's shared handle keeps it (by weak reference, which a tuple cannot have)."""

    def __init__(self, stylizer, style_for):
        self.stylizer, self.style_for = stylizer, style_for


def local_copy(model_file):
    """`model_file` itself on this machine; from a remote file system (a bucket), a copy of its files (a checkpoint
    prefix's, a .pb or .tflite, a SavedModel folder's) in a temporary folder, whose path is returned."""
    if not is_remote(model_file):
        return model_file
    found = [m.path for m in FileSystems.match([model_file + '*'])[0].metadata_list]
    if not found:
        raise UsageError('model file not found: %s' % model_file)
    folder = tempfile.mkdtemp(prefix='fast-style-model-')
    for path in found:
        target = os.path.join(folder, posixpath.basename(model_file.rstrip('/')) + path[len(model_file.rstrip('/')):])
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as source, \
                open(target, 'wb') as copy:
            shutil.copyfileobj(source, copy)
    return os.path.join(folder, posixpath.basename(model_file.rstrip('/')))


class Write(beam.DoFn):
    """(input, result, pixels or the reason it failed, alpha) -> the result's file, encoded in its format at the
    job's quality and written complete or not at all."""

    def __init__(self, job):
        self.job = job

    def process(self, stylized):
        path, result, pixels, alpha = stylized
        try:
            if isinstance(pixels, Exception):
                raise pixels
            check_encodable(result, *pixels.shape[:2], option='the result')
            data = encode_image(pixels, output_format(result), alpha, self.job.quality)
            files.write_anywhere(result, data, [path], self.job.overwrite)
        except (UsageError, OSError, MemoryError) as error:
            yield failure(path, error)
            return
        count('stylized')


class Progress:
    """This process's counts and rate, logged every PROGRESS_SECONDS (on the local runner, the run's)."""

    def __init__(self):
        self.restart()

    def restart(self):
        """From nothing, now: a run in this process (the local runner's) starts."""
        self.start = self.last = time.time()
        self.counts = {'stylized': 0, 'failed': 0, 'skipped': 0}

    def count(self, what):
        self.counts[what] += 1
        now = time.time()
        if now - self.last >= PROGRESS_SECONDS:
            self.last = now
            log.info('%d stylized, %d failed, %d left as they were so far; %.2f images/s', self.counts['stylized'],
                     self.counts['failed'], self.counts['skipped'],
                     (self.counts['stylized'] + self.counts['failed']) / (now - self.start))


PROGRESS = Progress()


def build(pipeline, job):
    """The pipeline of `job` on `pipeline`; its failures go to <prefix>/batch_failures.jsonl (empty when none)."""
    named = [pipeline | 'Match %d' % index >> fileio.MatchFiles(source.pattern)
             | 'Name %d' % index >> beam.FlatMap(_named, source, job) for index, source in enumerate(job.sources)]
    planned = (named | 'All inputs' >> beam.Flatten() | 'By result' >> beam.GroupByKey()
               | 'Plan' >> beam.FlatMap(plan, job).with_outputs(FAILED, main='todo'))
    decoded = planned.todo | 'Read' >> beam.FlatMap(read).with_outputs(FAILED, main='images')
    stylized, dead = decoded.images | 'Stylize' >> RunInference(StyleHandler(job.recipe, job.prefix)).with_exception_handling()
    written = stylized | 'Write' >> beam.ParDo(Write(job)).with_outputs(FAILED, main='written')
    unexpected = dead.failed_inferences | 'Unexpected' >> beam.FlatMap(_unexpected)
    return ((planned[FAILED], decoded[FAILED], written[FAILED], unexpected) | 'All failures' >> beam.Flatten()
            | 'As JSON' >> beam.Map(json.dumps, sort_keys=True) | 'Gathered' >> beam.combiners.ToList()
            | 'Failures file' >> beam.Map(write_failures, join(job.prefix, FAILURES)))


def write_failures(lines, path):
    """The failures file, one JSON object a line in sorted order, written as every file is (files.py): it is this
    command's own, rewritten by every run, empty when nothing failed. Its lines are gathered on one worker, a few
    hundred bytes a failure."""
    files.write_anywhere(path, ''.join(line + '\n' for line in sorted(lines)).encode(), [], overwrite=True)


def _named(metadata, source, job):
    name = source.name(metadata.path)
    if name is not None:
        yield job.result_path(name), metadata.path


def _unexpected(dead_letter):
    """A failure record for each image of a batch whose inference raised what StyleHandler does not expect."""
    batch, error = dead_letter
    for path, _, _, _ in batch:
        yield failure(path, 'unexpected error: %r' % (error,)).value
