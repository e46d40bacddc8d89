"""Look up a loss network by name, slim-style: get_network_fn('vgg_16', ...)(images) -> (net, end_points)."""
import functools

from nets import vgg
from utils import slim

networks_map = {'vgg_16': vgg.vgg_16, 'vgg_19': vgg.vgg_19}
arg_scopes_map = {'vgg_16': vgg.vgg_arg_scope, 'vgg_19': vgg.vgg_arg_scope}


def check_network_name(name):
    """Raise ValueError listing the valid names when `name` is not a known network."""
    if name not in networks_map:
        raise ValueError('unknown loss model %r (valid: %s)' % (name, ', '.join(sorted(networks_map))))


def get_network_fn(name, num_classes, weight_decay=0.0, is_training=False):
    """Return a function that builds the named network in its arg_scope.

    Args:
      name: 'vgg_16' or 'vgg_19'.
      num_classes: the number of output classes (only used when fc8 is built).
      weight_decay: the L2 coefficient of the weights.
      is_training: whether dropout is active.

    Returns:
      network_fn(images, **kwargs) -> (net, end_points); kwargs go to the network (e.g. final_endpoint).
      It carries `default_image_size` and `end_points`, the ordered list of end point names.

    Raises:
      ValueError: the name is unknown.
    """
    check_network_name(name)
    func = networks_map[name]

    @functools.wraps(func)
    def network_fn(images, **kwargs):
        with slim.arg_scope(arg_scopes_map[name](weight_decay=weight_decay)):
            return func(images, num_classes=num_classes, is_training=is_training, **kwargs)

    network_fn.default_image_size = func.default_image_size
    network_fn.end_points = func.end_points
    return network_fn
