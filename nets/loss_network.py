"""The loss network: the pretrained classifier whose features define the perceptual losses."""
from utils import UsageError


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
