"""The training images: found recursively in a folder, decoded, preprocessed and batched with tf.data.

Images are decoded with Pillow, as people have them: JPEG and PNG of any size and mode (grayscale, palette, RGBA,
CMYK, 16-bit). A file that cannot be read (corrupt, truncated, empty, not an image, a decompression bomb) is
skipped and counted; when more than `max_bad_fraction` of the files read so far failed, training stops with the
first few of them and why.
"""
import os
import threading

import numpy as np

from images import load_image
from utils import UsageError, log, tf

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png')
MIN_FILES_BEFORE_JUDGING = 20
TRAIN_DIR_FIX = 'set train_dir in the config or pass --train_dir; COCO 2014 train (train2014/) is the usual choice'


def walk_without(folder, left_out=()):
    """os.walk(folder) without the folders `left_out` (compared by real path) that lie below it: where a command
    writes its results, which a later run must not take for its inputs."""
    left_out = {os.path.realpath(path) for path in left_out}
    for root, folders, names in os.walk(folder):
        for name in [name for name in folders if os.path.realpath(os.path.join(root, name)) in left_out]:
            log.info('left out of %s: %s, where results go', folder, os.path.join(root, name))
            folders.remove(name)
        yield root, folders, names


def train_dir_missing(folder):
    """What is wrong with a training folder that is not a folder: missing, or a file."""
    return 'training folder %s: %s (%s)' % ('is a file, not a folder' if os.path.exists(folder) else 'not found',
                                            folder, TRAIN_DIR_FIX)


def list_images(folder, left_out=()):
    """Every JPEG and PNG file under `folder` (subfolders included, but not the folders `left_out`), sorted.

    Raises:
      UsageError: the folder is missing or holds no such image.
    """
    if not os.path.isdir(folder):
        raise UsageError(train_dir_missing(folder))
    files = sorted(os.path.join(root, name) for root, _, names in walk_without(folder, left_out) for name in names
                   if name.lower().endswith(IMAGE_EXTENSIONS))
    if not files:
        raise UsageError('training folder has no .jpg or .png images: %s (%s)' % (folder, TRAIN_DIR_FIX))
    return files


class TooManyBadImages(Exception):
    """Raised inside the input pipeline; the training loop turns it into a UsageError (see ImageLoader.error)."""


class ImageLoader:
    """Decodes training images in the tf.data pipeline and keeps count of the ones it cannot read."""

    def __init__(self, num_files, max_bad_fraction, min_side, max_pixels=None):
        """min_side: the training size (large images decode reduced, see utils.load_image); max_pixels: an image
        that would still decode to more pixels is skipped, so that one huge PNG cannot take gigabytes."""
        self.num_files, self.max_bad_fraction, self.min_side = num_files, max_bad_fraction, min_side
        self.max_pixels = max_pixels
        self.lock = threading.Lock()
        self.seen = set()  # files read at least once
        self.bad = {}  # path -> reason, in the order found

    def __call__(self, path_tensor):
        """(uint8 image (H, W, 3), whether it could be read) for a file name tensor."""
        path = path_tensor.numpy().decode('utf-8', 'replace')
        with self.lock:
            self.seen.add(path)
            known_bad = path in self.bad  # not decoded again every epoch
        if not known_bad:
            try:
                return load_image(path, 'training image', min_side=self.min_side, max_pixels=self.max_pixels)[0], True
            except UsageError as error:
                with self.lock:
                    self.bad[path] = str(error).split(': %s (' % path, 1)[-1].rstrip(')')
        with self.lock:
            if self.too_many():
                raise TooManyBadImages()
        return np.zeros((1, 1, 3), np.uint8), False

    def too_many(self):
        """Whether more than max_bad_fraction of the files read so far failed (judged after a few files)."""
        judged = len(self.seen) >= min(self.num_files, MIN_FILES_BEFORE_JUDGING)
        return judged and len(self.bad) > self.max_bad_fraction * len(self.seen)

    def too_many_error(self):
        """The UsageError that ends training when too many images failed."""
        examples = '; '.join('%s (%s)' % item for item in list(self.bad.items())[:3])
        return UsageError('%d of the %d training images read so far could not be read, more than max_bad_fraction '
                          '%g allows; first: %s (remove or fix them, or raise max_bad_fraction)'
                          % (len(self.bad), len(self.seen), self.max_bad_fraction, examples))


def image_batches(filenames, batch_size, height, width, preprocess_fn, loader, shuffle=True, seed=None):
    """An endless stream of preprocessed batches, reshuffled every pass over the files.

    Args:
      filenames: the image files (JPEG or PNG, any size and mode).
      batch_size: images per batch; every batch is full.
      height, width: the training size handed to preprocess_fn.
      preprocess_fn: preprocess_fn(uint8 image (H, W, 3), height, width) -> float (height, width, 3).
      loader: the ImageLoader that decodes the files and counts the unreadable ones (they are left out).
      shuffle: visit the files in a new random order on every pass (else in the given order).
      seed: the shuffle's seed, for repeatable runs.

    Returns:
      A float32 tensor (batch_size, height, width, 3); each run of it gives the next batch.
    """
    dataset = image_dataset(filenames, batch_size, height, width, preprocess_fn, loader, shuffle, seed)
    return tf.data.make_one_shot_iterator(dataset).get_next()


def image_dataset(filenames, batch_size, height, width, preprocess_fn, loader, shuffle=True, seed=None):
    """The tf.data.Dataset behind image_batches (same arguments), for the distribution strategies' input
    functions."""
    plain = tf.autograph.experimental.do_not_convert  # plain TensorFlow ops: nothing for AutoGraph to rewrite (it
    # would also write each function's converted source to a temporary file)

    @plain
    def load(filename):
        image, ok = tf.py_function(loader, [filename], [tf.uint8, tf.bool])
        image.set_shape([None, None, 3])
        return preprocess_fn(image, height, width), ok

    dataset = tf.data.Dataset.from_tensor_slices(list(filenames))
    if shuffle:
        dataset = dataset.shuffle(len(filenames), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.repeat().map(load, num_parallel_calls=tf.data.experimental.AUTOTUNE)
    dataset = dataset.filter(plain(lambda image, ok: ok)).map(plain(lambda image, ok: image))
    return dataset.batch(batch_size, drop_remainder=True).prefetch(2)


def sharded_input_fn(filenames, global_batch, height, width, preprocess_fn, loader):
    """The input function of a distribution strategy (strategy.make_input_fn_iterator): each worker reads its
    own share of the files, and its replicas take consecutive batches of that share, so that no two replicas see
    the same image in a step. Arguments as image_batches's; global_batch is split evenly over the replicas."""
    def input_fn(context):
        return image_dataset(filenames[context.input_pipeline_id::context.num_input_pipelines],
                             context.get_per_replica_batch_size(global_batch), height, width, preprocess_fn, loader)
    return input_fn
