"""Perceptual losses (Johnson et al. 2016): content, Gram-matrix style and total variation.

The original ran the loss network once on [generated, content] stacked along the batch axis and split each end
point into its halves (split_halves); train.py runs it on each half separately, to the depth each needs. All
losses are normalized by the size of the generated half, as in the original: 2 * l2_loss(d) / size(d) is the
mean of the squared differences d.
"""
from utils import tf


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


def guided_gram(layer, guide):
    """The Gram matrix of one region of a feature map (Gatys et al. 2017's guided Gram matrices).

    Args:
      layer: float (1, H, W, C); guide: float (1, H, W, 1) in [0, 1], the region's share of each position.

    Returns:
      float (C, C): (F g)^T (F g) / (sum(g^2) * C), which is gram(layer)[0] where the guide is 1 everywhere.
    """
    weighted = tf.reshape(layer * guide, [-1, tf.shape(layer)[3]])
    area = tf.maximum(tf.reduce_sum(tf.square(guide)), 1e-6)
    return tf.matmul(weighted, weighted, transpose_a=True) / (area * tf.cast(tf.shape(layer)[3], tf.float32))


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
