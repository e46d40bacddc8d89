"""Tiled inference of the transform network, for images too large to stylize in one piece.

Instance normalization takes each channel's mean and variance over the whole image, so tiles normalized on their
own change colour from tile to tile. Here the statistics come from the whole image: a first pass over all tiles
gathers conv1's statistics, a second (normalizing conv1 with them) gathers conv2's, and so on through the six
normalized layers; a last pass writes the output.

Each tile computes a margin of real context around the part it owns, wider than the network's receptive field
(about 53 pixels), and tiles start on multiples of 4 pixels so that their stride-2 grids line up with the whole
image's. The owned parts then equal the whole-image result up to float rounding: there is no seam to blend.
"""
import typing

import numpy as np
from tqdm import tqdm

import model
from preprocessing import vgg_preprocessing
from utils import UsageError, tf

MARGIN = 64
_ALIGN = 4  # two stride-2 layers


class _GivenStatistics:
    """A `normalize` for model.net that uses fed statistics and keeps each normalized layer's input."""

    def __init__(self):
        self.inputs, self.feeds = [], []

    def __call__(self, x, activation):
        channels = x.shape.as_list()[-1]
        mean = tf.placeholder(tf.float32, [channels])
        variance = tf.placeholder(tf.float32, [channels])
        self.inputs.append(x)
        self.feeds.append((mean, variance))
        normalized = (x - mean) * tf.rsqrt(variance + model.INSTANCE_NORM_EPSILON)
        return normalized if activation is None else activation(normalized)


def split_axis(length, tile, margin=MARGIN, padding=model.INPUT_PADDING):
    """Cut an axis into tiles: [(own_start, own_end, context_start, context_end)] in image pixels.

    Inner boundaries lie on multiples of 4 in the network's padded coordinates (`padding` pixels on each side: 2
    pixels past a multiple of 4 in the image for ours): every layer's map, down to a quarter of the size, splits
    there.
    """
    bounds = [0] + list(range(tile + -padding % _ALIGN, length, tile)) + [length]
    tiles = []
    for own_start, own_end in zip(bounds[:-1], bounds[1:]):
        context_start = max(0, (own_start - margin) // _ALIGN * _ALIGN)
        tiles.append((own_start, own_end, context_start, min(length, own_end + margin)))
    return tiles


def _owned_slice(own_start, own_end, context_start, length, stride, padding):
    """The rows (or columns) of a normalized layer's map that a tile owns, in the tile's coordinates."""
    padded_start = 0 if own_start == 0 else own_start + padding
    start = (padded_start - context_start) // stride
    stop = None if own_end == length else (own_end + padding - context_start) // stride
    return slice(start, stop)


def _sums(values, rows=64):
    """Each channel's sum and sum of squares over a map (H, W, C), in float64 (float32 sums over millions of
    values drift), a few rows at a time: a float64 copy of a whole tile's full-resolution map and its square would
    take four times the map's memory, more than the network's own run."""
    total = np.zeros(values.shape[-1])
    squares = np.zeros(values.shape[-1])
    for start in range(0, values.shape[0], rows):
        chunk = values[start:start + rows].astype(np.float64)
        total += chunk.sum((0, 1))
        squares += np.einsum('ijc,ijc->c', chunk, chunk)
    return total, squares


class Cancelled(Exception):
    """Raised when a tiled run is asked to stop (its caller gave up on it)."""


class Network(typing.NamedTuple):
    """What tiling needs to know of a network.

    Attributes:
      build: build(image, normalize) -> (output, style): from a uint8 image (1, h, w, 3), the stylized float32
        (1, h, w, 3) in 0..255 with `normalize(x, activation)` at every instance-normalized layer, and the
        placeholder its style is fed to (None for a network of one style; a model.StyleMap of placeholders for a
        style that changes from pixel to pixel); variables from tf.get_variable.
      padding: the pixels the network pads its input by before its first layer.
      strides: how many times smaller than the padded input each normalized layer's map is, in order.
    """
    build: typing.Callable
    padding: int
    strides: tuple


def style_map_input(size):
    """A model.StyleMap of placeholders: basis (K, size) and shares (1, H, W, K)."""
    return model.StyleMap(tf.placeholder(tf.float32, [None, size]), tf.placeholder(tf.float32, [1, None, None, None]))


def transform_network(styles=1, per_pixel=False, formulation=model.TILED):
    """Our transform network (model.net) of `styles` styles, as tiling runs it; per_pixel: its style is a
    model.StyleMap (a network of several styles); formulation: model.TILED, or model.INFERENCE for a network run
    whole (normalize None)."""
    def build(image, normalize):
        style = (style_map_input(styles) if per_pixel else tf.placeholder(tf.float32, [styles]) if styles > 1
                 else None)
        return model.net(vgg_preprocessing.mean_image_subtraction(image), formulation, normalize=normalize,
                         style_weights=style), style
    return Network(build, model.INPUT_PADDING, model.NORMALIZED_LAYER_STRIDES)


def style_feed(placeholder, style, rows=slice(None), columns=slice(None)):
    """The feed of a network's style placeholder (see Network.build) for the part of the image in rows and
    columns: a model.StyleMap's shares, (H, W, K) arrays, are cut to it."""
    if placeholder is None:
        return {}
    if isinstance(placeholder, model.StyleMap):
        return {placeholder.basis: style.basis, placeholder.shares: style.shares[None, rows, columns]}
    return {placeholder: style}


class _OnFedWeights:
    """A network built in a graph of its own on weights fed from memory (model.fed_weights)."""

    def __init__(self, weights, session_config, network, normalize):
        self.network = network or transform_network(model.styles_in({n: v.shape for n, v in weights.items()}))
        self.graph = tf.Graph()
        with self.graph.as_default():
            self.image = tf.placeholder(tf.uint8, [1, None, None, 3])
            scope, placeholders = model.fed_weights()
            with scope:
                self.output, self.style = self.network.build(self.image, normalize)
            self.session = tf.Session(config=session_config)
        missing = sorted(set(placeholders) - set(weights))
        if missing:
            raise UsageError('the model does not hold %s (and %d more weights), which %s needs; pass the checkpoint'
                             '%s' % (missing[0], len(missing) - 1, self.purpose, self.fix))
        self.weight_feed = {placeholder: weights[name] for name, placeholder in placeholders.items()}

    def close(self):
        self.session.close()


class WholeTransform(_OnFedWeights):
    """A network run whole on uint8 RGB images, on weights fed from memory: for a style that changes from pixel to
    pixel (a model.StyleMap), which the model's own graph does not take."""
    purpose, fix = 'a style by region (--mask)', ''

    def __init__(self, weights, session_config=None, network=None):
        """Args: see TiledTransform."""
        super().__init__(weights, session_config, network, None)
        with self.graph.as_default():
            self.result = tf.cast(tf.clip_by_value(self.output, 0, 255), tf.uint8)
        self.graph.finalize()

    def __call__(self, pixels, style):
        """A uint8 RGB image (H, W, 3) stylized in `style` (what the network's style placeholder takes)."""
        return self.session.run(self.result, {self.image: pixels[None], **self.weight_feed,
                                              **style_feed(self.style, style)})[0]


class TiledTransform(_OnFedWeights):
    """A transform network run tile by tile on uint8 RGB images of any size."""
    purpose, fix = 'tiled inference', ', or raise --max_pixels'

    def __init__(self, weights, tile, session_config=None, margin=MARGIN, network=None):
        """Args: weights, name -> array of (at least) every variable the network reads; tile, the owned tile side
        (multiple of 4); session_config, the session's options (utils.session_config); network, a Network (by
        default ours, of as many styles as the weights hold)."""
        self.tile, self.margin = tile, margin
        self.statistics = _GivenStatistics()
        super().__init__(weights, session_config, network, self.statistics)
        self.graph.finalize()

    def _tiles(self, height, width):
        return [(rows, cols) for rows in split_axis(height, self.tile, self.margin, self.network.padding)
                for cols in split_axis(width, self.tile, self.margin, self.network.padding)]

    def _feed(self, pixels, style, rows, cols, statistics):
        context = slice(rows[2], rows[3]), slice(cols[2], cols[3])
        feed = {self.image: pixels[(None, *context)], **self.weight_feed,
                **style_feed(self.style, style, *context)}
        for (mean, variance), (mean_value, variance_value) in zip(self.statistics.feeds, statistics):
            feed[mean], feed[variance] = mean_value, variance_value
        return feed

    def _layer_statistics(self, pixels, style, tiles, layer, statistics, step):
        """Mean and variance over the whole image of a normalized layer's input, summed tile by tile."""
        height, width = pixels.shape[:2]
        stride, padding = self.network.strides[layer], self.network.padding
        total = total_squares = count = 0
        for rows, cols in tiles:
            values = self.session.run(self.statistics.inputs[layer],
                                      self._feed(pixels, style, rows, cols, statistics))[0]
            owned = values[_owned_slice(rows[0], rows[1], rows[2], height, stride, padding),
                           _owned_slice(cols[0], cols[1], cols[2], width, stride, padding)]
            tile_total, tile_squares = _sums(owned)
            total, total_squares = total + tile_total, total_squares + tile_squares
            count += owned.shape[0] * owned.shape[1]
            step()
        mean = total / count
        return np.float32(mean), np.float32(np.maximum(total_squares / count - mean ** 2, 0))

    def __call__(self, pixels, progress=True, should_stop=None, style=None):
        """Stylize a uint8 RGB image (H, W, 3); returns uint8 (H, W, 3).

        Args:
          pixels: the image.
          progress: show a progress bar (on stderr).
          should_stop: a function asked after every tile run; when it returns True, Cancelled is raised.
          style: what the network's style placeholder takes (for ours of several styles, each style's share, or a
            model.StyleMap of arrays: basis (K, N), shares (H, W, K)).
        """
        height, width = pixels.shape[:2]
        tiles = self._tiles(height, width)
        passes = len(self.statistics.inputs) + 1
        result = np.empty_like(pixels)
        with tqdm(total=passes * len(tiles), desc='%dx%d: %d tiles, %d passes each' % (width, height, len(tiles),
                                                                                       passes),
                  unit='tile run', leave=False, mininterval=2, disable=not progress) as bar:
            done = [0]  # bar.n stays 0 while the bar is disabled

            def step():
                done[0] += 1
                bar.update()
                if should_stop is not None and should_stop():
                    raise Cancelled('stopped after %d of %d tile runs' % (done[0], passes * len(tiles)))
            statistics = []
            for layer in range(len(self.statistics.inputs)):
                statistics.append(self._layer_statistics(pixels, style, tiles, layer, statistics, step))
            for rows, cols in tiles:
                output = self.session.run(self.output, self._feed(pixels, style, rows, cols, statistics))[0]
                result[rows[0]:rows[1], cols[0]:cols[1]] = np.clip(
                    output[rows[0] - rows[2]:rows[1] - rows[2], cols[0] - cols[2]:cols[1] - cols[2]], 0, 255)
                step()
        return result
