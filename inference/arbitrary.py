"""Magenta's arbitrary-style network at inference: its checkpoint checked and read, the style predictor and the
transformer built on fed weights, and style embeddings (from style images, mixed, or blended with a photo's own).

A style embedding is computed once per style image: the transformer takes the embedding, not the image, so a run
over many photos or a video's frames predicts each style once. --style_strength blends the embedding with the
photo's own (the photo taken as its style), Magenta's identity interpolation.
"""
import numpy as np

import checkpoints
import model
from inference import tiling
from nets import arbitrary
from utils import UsageError, tf

WHAT = "arbitrary-style checkpoint (Magenta's)"
FIX = 'pass the model.ckpt of Magenta\'s arbitrary_style_transfer.tar.gz, see pretrained/README.md'
MIN_STYLE_SIDE = 16  # a smaller style image is surely a mistake: it holds no strokes to predict a style from
STYLE_MAX_PIXELS = 40000000  # style images are decoded whole (as Magenta resizes them) up to this many pixels
_PREDICTOR = ('InceptionV3/', 'Conv/')  # the style predictor's variables; the rest are the transformer's


def check_checkpoint(prefix, shapes, expected):
    """The network's weights (name -> array) from a checkpoint in Magenta's layout, whose variables are `shapes`
    (name -> shape); `expected` (name -> shape) are the ones the network reads, the others (a global step,
    optimizer slots) are ignored.

    Raises:
      UsageError: variables missing (naming them) or of other shapes, unreadable or not finite.
    """
    missing = sorted(name for name in expected if name not in shapes)
    if missing:
        raise UsageError('%s is not a complete %s: %d of its %d variables are missing: %s%s (%s)'
                         % (prefix, WHAT, len(missing), len(expected), ', '.join(missing[:4]),
                            ' and %d more' % (len(missing) - 4) if len(missing) > 4 else '', FIX))
    checkpoints.check_variable_shapes(shapes, expected, prefix, WHAT, FIX)
    return checkpoints.read_weights(prefix, expected)


def network():
    """The transformer as tiling.TiledTransform runs it: its style placeholder takes an embedding (EMBEDDING,)."""
    def build(image, normalize):
        embedding = tf.placeholder(tf.float32, [arbitrary.EMBEDDING])
        stylized = arbitrary.transform(tf.cast(image, tf.float32) / 255.0,
                                       arbitrary.style_parameters(embedding[None]), normalize=normalize)
        _, height, width, _ = model._shape(image)
        return stylized[:, :height, :width] * 255.0, embedding
    return tiling.Network(build, 0, arbitrary.NORMALIZED_LAYER_STRIDES)


class ArbitraryNetwork:
    """The two networks, built in `graph` on the weights of a checkpoint, fed from memory (see model.fed_weights)."""

    def __init__(self, prefix, shapes, graph):
        """prefix: the checkpoint; shapes: its variables' shapes (name -> shape)."""
        with graph.as_default():
            scope, placeholders = model.fed_weights()
            self.style_image = tf.placeholder(tf.uint8, [1, None, None, 3], name='style_image')
            self.style_size = tf.placeholder(tf.int32, [], name='style_size')
            self.images = tf.placeholder(tf.uint8, [None, None, None, 3], name='images')
            self.embedding = tf.placeholder(tf.float32, [arbitrary.EMBEDDING], name='embedding')
            with scope:
                predicted = arbitrary.style_embedding(arbitrary.style_input(self.style_image, self.style_size))
                self.predicted = predicted[0]
                self.output = arbitrary.stylize_uint8(self.images, arbitrary.style_parameters(self.embedding[None]))
        # The graph's placeholders are the variables the network reads: no scratch graph of Inception to build.
        self.weights = weights = check_checkpoint(prefix, shapes, {name: placeholder.shape.as_list()
                                                                   for name, placeholder in placeholders.items()})
        self.predictor_feed = {placeholder: weights[name] for name, placeholder in placeholders.items()
                               if name.startswith(_PREDICTOR)}
        self.transformer_feed = {placeholder: weights[name] for name, placeholder in placeholders.items()
                                 if not name.startswith(_PREDICTOR)}

    def embed(self, session, pixels, side, what='style image'):
        """The style embedding, float32 (EMBEDDING,), of a uint8 image (h, w, 3) resized to smaller side `side`."""
        check_style_shape(pixels.shape[0], pixels.shape[1], side, what)
        return session.run(self.predicted, {self.style_image: pixels[None], self.style_size: side,
                                            **self.predictor_feed})

    def stylize(self, session, batch, embedding):
        return session.run(self.output, {self.images: batch, self.embedding: embedding, **self.transformer_feed})


def check_style_shape(height, width, side, what='style image'):
    """Raise UsageError for an image too small to hold a style, or so elongated that resizing its smaller side to
    `side` would make a huge map."""
    if min(height, width) < MIN_STYLE_SIDE:
        raise UsageError('%s is %dx%d: too small to hold a style (at least %d pixels a side)'
                         % (what, width, height, MIN_STYLE_SIDE))
    if max(height, width) > arbitrary.MAX_STYLE_ASPECT * min(height, width):
        raise UsageError('%s is %dx%d: its sides differ more than %d times, and its smaller side resized to %d would '
                         'make it huge; crop it' % (what, width, height, arbitrary.MAX_STYLE_ASPECT, side))


def mixed_embedding(embeddings, mix):
    """The embeddings (K, EMBEDDING) combined in the shares `mix` (K non-negative weights with a positive sum, or
    None for one embedding)."""
    embeddings = np.asarray(embeddings, np.float32)
    if mix is None:
        if len(embeddings) != 1:
            raise UsageError('%d style images: give their shares with --style_mix w1,...,w%d'
                             % (len(embeddings), len(embeddings)))
        return embeddings[0]
    if len(mix) != len(embeddings):
        raise UsageError('--style_mix gives %d weights for %d style images' % (len(mix), len(embeddings)))
    weights = np.asarray(mix, np.float64)
    with np.errstate(over='ignore'):
        total = weights.sum()
    if not ((weights >= 0).all() and 0 < total < np.inf):
        raise UsageError('--style_mix takes non-negative weights with a positive, finite sum, got %s' % list(mix))
    return ((weights / total) @ embeddings.astype(np.float64)).astype(np.float32)


def with_strength(embedding, strength, own):
    """Magenta's identity interpolation: strength * embedding + (1 - strength) * `own()`, the photo's own
    embedding (computed only when strength < 1)."""
    if strength >= 1:
        return np.asarray(embedding, np.float32)
    return (strength * np.asarray(embedding, np.float64) + (1 - strength) * own()).astype(np.float32)
