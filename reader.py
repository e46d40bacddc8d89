"""The training images: found recursively in a folder, decoded, preprocessed and batched with tf.data."""
import os

from utils import UsageError, tf

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png')


def list_images(folder):
    """Every JPEG and PNG file under `folder` (subfolders included), sorted.

    Raises:
      UsageError: the folder is missing or holds no such image.
    """
    fix = 'set train_dir in the config or pass --train_dir; COCO 2014 train (train2014/) is the usual choice'
    if not os.path.isdir(folder):
        raise UsageError('training folder not found: %s (%s)' % (folder, fix))
    files = sorted(os.path.join(root, name) for root, _, names in os.walk(folder) for name in names
                   if name.lower().endswith(IMAGE_EXTENSIONS))
    if not files:
        raise UsageError('training folder has no .jpg or .png images: %s (%s)' % (folder, fix))
    return files


def image_batches(filenames, batch_size, height, width, preprocess_fn, shuffle=True, seed=None):
    """An endless stream of preprocessed batches, reshuffled every pass over the files.

    Args:
      filenames: the image files (JPEG or PNG, any size, any number of channels); files that fail to decode
        are skipped.
      batch_size: images per batch; every batch is full.
      height, width: the training size handed to preprocess_fn.
      preprocess_fn: preprocess_fn(uint8 image (H, W, 3), height, width) -> float (height, width, 3).
      shuffle: visit the files in a new random order on every pass (else in the given order).
      seed: the shuffle's seed, for repeatable runs.

    Returns:
      A float32 tensor (batch_size, height, width, 3); each run of it gives the next batch.
    """
    def load(filename):
        image = tf.io.decode_image(tf.io.read_file(filename), channels=3, expand_animations=False)
        return preprocess_fn(image, height, width)

    dataset = tf.data.Dataset.from_tensor_slices(list(filenames))
    if shuffle:
        dataset = dataset.shuffle(len(filenames), seed=seed, reshuffle_each_iteration=True)
    # A corrupt or truncated file is skipped rather than ending hours of training.
    dataset = dataset.repeat().map(load, num_parallel_calls=tf.data.experimental.AUTOTUNE).ignore_errors()
    dataset = dataset.batch(batch_size, drop_remainder=True).prefetch(2)
    return tf.data.make_one_shot_iterator(dataset).get_next()
