"""Magenta's arbitrary-style network at inference: its checkpoint checked and read, the style predictor and the
transformer built on fed weights, and style embeddings (from style images, mixed, or blended with a photo's own).

A style embedding is computed once per style image: the transformer takes the embedding, not the image, so a run
over many photos or a video's frames predicts each style once. --style_strength blends the embedding with the
photo's own (the photo taken as its style), Magenta's identity interpolation.
"""
import os
import threading

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


def network(per_pixel=False):
    """The transformer as tiling.TiledTransform runs it: its style placeholder takes an embedding (EMBEDDING,), or
    with per_pixel a model.StyleMap of embeddings (K, EMBEDDING) and their shares per pixel."""
    def build(image, normalize):
        if per_pixel:
            embedding = tiling.style_map_input(arbitrary.EMBEDDING)
            parameters, shares = arbitrary.style_parameters(embedding.basis), embedding.shares
        else:
            embedding = tf.placeholder(tf.float32, [arbitrary.EMBEDDING])
            parameters, shares = arbitrary.style_parameters(embedding[None]), None
        stylized = arbitrary.transform(tf.cast(image, tf.float32) / 255.0, parameters, normalize=normalize,
                                       shares=shares)
        _, height, width, _ = model._shape(image)
        return stylized[:, :height, :width] * 255.0, embedding
    return tiling.Network(build, 0, arbitrary.NORMALIZED_LAYER_STRIDES)


# An exported network's interface (export.py): uint8 `image` (N, H, W, 3) and `style_image` (1, h, w, 3), int32
# `style_size` (default 256) -> uint8 `stylized`; `style_embedding` (EMBEDDING,) is the predicted embedding, and
# feeding it skips the prediction.
EXPORT_TENSORS = ('image', 'style_image', 'style_size', 'style_embedding', 'stylized')


class Network:
    """The two networks in a graph: embed() predicts a style image's embedding, stylize() applies one.

    Attributes:
      tensors: the graph's tensors by role: style_image, style_size and predicted (the style predictor's input,
        size and output); image, embedding and stylized (the transformer's inputs and output).
      weights: name -> array of the variables (tiled inference builds the transformer again on them).
    """

    def __init__(self, tensors, weights, predictor_feed=None, transformer_feed=None):
        self.tensors, self.weights = tensors, weights
        self.predictor_feed, self.transformer_feed = predictor_feed or {}, transformer_feed or {}

    def embed(self, session, pixels, side, what='style image'):
        """The style embedding, float32 (EMBEDDING,), of a uint8 image (h, w, 3) resized to smaller side `side`."""
        check_style_shape(pixels.shape[0], pixels.shape[1], side, what)
        return session.run(self.tensors['predicted'], {self.tensors['style_image']: pixels[None],
                                                       self.tensors['style_size']: side, **self.predictor_feed})

    def stylize(self, session, batch, embedding):
        return session.run(self.tensors['stylized'], {self.tensors['image']: batch,
                                                      self.tensors['embedding']: embedding, **self.transformer_feed})


def from_checkpoint(prefix, shapes, graph):
    """The Network of a checkpoint (prefix, its variables' shapes), built in `graph` on its weights fed from
    memory (see model.fed_weights)."""
    with graph.as_default():
        scope, placeholders = model.fed_weights()
        tensors = {'style_image': tf.placeholder(tf.uint8, [1, None, None, 3], name='style_image'),
                   'style_size': tf.placeholder(tf.int32, [], name='style_size'),
                   'image': tf.placeholder(tf.uint8, [None, None, None, 3], name='images'),
                   'embedding': tf.placeholder(tf.float32, [arbitrary.EMBEDDING], name='embedding')}
        with scope:
            tensors['predicted'] = arbitrary.style_embedding(
                arbitrary.style_input(tensors['style_image'], tensors['style_size']))[0]
            tensors['stylized'] = arbitrary.stylize_uint8(tensors['image'],
                                                          arbitrary.style_parameters(tensors['embedding'][None]))
    # The graph's placeholders are the variables the network reads: no scratch graph of Inception to build.
    weights = check_checkpoint(prefix, shapes, {name: placeholder.shape.as_list()
                                                for name, placeholder in placeholders.items()})
    feeds = [{placeholder: weights[name] for name, placeholder in placeholders.items()
              if name.startswith(_PREDICTOR) == predictor} for predictor in (True, False)]
    return Network(tensors, weights, *feeds)


def from_frozen_graph(graph):
    """The Network of a frozen graph from export.py, imported into `graph` without a prefix."""
    tensors = {role: graph.get_tensor_by_name(name + ':0') for role, name in (
        ('image', 'image'), ('style_image', 'style_image'), ('style_size', 'style_size'),
        ('embedding', 'style_embedding'), ('stylized', 'stylized'))}
    return Network(dict(tensors, predicted=tensors['embedding']), None)


def from_saved_model(graph, signatures, path):
    """The Network of a SavedModel from export.py loaded into `graph`, by its predict_style and transfer signatures;
    its transformer's weights are read from its variables, for tiled inference."""
    try:
        predict, transfer = signatures[PREDICT_SIGNATURE], signatures[TRANSFER_SIGNATURE]
        tensors = {'style_image': predict.inputs['style_image'].name, 'style_size': predict.inputs['style_size'].name,
                   'predicted': predict.outputs['style_embedding'].name, 'image': transfer.inputs['image'].name,
                   'embedding': transfer.inputs['style_embedding'].name, 'stylized': transfer.outputs['stylized'].name}
        tensors = {role: graph.get_tensor_by_name(name) for role, name in tensors.items()}
    except (KeyError, ValueError) as error:
        raise UsageError('%s is not an arbitrary-style SavedModel from export.py (no %s)' % (path, error)) from None
    prefix = os.path.join(path, 'variables', 'variables')
    shapes = checkpoints.read_checkpoint_shapes(prefix, 'SavedModel variables')
    transformer = {name: shape for name, shape in shapes.items() if not name.startswith(_PREDICTOR)}
    return Network(tensors, checkpoints.read_weights(prefix, transformer))


PREDICT_SIGNATURE, TRANSFER_SIGNATURE = 'predict_style', 'transfer'  # the SavedModel's signatures beside serving


class TFLiteNetwork:
    """An exported .tflite of the network: its predict_style and transfer signatures, one call at a time (the
    interpreter holds one set of inputs; serve.py's workers take turns). Same interface as Network; no session."""

    def __init__(self, interpreter):
        self.predict = interpreter.get_signature_runner(PREDICT_SIGNATURE)
        self.transfer = interpreter.get_signature_runner(TRANSFER_SIGNATURE)
        self.one_at_a_time = threading.Lock()

    def embed(self, _session, pixels, side, what='style image'):
        check_style_shape(pixels.shape[0], pixels.shape[1], side, what)
        with self.one_at_a_time:
            return self.predict(style_image=pixels[None], style_size=np.int32(side))['style_embedding'].copy()

    def stylize(self, _session, batch, embedding):
        with self.one_at_a_time:  # resized to each image's size
            return np.stack([self.transfer(image=image[None], style_embedding=embedding)['stylized'][0].copy()
                             for image in batch])


def build_export():
    """The exported interface (EXPORT_TENSORS) around the network, with variables; returns the stylized tensor.

    Beside it, styles by region: float `mask` (1, H, W, 1), the style's share of each pixel (the rest takes the
    photo's own style, predicted from the first image at style_size), gives `stylized_by_region`, as eval.py's
    --mask PATH with one style image."""
    from inference.model_files import MASK_INPUT  # which reads this module's EXPORT_TENSORS
    image = tf.placeholder(tf.uint8, [None, None, None, 3], name='image')
    style_image = tf.placeholder(tf.uint8, [1, None, None, 3], name='style_image')
    side = tf.placeholder_with_default(arbitrary.STYLE_SIZE, [], name='style_size')
    embedding = tf.identity(arbitrary.style_embedding(arbitrary.style_input(style_image, side))[0],
                            name='style_embedding')
    stylized = tf.identity(arbitrary.stylize_uint8(image, arbitrary.style_parameters(embedding[None])),
                           name='stylized')
    share = tf.clip_by_value(model.finite_or_zero(tf.placeholder(tf.float32, [1, None, None, 1],
                                                                 name=MASK_INPUT)), 0, 1)
    with tf.variable_scope(tf.get_variable_scope(), reuse=True):
        own = arbitrary.style_embedding(arbitrary.style_input(image[:1], side))[0]
        tf.identity(arbitrary.stylize_uint8(image, arbitrary.style_parameters(tf.stack([embedding, own])),
                                            shares=tf.concat([share, 1 - share], -1)), name=BY_REGION_OUTPUT)
    return stylized


BY_REGION_OUTPUT = 'stylized_by_region'  # the exports' style by region (build_export)


def check_style_shape(height, width, side, what='style image'):
    """Raise UsageError for an image too small to hold a style, so elongated that resizing its smaller side to
    `side` would make a huge map, or whose map at `side` would be over the style network's input bound
    (nets.arbitrary.MAX_RESIZED_STYLE_PIXELS): what bounds the memory is the map, not the file."""
    if min(height, width) < MIN_STYLE_SIDE:
        raise UsageError('%s is %dx%d: too small to hold a style (at least %d pixels a side)'
                         % (what, width, height, MIN_STYLE_SIDE))
    if max(height, width) > arbitrary.MAX_STYLE_ASPECT * min(height, width):
        raise UsageError('%s is %dx%d: its sides differ more than %d times, and its smaller side resized to %d would '
                         'make it huge; crop it' % (what, width, height, arbitrary.MAX_STYLE_ASPECT, side))
    resized = arbitrary.resized_style_shape(height, width, side)
    if resized[0] * resized[1] > arbitrary.MAX_RESIZED_STYLE_PIXELS:
        raise UsageError('%s is %dx%d: its smaller side resized to %d makes it %dx%d, over the %.1f megapixels the '
                         'style network takes; use a style size of at most %d for it, or crop it'
                         % (what, width, height, side, resized[1], resized[0],
                            arbitrary.MAX_RESIZED_STYLE_PIXELS / 1e6, largest_style_side(height, width)))


def largest_style_side(height, width):
    """The largest style size at which an image of `height` x `width` stays within the style network's bound."""
    side = int(min(height, width) * (arbitrary.MAX_RESIZED_STYLE_PIXELS / (height * width)) ** 0.5) + 1
    while np.prod(arbitrary.resized_style_shape(height, width, side)) > arbitrary.MAX_RESIZED_STYLE_PIXELS:
        side -= 1
    return side


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
