"""Stroke size: a network trained on one style image at several sizes (a config's style_scales) holds one style per
size, named wave@0.5, wave@1, wave@2 (style_names). `--stroke S` asks for the strokes of the style image at S times
its size: at a trained scale, that scale's style exactly; between two, a mix of the two neighbours' scales and
offsets, linear in log S, so that the stroke grows by the same factor for each step of the same factor in S (1.41
lies halfway between 1 and 2, as 0.71 between 0.5 and 1).

The scales come from the style names, which travel with the weights in every format, so that the exports need
nothing more; export.py also builds the weights in the graph (weights_in_graph) for users of a .pb or a SavedModel.
"""
import numpy as np

import style_names
from utils import UsageError, tf


def scales_of(names):
    """The scales of a network's styles (float64, in the styles' order) when its style names (style_names) make
    it a network of one style image at several sizes, else None."""
    if not names or len(names) < 2:
        return None
    bases, scales = set(), []
    for name in names:
        base, mark, scale = name.rpartition(style_names.SCALE_MARK)
        try:
            value = float(scale)
        except ValueError:
            return None
        if not mark or not base or not 0 < value < np.inf:
            return None
        bases.add(base)
        scales.append(value)
    return np.asarray(scales) if len(bases) == 1 and len(set(scales)) == len(scales) else None


def listed(names):
    """The stroke sizes a network of these style names was trained at, smallest first, as plain numbers ([] for a
    network without them)."""
    scales = scales_of(names)
    return [] if scales is None else sorted(float(scale) for scale in scales)


def check_stroke(stroke, scales, source, option='--stroke'):
    """Raise UsageError unless `stroke` lies within the trained scales (None: the model holds none); option: what
    the user calls the stroke size."""
    if scales is None:
        raise UsageError('%s was not trained at several sizes of its style image, so its stroke size is fixed: %s '
                         'needs a model trained with style_scales in its config (docs/STROKE.md)' % (source, option))
    if not scales.min() <= stroke <= scales.max():
        raise UsageError('%s %g is outside the sizes %s was trained at: give %g to %g (its styles: %s)'
                         % (option, stroke, source, scales.min(), scales.max(), ', '.join('%g' % s for s in scales)))


def stroke_weights(stroke, scales):
    """The style weights, float32 (styles,), of stroke size `stroke` (within the scales, see check_stroke): one-hot
    at a trained scale, else the two neighbouring scales' shares, linear in log stroke."""
    weights = np.zeros(len(scales), np.float32)
    if stroke in scales:
        weights[list(scales).index(stroke)] = 1
        return weights
    order = np.argsort(scales)
    at = np.searchsorted(scales[order], stroke)
    below, above = order[at - 1], order[at]
    share = np.log(stroke / scales[below]) / np.log(scales[above] / scales[below])
    weights[below], weights[above] = 1 - share, share
    return weights


def weights_in_graph(stroke, scales):
    """stroke_weights in the graph, for the exports: float32 (styles,) of a float32 scalar tensor `stroke`, which
    an assertion keeps within the scales.

    Each style's weight is a hat function of log stroke, 1 at its own scale and 0 at its neighbours'; a stroke equal
    to a trained scale takes that style alone, as stroke_weights does, whatever the rounding of the logarithms."""
    scales = np.asarray(scales, np.float32)
    order = np.argsort(scales)
    low, high = float(scales.min()), float(scales.max())
    check = tf.debugging.assert_less_equal(tf.stack([low, stroke]), tf.stack([stroke, high]), message=(
        'stroke is outside the sizes the network was trained at, %g to %g' % (low, high)))
    with tf.control_dependencies([check]):
        at = tf.math.log(tf.identity(stroke))
    sorted_logs = tf.math.log(tf.constant(scales[order]))
    gaps = sorted_logs[1:] - sorted_logs[:-1]
    left = tf.concat([[np.inf], gaps], 0)  # the distance to the next smaller scale (none for the smallest)
    right = tf.concat([gaps, [np.inf]], 0)
    offset = at - sorted_logs
    hat = tf.nn.relu(tf.where(offset < 0, 1 + offset / left, 1 - offset / right))
    exact = tf.cast(tf.equal(stroke, scales[order]), tf.float32)
    return tf.gather(tf.where(tf.reduce_any(exact > 0), exact, hat), np.argsort(order))
