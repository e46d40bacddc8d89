"""Magenta's arbitrary-style network (Ghiasi et al. 2017), with the variable names of its published checkpoint.

Two networks. The style predictor maps a style image, resized so that its smaller side is 256 and scaled to
[0, 1], through Inception-v3 up to Mixed_6e (slim's, batch norm with epsilon 0.001, ReLU6), a spatial mean and a
1x1 convolution to a 100-number embedding. From the embedding, thirteen pairs of 1x1 convolutions give the scale
(gamma) and offset (beta) of the transformer's thirteen style-normalized layers. The transformer maps a content
image in [0, 1] to a stylized one in [0, 1]: three contracting convolutions with batch norm (fixed statistics),
five residual blocks and three upsampling layers, each normalized over the image (instance moments, epsilon 1e-5)
and scaled and offset by the style's parameters. Every convolution reflect-pads by kernel // 2.

  InceptionV3/<layer>/weights, InceptionV3/<layer>/BatchNorm/{beta,moving_mean,moving_variance}  (to Mixed_6e)
  Conv/{weights (1,1,768,100), biases}                                                          the embedding
  style_params/transformer/<layer>/StyleNorm/Conv/{weights,biases}  (1,1,100,C)                 beta
  style_params/transformer/<layer>/StyleNorm/Conv_1/{weights,biases}                            gamma
  transformer/contract/conv{1,2,3}/weights (9x9 3->32, 3x3 s2 32->64, 3x3 s2 64->128) and /BatchNorm/...
  transformer/residual/residual{1..5}/conv{1,2}/weights (3,3,128,128)
  transformer/expand/conv{1,2,3}/conv/weights (3,3,128,64), (3,3,64,32), (9,9,32,3)

transform_reference() is Magenta's formulation, kept as the reference that tests compare with; transform()
computes the same function faster (see its docstring).
"""
import numpy as np

import model
from utils import slim, tensorflow_module, tf

STYLE_SIZE = 256  # the smaller side the style image is resized to, as Magenta's evaluation does
STYLE_SIZES = (64, 1024)  # what --style_size accepts: Inception-v3 to Mixed_6e needs 43 pixels, and time grows fast
EMBEDDING = 100  # the style embedding's size (Magenta's style_prediction_bottleneck)
INCEPTION_END = 'Mixed_6e'
BATCH_NORM_EPSILON = 0.001  # slim's batch norm default: Inception's layers and the contracting layers alike
STYLE_NORM_EPSILON = 1e-5
# The style-normalized layers (scope under transformer/, channels), in the order the transformer runs them.
STYLE_NORM_LAYERS = (tuple(('residual/residual%d/conv%d' % (block, conv), 128)
                           for block in range(1, 6) for conv in (1, 2))
                     + (('expand/conv1/conv', 64), ('expand/conv2/conv', 32), ('expand/conv3/conv', 3)))
# How many times smaller than the content image each style-normalized layer's map is (tiled inference needs it).
NORMALIZED_LAYER_STRIDES = (4,) * 10 + (2, 1, 1)
MAX_STYLE_ASPECT = 16  # longer / shorter side of a style image: a 1 x 10000 strip would resize to 2.6 gigapixels
# The style network's input after resizing, in pixels: 1024 x 2048, about 0.4 GB to predict from. The file's own
# pixels are bounded apart (inference.arbitrary.STYLE_MAX_PIXELS); a 16 x 256 strip at --style_size 1024 would be
# 1024 x 16384 here, 3.2 GB.
MAX_RESIZED_STYLE_PIXELS = 1024 * 2048


def resized_style_shape(height, width, side=STYLE_SIZE):
    """The (height, width) Magenta resizes a style image to: the smaller side `side`, the other scaled in float32
    and truncated, as its _smallest_size_at_least computes them."""
    scale = np.float32(side) / np.float32(width if height > width else height)
    return int(np.float32(height) * scale), int(np.float32(width) * scale)


def style_input(images, side=STYLE_SIZE):
    """Magenta's preprocessing of style images: uint8 (1, h, w, 3) -> float32 in [0, 1], bilinearly resized (its
    legacy resize, corners not aligned) so that the smaller side is `side`."""
    height, width = tf.unstack(tf.cast(tf.shape(images)[1:3], tf.float32))
    scale = tf.cast(side, tf.float32) / tf.where(height > width, width, height)
    size = tf.cast(tf.stack([height * scale, width * scale]), tf.int32)
    # On floats, as the same arithmetic on uint8 is: TFLite resizes uint8 only in quantized models.
    resized = tf.image.resize_bilinear(tf.cast(images, tf.float32), size, align_corners=False,
                                       half_pixel_centers=False)
    return resized / 255.0


def batch_norm(x):
    """slim's batch_norm at inference as both networks use it (an offset, no scale, epsilon 0.001), with its
    variable names: slim's own needs Keras or TensorFlow internals that TensorFlow 2 no longer has."""
    with tf.variable_scope('BatchNorm'):
        beta, mean, variance = (tf.get_variable(name, x.shape[-1:], tf.float32)
                                for name in ('beta', 'moving_mean', 'moving_variance'))
    return tf.nn.batch_normalization(x, mean, variance, beta, None, BATCH_NORM_EPSILON)


def style_embedding(images):
    """The style predictor's embedding of style images: float32 (N, h, w, 3) in [0, 1] -> (N, EMBEDDING)."""
    inception = tensorflow_module('tf_slim.nets.inception_v3')
    with slim.arg_scope([slim.conv2d], activation_fn=tf.nn.relu6, normalizer_fn=batch_norm):
        _, end_points = inception.inception_v3_base(images, final_endpoint=INCEPTION_END, scope='InceptionV3')
    features = tf.reduce_mean(end_points[INCEPTION_END], [1, 2], keepdims=True)
    embedding = slim.conv2d(features, EMBEDDING, [1, 1], activation_fn=None, normalizer_fn=None, scope='Conv')
    return tf.squeeze(embedding, [1, 2])


def style_parameters(embedding):
    """Each style-normalized layer's (gamma, beta), float32 (N, C), from embeddings (N, EMBEDDING)."""
    features = embedding[:, None, None, :]
    parameters = []
    for scope, channels in STYLE_NORM_LAYERS:
        with tf.variable_scope('style_params/transformer/%s/StyleNorm' % scope):
            beta = slim.conv2d(features, channels, [1, 1], activation_fn=None, normalizer_fn=None, scope='Conv')
            gamma = slim.conv2d(features, channels, [1, 1], activation_fn=None, normalizer_fn=None, scope='Conv_1')
        parameters.append((gamma[:, 0, 0], beta[:, 0, 0]))
    return parameters


def _moments_style_norm(parameters):
    """Magenta's conditional style normalization as slim's normalizer_fn, taking the layers' parameters in turn."""
    remaining = iter(parameters)

    def style_norm(x):
        gamma, beta = next(remaining)
        mean, variance = tf.nn.moments(x, [1, 2], keepdims=True)
        return tf.nn.batch_normalization(x, mean, variance, beta[:, None, None], gamma[:, None, None],
                                         STYLE_NORM_EPSILON)
    return style_norm


def _padded_conv(x, kernel, stride, outputs, scope, activation_fn):
    pad = kernel // 2
    padded = tf.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]], mode='REFLECT')
    return slim.conv2d(padded, outputs, kernel, stride=stride, padding='VALID', activation_fn=activation_fn,
                       scope=scope)


def _resize_conv(x, kernel, stride, outputs, scope, activation_fn):
    with tf.variable_scope(scope):
        size = tf.shape(x)[1:3] * stride
        return _padded_conv(tf.image.resize_nearest_neighbor(x, size), kernel, 1, outputs, 'conv', activation_fn)


def transform_reference(content, parameters):
    """Magenta's transformer as its nza_model writes it: float32 (N, H, W, 3) in [0, 1] -> stylized, in [0, 1], of
    size 4 * ceil(H / 4) x 4 * ceil(W / 4); H and W at least 5 (tf.pad's reflection). parameters: from
    style_parameters."""
    with tf.variable_scope('transformer'):
        with slim.arg_scope([slim.conv2d], normalizer_fn=batch_norm):
            with tf.variable_scope('contract'):
                h = _padded_conv(content, 9, 1, 32, 'conv1', tf.nn.relu)
                h = _padded_conv(h, 3, 2, 64, 'conv2', tf.nn.relu)
                h = _padded_conv(h, 3, 2, 128, 'conv3', tf.nn.relu)
        with slim.arg_scope([slim.conv2d], normalizer_fn=_moments_style_norm(parameters)):
            with tf.variable_scope('residual'):
                for block in range(1, 6):
                    with tf.variable_scope('residual%d' % block):
                        hidden = _padded_conv(h, 3, 1, 128, 'conv1', tf.nn.relu)
                        h = h + _padded_conv(hidden, 3, 1, 128, 'conv2', None)
            with tf.variable_scope('expand'):
                h = _resize_conv(h, 3, 2, 64, 'conv1', tf.nn.relu)
                h = _resize_conv(h, 3, 2, 32, 'conv2', tf.nn.relu)
                return _resize_conv(h, 9, 1, 3, 'conv3', tf.nn.sigmoid)


# Along one axis, a nearest-neighbour x2 resize, a reflect pad of 1 and a 3-tap convolution give output row 2m from
# source rows (m - 1, m, m) and row 2m + 1 from (m, m, m + 1); beyond the borders the reflection lands on the first
# or last source row, as a symmetric pad of the source gives. So phase p is a 2-tap filter over source rows
# (m - 1 + p, m + p), the kernel taps summed: _PHASE_TAPS[p, tap, k].
_PHASE_TAPS = np.array([[[1, 0, 0], [0, 1, 1]],
                        [[1, 1, 0], [0, 0, 1]]], np.float32)


class _Layers:
    """The fast transformer's layer kinds. normalize(x, activation): the instance normalization (by default
    model.instance_norm; tiled inference passes one with given statistics). shares: see transform."""

    def __init__(self, parameters, normalize=None, shares=None):
        self.parameters = iter(parameters)
        self.normalize = normalize or model.instance_norm
        self.shares, self.strides = shares, iter(NORMALIZED_LAYER_STRIDES)
        self.shares_by_stride = {}  # the ten residual layers' maps have one shape: their shares are computed once

    @staticmethod
    def _weights(kernel, inputs, outputs):
        return tf.get_variable('weights', [kernel, kernel, inputs, outputs], tf.float32)

    def contract(self, scope, x, inputs, outputs, kernel, stride):
        """Convolution and batch norm (fixed statistics, scale-free as slim's default), the norm folded into the
        convolution's weights and a bias, then ReLU."""
        with tf.variable_scope(scope):
            weights = self._weights(kernel, inputs, outputs)
            with tf.variable_scope('BatchNorm'):
                beta, mean, variance = (tf.get_variable(name, [outputs], tf.float32)
                                        for name in ('beta', 'moving_mean', 'moving_variance'))
            scale = tf.rsqrt(variance + BATCH_NORM_EPSILON)
            pad = model.mirror_pad if inputs == 3 else model.gather_reflect_pad_for(x)
            y = tf.nn.conv2d(pad(x, kernel // 2), weights * scale, stride, 'VALID')
            return tf.nn.relu(tf.nn.bias_add(y, beta - mean * scale))

    def _style_norm(self, y, activation):
        gamma, beta = next(self.parameters)
        if self.shares is None:
            gamma, beta = gamma[:, None, None], beta[:, None, None]
        else:
            stride = next(self.strides)
            if stride not in self.shares_by_stride:
                self.shares_by_stride[stride] = model.shares_at(self.shares, stride, y)
            shares = self.shares_by_stride[stride]
            gamma, beta = model.mix_per_pixel(shares, gamma), model.mix_per_pixel(shares, beta)
        normalized = self.normalize(y, None) * gamma + beta
        return normalized if activation is None else activation(normalized)

    def styled(self, scope, x, inputs, outputs, kernel, activation, pad):
        """Convolution, style normalization, activation; a convolution to 3 maps is computed by kernel rows."""
        with tf.variable_scope(scope):
            weights = self._weights(kernel, inputs, outputs)
            padded = pad(x, kernel // 2)
            if outputs == 3:
                y = model.convolve_few_outputs(padded, weights)
            else:
                y = tf.nn.conv2d(padded, weights, 1, 'VALID')
            return self._style_norm(y, activation)

    def upsample(self, scope, x, inputs, outputs):
        """resize x2, reflect pad 1 and a 3x3 convolution as four 2x2 convolutions at the source size (one per
        output phase, _PHASE_TAPS) interleaved: 16 instead of 36 multiply-adds per source pixel and channel pair,
        and no upsampled map in memory. Then style normalization and ReLU."""
        with tf.variable_scope(scope), tf.variable_scope('conv'):
            weights = tf.reshape(self._weights(3, inputs, outputs), [3, 3, inputs * outputs])
            _, height, width, _ = model._shape(x)
            padded = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]], mode='SYMMETRIC')
            phases = []
            for row_phase in range(2):
                for column_phase in range(2):
                    taps = np.einsum('tk,sl->tskl', _PHASE_TAPS[row_phase], _PHASE_TAPS[column_phase])
                    kernel = tf.reshape(tf.matmul(taps.reshape(4, 9), tf.reshape(weights, [9, -1])),
                                        [2, 2, inputs, outputs])
                    window = padded[:, row_phase:row_phase + height + 1, column_phase:column_phase + width + 1]
                    phases.append(tf.nn.conv2d(window, kernel, 1, 'VALID'))
            y = tf.nn.depth_to_space(tf.concat(phases, 3), 2)
            return self._style_norm(y, tf.nn.relu)


def transform(content, parameters, normalize=None, shares=None):
    """transform_reference's function, computed faster, for content images of any size (1 pixel too).

    The batch norm is folded into the convolutions, instance normalization runs on the fused batch-norm kernel
    (model.instance_norm), wide maps are reflect-padded by gathers, the x2 upsamplings are sub-pixel convolutions
    and the last 9x9 convolution to 3 maps goes by kernel rows.

    Args:
      content: float32 (N, H, W, 3) in [0, 1].
      parameters: from style_parameters, for one style ((1, C) each) or one per image.
      normalize: the normalization at each style-normalized layer, normalize(x, activation); see _Layers.
      shares: None, or float (1, H, W, K): each of K styles' share at each pixel (a mask, model.StyleMap), whose
        parameters (K, C) `parameters` then holds: each layer mixes them per pixel at its own resolution.

    Returns:
      float32 (N, 4 * ceil(H / 4), 4 * ceil(W / 4), 3) in [0, 1], as Magenta's network gives.
    """
    layers = _Layers(parameters, normalize, shares)
    with tf.variable_scope('transformer'):
        with tf.variable_scope('contract'):
            h = layers.contract('conv1', content, 3, 32, kernel=9, stride=1)
            h = layers.contract('conv2', h, 32, 64, kernel=3, stride=2)
            h = layers.contract('conv3', h, 64, 128, kernel=3, stride=2)
        with tf.variable_scope('residual'):
            pad = model.gather_reflect_pad_for(h)
            for block in range(1, 6):
                with tf.variable_scope('residual%d' % block):
                    hidden = layers.styled('conv1', h, 128, 128, 3, tf.nn.relu, pad)
                    h = h + layers.styled('conv2', hidden, 128, 128, 3, None, pad)
        with tf.variable_scope('expand'):
            h = layers.upsample('conv1', h, 128, 64)
            h = layers.upsample('conv2', h, 64, 32)
            with tf.variable_scope('conv3'):
                return layers.styled('conv', h, 32, 3, 9, tf.nn.sigmoid, model.gather_reflect_pad_for(h))


def stylize_uint8(images, parameters, transform_fn=transform, **kwargs):
    """uint8 (N, H, W, 3) -> stylized uint8 of the same size: Magenta's output (a little larger where H or W is
    not a multiple of 4), its top-left H x W part, times 255 truncated."""
    _, height, width, _ = model._shape(images)
    stylized = transform_fn(tf.cast(images, tf.float32) / 255.0, parameters, **kwargs)
    return tf.cast(tf.clip_by_value(stylized[:, :height, :width] * 255.0, 0, 255), tf.uint8)


def build_all():
    """The whole network with variables, on placeholders: returns the style image's placeholder and embedding."""
    style = tf.placeholder(tf.float32, [1, None, None, 3])
    embedding = style_embedding(style)
    transform(tf.placeholder(tf.float32, [1, None, None, 3]), style_parameters(embedding))
    return style, embedding


def is_arbitrary(shapes):
    """True for a checkpoint (name -> shape) in the layout of Magenta's arbitrary-style network."""
    return any(name.startswith(('InceptionV3/', 'style_params/', 'transformer/')) for name in shapes)


def _random_value(rng, name, shape):
    if name.endswith('moving_variance'):
        return rng.uniform(0.2, 2.0, shape)
    if name.endswith(('moving_mean', 'beta', 'biases')):
        # Inception's offsets small against its features' spread, else the embedding hardly depends on the image.
        spread = 0.02 if name.startswith('InceptionV3/') else 0.3
        return rng.normal(0, spread, shape) + (1.0 if '/Conv_1/' in name else 0.0)
    # Spatial means of random features vary little from image to image: the embedding's layers amplify them, so
    # that different style images give visibly different results.
    gain = 10.0 if name.startswith('Conv/') else 0.2 if name.startswith('style_params/') else 1.5
    return rng.normal(0, gain / np.sqrt(np.prod(shape[:-1])), shape)


def save_random_checkpoint(prefix, seed=0):
    """A checkpoint in the published layout with random weights, batch-norm statistics random too (so that a wrong
    epsilon or a skipped batch norm shows), and gammas around 1: a test fixture."""
    rng = np.random.default_rng(seed)

    def random_getter(getter, name, shape, dtype, **kwargs):
        value = _random_value(rng, name, shape).astype(np.float32)
        return getter(name, shape, dtype, **dict(kwargs, initializer=tf.constant_initializer(value)))
    with tf.Graph().as_default(), tf.variable_scope('', custom_getter=random_getter):
        style, embedding = build_all()
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            # Random features share a large part whatever the image: the embedding's biases cancel it (a grey
            # image's embedding is 0), so that what is left differs from style to style.
            biases = tf.global_variables('Conv/biases')[0]
            biases.load(sess.run(biases) - sess.run(embedding, {style: np.full([1, 256, 256, 3], 0.5)})[0], sess)
            return tf.train.Saver().save(sess, prefix, write_meta_graph=False)
