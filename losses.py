"""Perceptual losses (Johnson et al. 2016): content, Gram-matrix style and total variation.

The original ran the loss network once on [generated, content] stacked along the batch axis and split each end
point into its halves (split_halves); train.py runs it on each half separately, to the depth each needs. All
losses are normalized by the size of the generated half, as in the original: 2 * l2_loss(d) / size(d) is the
mean of the squared differences d.
"""
import os

import numpy as np

from files import write_image
from nets import nets_factory
from preprocessing import preprocessing_factory
from utils import UsageError, log, tf


def gram(layer):
    """Gram matrices of a batch of feature maps.

    Args:
      layer: float (N, H, W, C).

    Returns:
      float (N, C, C): F^T F / (H * W * C) per image, with F the map reshaped to (H * W, C).
    """
    shape = tf.shape(layer)
    features = tf.reshape(layer, tf.stack([shape[0], -1, shape[3]]))
    return tf.matmul(features, features, transpose_a=True) / tf.cast(shape[1] * shape[2] * shape[3], tf.float32)


def _mean_square(difference, size):
    return tf.nn.l2_loss(difference) * 2 / tf.cast(size, tf.float32)


def split_halves(end_points):
    """End points of the network run on [generated, content] -> (generated's end points, content's)."""
    halves = {layer: tf.split(value, 2, 0) for layer, value in end_points.items()}
    return ({layer: pair[0] for layer, pair in halves.items()}, {layer: pair[1] for layer, pair in halves.items()})


def content_loss(generated_points, content_points, content_layers):
    """Sum over the layers of the mean squared difference between generated and content features."""
    loss = 0.0
    for layer in content_layers:
        generated = generated_points[layer]
        loss += _mean_square(generated - content_points[layer], tf.size(generated))
    return loss


def style_loss(generated_points, style_grams, style_layers):
    """Sum over the layers of the squared Gram differences, normalized by the generated map's size.

    Args:
      generated_points: the loss network's end points on the generated images.
      style_grams: one (C, C) Gram matrix of the style image per style layer.
      style_layers: the end point names, in the order of style_grams.

    Returns:
      (total style loss, dict layer -> that layer's loss).
    """
    per_layer = {}
    for style_gram, layer in zip(style_grams, style_layers):
        generated = generated_points[layer]
        per_layer[layer] = _mean_square(gram(generated) - style_gram, tf.size(generated))
    return tf.add_n(list(per_layer.values())), per_layer


def total_variation_loss(images):
    """Mean squared differences of vertically and horizontally neighbouring pixels, halved, summed."""
    dy = images[:, 1:, :, :] - images[:, :-1, :, :]
    dx = images[:, :, 1:, :] - images[:, :, :-1, :]
    return tf.nn.l2_loss(dx) / tf.cast(tf.size(dx), tf.float32) + tf.nn.l2_loss(dy) / tf.cast(tf.size(dy), tf.float32)


def final_endpoint(network_fn, layers):
    """The deepest of `layers` in the loss network: building stops there.

    Raises:
      UsageError: a layer is not an end point of the network; the message lists the valid ones.
    """
    order = network_fn.end_points
    for layer in layers:
        if layer not in order:
            raise UsageError('unknown layer %r for loss model %s (valid: %s)'
                             % (layer, network_fn.__name__, ', '.join(order)))
    return max(layers, key=order.index)


def get_style_features(config, style_pixels, init_fn_factory, target_dir='generated'):
    """Gram matrices of the style image at the training size, one per style layer.

    The style image is preprocessed like a training image (cover-resize to image_size, central crop); that
    crop is written to <target_dir>/target_style_<naming>.jpg so the user can see what the model learns from.

    Args:
      config: the style config.
      style_pixels: the style image, uint8 (H, W, 3).
      init_fn_factory: builds the loss network's init function, init_fn_factory() -> fn(session); called
        after the network is built.
      target_dir: where the style target image goes (None: not written).

    Returns:
      A list of float32 numpy arrays (C, C), in the order of config.style_layers.
    """
    network_fn = nets_factory.get_network_fn(config.loss_model, num_classes=1, is_training=False)
    preprocess, unprocess = preprocessing_factory.get_preprocessing(config.loss_model, is_training=False)
    with tf.Graph().as_default():
        image = preprocess(tf.constant(style_pixels), config.image_size, config.image_size)
        last_layer = final_endpoint(network_fn, config.style_layers)
        _, end_points = network_fn(tf.expand_dims(image, 0), final_endpoint=last_layer)
        grams = [tf.squeeze(gram(end_points[layer]), [0]) for layer in config.style_layers]
        target = tf.cast(tf.clip_by_value(unprocess(image), 0, 255), tf.uint8)
        init_fn = init_fn_factory()
        with tf.Session() as sess:
            init_fn(sess)
            grams_value, target_value = sess.run([grams, target])
    if target_dir is not None:
        target_path = os.path.join(target_dir, 'target_style_%s.jpg' % config.naming)
        write_image(target_path, target_value)
        log.info('style target (%s cropped to %d px) written to %s', config.style_image, config.image_size,
                 target_path)
    return [np.asarray(g, np.float32) for g in grams_value]
