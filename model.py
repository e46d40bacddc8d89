"""The transform network of Johnson et al. (2016), with the original implementation's variable names.

net(image) maps a batch of mean-subtracted RGB images to stylized RGB images in 0..255 of the same size.
Every convolution reflect-pads by kernel // 2 and convolves with VALID padding; there are no biases, and
instance normalization has no scale or offset, so the checkpoint holds exactly these variables (HWIO):

  conv1/conv/weight (9,9,3,32)   conv2/conv/weight (3,3,32,64)   conv3/conv/weight (3,3,64,128)
  res{1..5}/residual/conv/weight, res{1..5}/residual/conv_1/weight (3,3,128,128)
  deconv1/conv_transpose/conv/weight (3,3,128,64)   deconv2/conv_transpose/conv/weight (3,3,64,32)
  deconv3/conv/weight (9,9,32,3)

A network of N styles (conditional instance normalization) adds <layer>/style_scale and <layer>/style_offset,
(N, C), to the six normalized layers conv1, conv2, conv3, deconv1, deconv2 and deconv3.
"""
import functools
import typing

import numpy as np

from preprocessing.vgg_preprocessing import mean_image_subtraction
from utils import tf

INPUT_PADDING = 10
# The original used 1e-9, which let constant feature maps blow up into NaN ("black images").
INSTANCE_NORM_EPSILON = 1e-5


def _shape(x):
    """x's dimensions: Python ints where static, else scalars from a single Shape op (each op costs time to build
    and to optimize, which a cold eval.py pays)."""
    static = x.shape.as_list()
    if None not in static:
        return static
    dynamic = tf.unstack(tf.shape(x), len(static))
    return [size if size is not None else tensor for size, tensor in zip(static, dynamic)]


def _mirror_indices(length, pad):
    """Indices that reflect-pad an axis of `length` by `pad` on both sides.

    Where pad >= length, the reflection repeats (as numpy's 'reflect' mode does) instead of failing as
    tf.pad's REFLECT mode does; a 1-pixel axis is repeated. Within range it equals REFLECT padding.
    """
    index = tf.range(-pad, length + pad)
    period = tf.maximum(2 * (length - 1), 1)
    folded = tf.math.floormod(index, period)
    return tf.where(folded < length, folded, period - folded)


def mirror_pad(images, pad):
    """Reflect-pad a batch (N, H, W, C) by `pad` pixels on each side, for any H and W."""
    _, height, width, _ = _shape(images)
    images = tf.gather(images, _mirror_indices(height, pad), axis=1)
    return tf.gather(images, _mirror_indices(width, pad), axis=2)


def reflect_pad(x, pad):
    """Reflect-pad by `pad` pixels on each side with tf.pad (pad must be below H and W), as the original did."""
    return tf.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]], mode='REFLECT')


def gather_reflect_pad_for(like):
    """A reflect_pad for maps shaped like `like` that gathers whole pixels, for inference.

    A pixel's C values lie together in memory, so the gather copies blocks: about twice as fast as tf.pad's
    REFLECT mode on the network's wide maps (its gradient, though, is slower than MirrorPad's). The index is
    built once per pad size and shared by every map of that shape: the residual stage pads ten. Like mirror_pad,
    it takes maps of any size.
    """
    batch, height, width, channels = _shape(like)
    indices = {}

    def pad_by_gather(x, pad):
        if pad not in indices:
            rows, columns = _mirror_indices(height, pad), _mirror_indices(width, pad)
            indices[pad] = tf.reshape(rows[:, None] * width + columns, [-1])
        pixels = tf.gather(tf.reshape(x, [batch, -1, channels]), indices[pad], axis=1)
        return tf.reshape(pixels, [batch, height + 2 * pad, width + 2 * pad, channels])
    return pad_by_gather


_ROUGH_MEAN_STRIDE = 8  # rough means come from every 8th row: whole rows are cheap to gather


def _rough_mean(x):
    """Each channel's mean over a sample of rows of a batch (N, H, W, C), as a constant for the gradient."""
    rows = tf.gather(x, tf.range(0, _shape(x)[1], _ROUGH_MEAN_STRIDE), axis=1)
    return tf.stop_gradient(tf.reduce_mean(rows, [0, 1, 2]))


def instance_norm(x, activation=None, epsilon=INSTANCE_NORM_EPSILON, centered=False):
    """Normalize each image's channels to zero mean and unit variance over height and width, then apply
    `activation` (a function, or None).

    Instance normalization of N images is batch normalization of one image with N x C channels: moving the
    batch into the channels lets the fused batch-norm kernel do it in one pass over memory instead of moments'
    several (about half the time). For one image the transposes move nothing. A ReLU applied right after the
    kernel, before the transposes, is fused into it by Grappler's remapper (one pass fewer).

    The fused kernel's variance is E[x^2] - E[x]^2 in float32, which loses its digits when a channel's mean is
    large against its spread, more so on large maps (tens of grey levels off at 12 megapixels). Subtracting a
    rough mean first keeps it accurate at any size; the normalization does not change under a per-channel
    shift. centered=True says that x is already roughly centered (a convolution with center=True).
    """
    batch, height, width, channels = _shape(x)
    stacked = tf.reshape(tf.transpose(x, [1, 2, 0, 3]), [1, height, width, batch * channels])
    if not centered:
        stacked -= _rough_mean(stacked)
    ones = tf.ones([batch * channels], x.dtype)
    normalized, _, _ = tf.nn.fused_batch_norm(stacked, ones, tf.zeros_like(ones), epsilon=epsilon,
                                              is_training=True)
    normalized = _activate(normalized, activation)
    return tf.transpose(tf.reshape(normalized, [height, width, batch, channels]), [2, 0, 1, 3])


def relu(x):
    return tf.nn.relu(x)


def _activate(x, activation):
    return x if activation is None else activation(x)


def instance_norm_reference(x, activation=None, epsilon=INSTANCE_NORM_EPSILON):
    """instance_norm as the original wrote it, with tf.nn.moments."""
    mean, variance = tf.nn.moments(x, [1, 2], keepdims=True)
    return _activate((x - mean) * tf.rsqrt(variance + epsilon), activation)


def conv2d(x, input_filters, output_filters, kernel, strides, scope='conv', center=False, pad=mirror_pad):
    """Reflect-pad by kernel // 2, then a bias-free VALID convolution; its weight is `<scope>/weight`.
    center: see _convolve; pad: the reflect-padding function, pad(x, size)."""
    with tf.variable_scope(scope):
        weight = _weight(kernel, input_filters, output_filters)
        return _convolve(pad(x, kernel // 2), weight, strides, center)


def _convolve(padded, kernel, strides=1, center=False, name='conv'):
    """A VALID convolution. With center, minus a rough estimate of each output channel's mean, which spares
    instance_norm its own pass to subtract one: Grappler fuses a bias into the convolution. The estimate is the
    input's rough mean times the kernel summed over its taps (exact but for the borders), per channel over the
    whole batch: large maps, where accuracy needs it, come one at a time.
    """
    output = tf.nn.conv2d(padded, kernel, strides=strides, padding='VALID', name=None if center else name)
    if not center:
        return output
    output_mean = tf.linalg.matvec(tf.reduce_sum(kernel, [0, 1]), _rough_mean(padded), transpose_a=True)
    return tf.nn.bias_add(output, -tf.stop_gradient(output_mean), name=name)


def _weight(kernel, input_filters, output_filters):
    return tf.get_variable('weight', [kernel, kernel, input_filters, output_filters], tf.float32,
                           tf.truncated_normal_initializer(stddev=0.1))


def conv2d_few_outputs(x, input_filters, output_filters, kernel, scope='conv', center=False, pad=mirror_pad):
    """conv2d at stride 1, computed as a 1 x kernel convolution to kernel * output_filters maps, then the sum of
    those maps shifted down by their kernel row.

    The same sums in another order: oneDNN runs a convolution with very few output channels (the last layer's
    3) far below its speed on wide ones, so this takes about a third of the time. For the shifted sum, a
    depthwise kernel x 1 convolution with one 1 tap per map moves each map by its row, and a sum over the rows
    follows: both read the maps once (slicing them reads them nine times; a dense convolution with 0/1 taps
    runs at oneDNN's slow few-output speed again). center, pad: see conv2d.
    """
    with tf.variable_scope(scope):
        weight = _weight(kernel, input_filters, output_filters)
        return convolve_few_outputs(pad(x, kernel // 2), weight, center)


def convolve_few_outputs(padded, weight, center=False):
    """A VALID stride-1 convolution of `padded` with `weight` (k, k, in, out), computed as conv2d_few_outputs says."""
    kernel, _, input_filters, output_filters = weight.shape.as_list()
    # (ky, kx, in, out) -> (1, kx, in, ky * out): one output map per kernel row and output channel.
    rows = tf.reshape(tf.transpose(weight, [1, 2, 0, 3]), [1, kernel, input_filters, kernel * output_filters])
    partial = _convolve(padded, rows, center=center, name='conv_rows')
    # Output row y sums map (row r, channel c) of partial row y + r.
    shift = np.zeros([kernel, 1, kernel * output_filters, 1], np.float32)
    for row in range(kernel):
        shift[row, 0, row * output_filters:(row + 1) * output_filters] = 1
    shifted = tf.nn.depthwise_conv2d(partial, tf.constant(shift, padded.dtype), [1, 1, 1, 1], 'VALID')
    batch, height, width, _ = _shape(shifted)
    by_row = tf.reshape(shifted, [batch, height, width, kernel, output_filters])
    return tf.reduce_sum(by_row, 3, name='conv')


def resize_conv2d(x, input_filters, output_filters, kernel, strides):
    """Upsample by nearest-neighbour resizing to 2 * strides times the size, then a strided convolution.

    This replaces a transposed convolution, which leaves checkerboard artifacts. It is the original's
    formulation, kept as the reference; upsample_conv2d computes the same map with a quarter of the work.
    """
    with tf.variable_scope('conv_transpose'):
        factor = strides * 2
        _, height, width, _ = _shape(x)
        size = tf.stack([height * factor, width * factor])
        resized = tf.image.resize_nearest_neighbor(x, size, align_corners=False, half_pixel_centers=False)
        return conv2d(resized, input_filters, output_filters, kernel, strides, pad=reflect_pad)


# Along one axis, resize x4 + reflect pad 1 + 3-tap stride-2 convolution gives output row 2m from source rows
# (m - 1, m, m) and row 2m + 1 from (m, m, m); row -1 reflects to upsampled row 1, i.e. source row 0. So each
# output phase is a 2-tap filter over source rows (m - 1, m), the kernel taps summed: _PHASE_TAPS[phase, tap, k].
_PHASE_TAPS = np.array([[[1, 0, 0], [0, 1, 1]],
                        [[0, 0, 0], [1, 1, 1]]], np.float32)
# Rows (ty, tx, py, px), columns (ky, kx): the product of the two axes' tap matrices.
_PHASE_MATRIX = np.einsum('ptk,qsl->tspqkl', _PHASE_TAPS, _PHASE_TAPS).reshape(16, 9)


def upsample_conv2d(x, input_filters, output_filters, center=False):
    """resize_conv2d(x, ..., kernel=3, strides=2) as a sub-pixel convolution, exactly, for any size.

    The four output phases are 2x2 convolutions at the source resolution (weights summed as _PHASE_TAPS says),
    computed as one convolution to 4 * output_filters maps that depth_to_space interleaves. Row and column -1
    repeat the first ones, which is what a symmetric pad of 1 does. Same variable, a quarter of the
    multiply-adds (plus the zero taps), and no 16-times larger upsampled map in memory. center: see _convolve.
    """
    with tf.variable_scope('conv_transpose'), tf.variable_scope('conv'):
        weight = _weight(3, input_filters, output_filters)
        # kernel[ty, tx, in, (py, px, out)] = sum over ky, kx of taps[py, ty, ky] * taps[px, tx, kx] * w[ky, kx]:
        # one small matrix product (an einsum of three operands runs far slower, on every forward pass).
        phases = tf.matmul(_PHASE_MATRIX, tf.reshape(weight, [9, input_filters * output_filters]))
        phases = tf.transpose(tf.reshape(phases, [2, 2, 2, 2, input_filters, output_filters]), [0, 1, 4, 2, 3, 5])
        kernel = tf.reshape(phases, [2, 2, input_filters, 4 * output_filters])
        padded = tf.pad(x, [[0, 0], [1, 0], [1, 0], [0, 0]], mode='SYMMETRIC')
        interleaved = _convolve(padded, kernel, center=center, name=None)
        return tf.nn.depth_to_space(interleaved, 2, name='conv')


def residual(x, filters, kernel, strides, pad=mirror_pad):
    """x + conv(ReLU(conv(x))), without normalization inside, as in the original."""
    with tf.variable_scope('residual'):
        hidden = tf.nn.relu(conv2d(x, filters, filters, kernel, strides, scope='conv', pad=pad))
        return x + conv2d(hidden, filters, filters, kernel, strides, scope='conv_1', pad=pad)


class StyleMap(typing.NamedTuple):
    """Styles that change from pixel to pixel (a mask says which goes where, inference/masks.py): each pixel's style
    is its shares of K styles. Tensors in a graph, arrays outside one.

    Attributes:
      basis: float (K, S): the K styles, each as the network's style vector (for ours, style weights (N,)).
      shares: float (1, H, W, K): each style's share at each pixel of the network's input, summing to 1.
    """
    basis: typing.Any
    shares: typing.Any


def shares_at(shares, stride, like):
    """A StyleMap's shares (1, H, W, K) at the resolution of a map `like` (N, h, w, C) `stride` times smaller: the
    mean of each stride x stride box counted from the top-left corner, where the layers' grids start (so that tiles
    starting on multiples of 4 see the same boxes), the last row and column repeated where `like` is larger."""
    _, height, width, _ = _shape(like)
    if stride > 1:
        _, rows, columns, _ = _shape(shares)
        whole = [(size + stride - 1) // stride * stride for size in (rows, columns)]
        shares = tf.gather(shares, tf.minimum(tf.range(whole[0]), rows - 1), axis=1)
        shares = tf.gather(shares, tf.minimum(tf.range(whole[1]), columns - 1), axis=2)
        shares = tf.nn.avg_pool2d(shares, stride, stride, 'VALID')
    _, rows, columns, _ = _shape(shares)
    shares = tf.gather(shares, tf.minimum(tf.range(height), rows - 1), axis=1)
    return tf.gather(shares, tf.minimum(tf.range(width), columns - 1), axis=2)


def mix_per_pixel(shares, table):
    """Per-pixel parameters (1, h, w, C) from shares (1, h, w, K) of a table (K, C), one row per style."""
    return tf.tensordot(shares, table, [[3], [0]])


def finite_or_zero(values):
    """values with every NaN and Inf made 0 (fed to an export by code we do not control: 0, not NaN pixels).
    x * 0 == 0 is false only for NaN and Inf, and its ops are TFLite's own."""
    values = tf.cast(values, tf.float32)
    return tf.where(tf.equal(values * 0.0, 0.0), values, tf.zeros_like(values))


def conditional(normalize, style_weights, strides=None):
    """`normalize` followed by a per-style scale and offset (conditional instance normalization, Dumoulin et al.
    2017), mixed by style_weights: each normalized layer gets `style_scale` and `style_offset`, (N, C), starting at 1
    and 0. One-hot weights give one style; other convex weights mix the styles' parameters.

    Args:
      style_weights: float (N,), each style's share; or a StyleMap of shares at the padded input's resolution,
        whose per-pixel mix of the basis' parameters each layer takes at its own resolution.
      strides: with a StyleMap, each normalized layer's stride against the padded input, in order.
    """
    per_pixel = isinstance(style_weights, StyleMap)
    basis = finite_or_zero(style_weights.basis if per_pixel else style_weights[None])
    remaining = iter(strides or ())

    def conditional_normalize(x, activation):
        styles, channels = basis.shape.as_list()[1], x.shape.as_list()[-1]
        scale = tf.matmul(basis, tf.get_variable('style_scale', [styles, channels], tf.float32,
                                                 tf.ones_initializer()))
        offset = tf.matmul(basis, tf.get_variable('style_offset', [styles, channels], tf.float32,
                                                  tf.zeros_initializer()))
        if per_pixel:
            shares = shares_at(style_weights.shares, next(remaining), x)
            scale, offset = mix_per_pixel(shares, scale), mix_per_pixel(shares, offset)
        else:
            scale, offset = scale[0], offset[0]
        return _activate(normalize(x, None) * scale + offset, activation)
    return conditional_normalize


class Formulation(typing.NamedTuple):
    """How net() computes the architecture: every formulation gives the same function of the same variables (tests
    compare them), at different costs.

    Attributes:
      rewritten: instance normalization by the fused batch-norm kernel (instance_norm), upsampling as sub-pixel
        convolutions (upsample_conv2d) and the last 9x9 convolution to 3 maps by rows (conv2d_few_outputs);
        False builds the original's tf.nn.moments, x4 resizes with stride-2 convolutions and one 9x9 convolution.
      gather_pad: wide maps are reflect-padded by gathering whole pixels: a faster forward pass, a slower gradient.
      center: each convolution subtracts a rough estimate of its output's mean, so that instance normalization
        need not. One bias per channel cannot center a batch of images whose means differ (training), and given
        statistics (tiled inference) must see the convolutions' own output.
    """
    rewritten: bool
    gather_pad: bool
    center: bool


ORIGINAL = Formulation(rewritten=False, gather_pad=False, center=False)  # the reference for tests and benchmarks
TRAINING = Formulation(rewritten=True, gather_pad=False, center=False)
INFERENCE = Formulation(rewritten=True, gather_pad=True, center=True)
TILED = INFERENCE._replace(center=False)  # inference with normalization statistics of the whole image


class _Layers:
    """The network's layer kinds, each in its variable scope, built as a Formulation says."""

    def __init__(self, formulation, normalize, style_weights):
        self.formulation = formulation
        if normalize is not None and formulation.center:
            raise ValueError('given normalization statistics need an uncentered formulation, such as TILED')
        if normalize is None:
            normalize = (functools.partial(instance_norm, centered=formulation.center) if formulation.rewritten
                         else instance_norm_reference)
        if isinstance(style_weights, StyleMap):  # the shares padded as the image is, for the layers' grids
            style_weights = style_weights._replace(shares=mirror_pad(style_weights.shares, INPUT_PADDING))
        self.normalize = (normalize if style_weights is None
                          else conditional(normalize, style_weights, NORMALIZED_LAYER_STRIDES))

    def _pad_for(self, x):
        """The reflect-padding for maps shaped like x. A 3-channel map has too few values per pixel to gain from
        gathers."""
        return gather_reflect_pad_for(x) if self.formulation.gather_pad and x.shape[-1] > 3 else reflect_pad

    def conv(self, scope, x, inputs, outputs, kernel, stride=1, activation=relu):
        """A convolution, then normalization and `activation`."""
        center, pad = self.formulation.center, self._pad_for(x)
        with tf.variable_scope(scope):
            if self.formulation.rewritten and outputs == 3 and stride == 1:
                y = conv2d_few_outputs(x, inputs, outputs, kernel, center=center, pad=pad)
            else:
                y = conv2d(x, inputs, outputs, kernel, stride, center=center, pad=pad)
            return self.normalize(y, activation)

    def residuals(self, x, filters, blocks):
        """res1 to res<blocks>: maps of one shape, so one padding index serves them all."""
        pad = self._pad_for(x)
        for block in range(1, blocks + 1):
            with tf.variable_scope('res%d' % block):
                x = residual(x, filters, 3, 1, pad=pad)
        return x

    def upsample(self, scope, x, inputs, outputs):
        """Twice the size by a resize-convolution (no transposed convolution), then normalization and ReLU."""
        with tf.variable_scope(scope):
            if self.formulation.rewritten:
                y = upsample_conv2d(x, inputs, outputs, center=self.formulation.center)
            else:
                y = resize_conv2d(x, inputs, outputs, kernel=3, strides=2)
            return self.normalize(y, tf.nn.relu)


def net(image, formulation=INFERENCE, normalize=None, style_weights=None):
    """Stylize a batch of images.

    Args:
      image: float32 (N, H, W, 3), RGB minus the VGG means (see preprocessing); any H and W, 1 pixel too.
      formulation: how to compute it (ORIGINAL, TRAINING, INFERENCE or TILED); the same function either way.
      normalize: normalize(x, activation), the normalization at each of the six normalized layers followed by
        their activation, called in order (conv1, conv2, conv3, deconv1, deconv2, deconv3); by default instance
        normalization; tiled inference passes one that uses given statistics.
      style_weights: for a network of several styles, float (N,) with a static N: each style's share (one-hot for
        one style), or a StyleMap (basis (K, N), shares (1, H, W, K)) whose style changes from pixel to pixel; None
        for a network of one style, which has no per-style variables.

    Returns:
      float32 (N, H, W, 3): RGB in 0..255. For sizes where H + 20 or W + 20 is not a multiple of 4 the
      layers produce a larger map; its top-left H x W part is returned, as the original's users got.
    """
    layers = _Layers(formulation, normalize, style_weights)
    _, height, width, _ = _shape(image)
    x = mirror_pad(image, INPUT_PADDING)  # the original's tf.pad fails on images of 10 pixels or less
    x = layers.conv('conv1', x, 3, 32, kernel=9)
    x = layers.conv('conv2', x, 32, 64, kernel=3, stride=2)
    x = layers.conv('conv3', x, 64, 128, kernel=3, stride=2)
    x = layers.residuals(x, 128, blocks=5)
    x = layers.upsample('deconv1', x, 128, 64)
    x = layers.upsample('deconv2', x, 64, 32)
    x = layers.conv('deconv3', x, 32, 3, kernel=9, activation=tf.nn.tanh)
    y = (x + 1) * 127.5
    return y[:, INPUT_PADDING:INPUT_PADDING + height, INPUT_PADDING:INPUT_PADDING + width, :]


# Each normalized layer's map is this many times smaller than the padded input (tiled inference needs it).
NORMALIZED_LAYER_STRIDES = (1, 2, 4, 2, 1, 1)


def stylize_uint8(images, formulation=INFERENCE, style_weights=None):
    """uint8 RGB batch (N, H, W, 3) -> stylized uint8 batch, truncating to integers as the original's cast did."""
    generated = net(mean_image_subtraction(images), formulation, style_weights=style_weights)
    return tf.cast(tf.clip_by_value(generated, 0, 255), tf.uint8)


def transform_variables():
    """The transform network's variables in the current graph (not the loss network's, not Adam's)."""
    # By name, not op.name: inside a replica of a distribution strategy a mirrored variable's op is that
    # replica's copy (conv1/conv/weight/replica_1), its name the variable's own.
    expected = set(expected_transform_variables()) | {scope + '/' + kind for scope, _ in NORMALIZED_LAYERS
                                                      for kind in STYLE_VARIABLES}
    return [v for v in tf.global_variables() if v.name.rsplit(':', 1)[0] in expected]


# (scope, kernel, input maps, output maps) of each convolution net() creates. A table rather than a scratch graph
# of net() (test_model checks the two agree): a cold eval.py checks and restores a checkpoint without first
# building the network once more (a fifth of a second).
_CONVOLUTIONS = ((('conv1/conv', 9, 3, 32), ('conv2/conv', 3, 32, 64), ('conv3/conv', 3, 64, 128))
                 + tuple(('res%d/residual/%s' % (block, conv), 3, 128, 128)
                         for block in range(1, 6) for conv in ('conv', 'conv_1'))
                 + (('deconv1/conv_transpose/conv', 3, 128, 64), ('deconv2/conv_transpose/conv', 3, 64, 32),
                    ('deconv3/conv', 9, 32, 3)))


# The normalized layers' scopes and channels; in a network of several styles each has STYLE_VARIABLES, (styles, C).
NORMALIZED_LAYERS = (('conv1', 32), ('conv2', 64), ('conv3', 128), ('deconv1', 64), ('deconv2', 32), ('deconv3', 3))
STYLE_VARIABLES = ('style_scale', 'style_offset')


def expected_transform_variables(styles=1):
    """Name -> shape of every variable net() creates for a network of `styles` styles (convolutions HWIO)."""
    expected = {scope + '/weight': [kernel, kernel, inputs, outputs]
                for scope, kernel, inputs, outputs in _CONVOLUTIONS}
    if styles > 1:
        expected.update({'%s/%s' % (scope, kind): [styles, channels] for scope, channels in NORMALIZED_LAYERS
                         for kind in STYLE_VARIABLES})
    return expected


def styles_in(shapes):
    """How many styles a network holds, from its variables' shapes (name -> shape): 1 without style variables."""
    shape = shapes.get('conv1/' + STYLE_VARIABLES[0])
    return int(shape[0]) if shape is not None else 1


def fed_weights():
    """For inference from arrays in memory: a variable scope in which net() reads each weight from a placeholder
    named like its variable, and the dict name -> placeholder to feed.

    Such a graph has no variables, initializers, saver or restore to build and run, which a cold eval.py would
    wait for (Python spends about 0.3 ms on each op). Constants instead would make Grappler fold and copy the
    weights, which costs more than it saves.
    """
    placeholders = {}

    def placeholder_getter(*args, **kwargs):  # get_variable calls it outside any name scope
        # As the scope's own getter it gets keywords; under another custom getter (slim's layers have one),
        # TensorFlow passes (getter, name) first.
        name = kwargs['name'] if 'name' in kwargs else args[1]
        placeholders[name] = tf.placeholder(kwargs.get('dtype') or tf.float32, kwargs['shape'], name=name)
        return placeholders[name]
    return tf.variable_scope(tf.get_variable_scope(), custom_getter=placeholder_getter), placeholders
