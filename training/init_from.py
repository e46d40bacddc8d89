"""Starting a training run from another trained network (train.py --init_from): a network that already keeps a
photo's shapes only has to learn the new style, which takes a fraction of the steps of a run from scratch.

Only the transform network's weights are taken; the global step and Adam's state start afresh. A network of one
style has no per-style scale and offset, which is the same as scale 1 and offset 0: so a network of one style
starts every style of a new network of several exactly where it was, and a network of several styles gives each
style it holds (by position) to the new network, any further style starting as its unconditioned layers.
"""
import numpy as np

import model
from utils import log, tf


def starting_weights(weights, styles):
    """The weights of a network of `styles` styles that starts from `weights`, another network's.

    Args:
      weights: variable name -> array, of a network of any number of styles (inference.stylizer.model_weights).
      styles: the number of styles of the network to train.

    Returns:
      (variable name -> array for every variable of the new network, a note on what was carried over).
    """
    source = model.styles_in({name: value.shape for name, value in weights.items()})
    start = {}
    for name, shape in model.expected_transform_variables(styles).items():
        if name.rsplit('/', 1)[1] not in model.STYLE_VARIABLES:
            start[name] = weights[name]
            continue
        value = np.full(shape, 1.0 if name.endswith('style_scale') else 0.0, np.float32)
        if source > 1:
            kept = min(source, styles)
            value[:kept] = weights[name][:kept]
        start[name] = value
    if source == 1 or styles == source:
        note = 'every style starts as the %d-style network does' % source
    elif styles == 1:
        note = 'its %d styles\' scales and offsets are left out: a network of one style has none' % source
    else:
        note = 'styles 0..%d start as its own, the others as its unconditioned layers' % (min(source, styles) - 1)
    return start, note


class Initializer:
    """Ops that set the transform network's variables in the current graph to given values, built before the
    session starts (the graph is finalized then)."""

    def __init__(self, weights, source):
        """weights: name -> array for every transform variable (starting_weights); source: the model, for the log."""
        self.source = source
        self.feed, assigns = {}, []
        for variable in model.transform_variables():
            value = weights[variable.name.rsplit(':', 1)[0]]
            placeholder = tf.placeholder(tf.float32, value.shape)
            self.feed[placeholder] = value
            assigns.append(variable.assign(placeholder))
        self.op = tf.group(*assigns)

    def run(self, sess):
        sess.run(self.op, self.feed)
        log.info('transform network initialised from %s; the global step and Adam start afresh', self.source)
