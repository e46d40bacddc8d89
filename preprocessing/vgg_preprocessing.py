"""VGG preprocessing as in fast style transfer: cover-resize (bilinear), central crop, ImageNet mean subtraction.

The images stay RGB; slim's VGG checkpoints expect RGB minus the per-channel means below. No random crop or
flip is applied in training either, as in the original.
"""
from utils import tf

_R_MEAN = 123.68
_G_MEAN = 116.78
_B_MEAN = 103.94
MEANS = (_R_MEAN, _G_MEAN, _B_MEAN)


def mean_image_subtraction(image, means=MEANS):
    """Subtract the per-channel means from a float image or batch (last axis RGB)."""
    return tf.cast(image, tf.float32) - tf.constant(means, dtype=tf.float32)


def mean_image_addition(image, means=MEANS):
    """Add the per-channel means back: the inverse of mean_image_subtraction."""
    return image + tf.constant(means, dtype=tf.float32)


def _cover_size(height, width, target_height, target_width):
    """The size that covers target_height x target_width with the image's aspect ratio, rounded."""
    height = tf.cast(height, tf.float32)
    width = tf.cast(width, tf.float32)
    scale = tf.maximum(target_height / height, target_width / width)
    return tf.cast(tf.round(height * scale), tf.int32), tf.cast(tf.round(width * scale), tf.int32)


def aspect_preserving_resize(image, target_height, target_width):
    """Resize an image (H, W, C) bilinearly so that it covers the target size, keeping its aspect ratio.

    The resize is TensorFlow 1's (no half-pixel centres), as in the original: its pixels are what the
    published models were trained on.
    """
    shape = tf.shape(image)
    new_height, new_width = _cover_size(shape[0], shape[1], target_height, target_width)
    resized = tf.image.resize_bilinear(tf.expand_dims(image, 0), tf.stack([new_height, new_width]),
                                       align_corners=False, half_pixel_centers=False)
    return tf.squeeze(resized, [0])


def central_crop(image, crop_height, crop_width):
    """The central crop_height x crop_width window of an image (H, W, C) at least that large."""
    shape = tf.shape(image)
    top = (shape[0] - crop_height) // 2
    left = (shape[1] - crop_width) // 2
    return tf.slice(image, tf.stack([top, left, 0]), tf.stack([crop_height, crop_width, -1]))


def preprocess_image(image, output_height, output_width, is_training=False):
    """Turn a decoded RGB image into the loss network's input.

    Args:
      image: a uint8 or float tensor (H, W, 3), RGB in 0..255.
      output_height, output_width: the size to cover and crop to (Python ints).
      is_training: accepted for slim's interface; training and evaluation preprocess alike.

    Returns:
      A float32 tensor (output_height, output_width, 3) with the means subtracted.
    """
    del is_training  # the original applies no augmentation
    image = aspect_preserving_resize(tf.cast(image, tf.float32), output_height, output_width)
    image = central_crop(image, output_height, output_width)
    image.set_shape([output_height, output_width, 3])
    return mean_image_subtraction(image)


def unprocess_image(image):
    """Turn a preprocessed image back into RGB 0..255 (float)."""
    return mean_image_addition(image)
