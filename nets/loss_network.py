"""The loss network: the pretrained classifier whose features define the perceptual losses.

train.py and stylize.py both go through LossNetwork, which builds slim's VGG up to the deepest layer a loss uses,
feeds it images minus the means its weights were trained with, and initialises it from either weight format (a
slim checkpoint or a vgg16.npy dict, see pretrained.py).
"""
import numpy as np

from nets import nets_factory, pretrained
from preprocessing import vgg_preprocessing
from utils import UsageError, tf


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


class LossNetwork:
    """One loss network: its layers, its weights, and how images are fed to it.

    Build it with end_points() (as often as needed: the variables are shared), then call init_fn() once and run
    what it returns in the session.
    """

    def __init__(self, name, layers, weights_file, exclude_scopes=''):
        """Args:
          name: 'vgg_16' or 'vgg_19'.
          layers: the end points the losses use; the network is built up to the deepest.
          weights_file: a slim checkpoint or a vgg16.npy (read by load_weights).
          exclude_scopes: comma-separated checkpoint scopes not to restore (the unused fully connected layers).

        Raises:
          UsageError: an unknown network or layer.
        """
        try:
            self.network_fn = nets_factory.get_network_fn(name, num_classes=1, is_training=False)
        except ValueError as error:
            raise UsageError('%s (set loss_model in the config)' % error) from None
        self.name, self.layers = name, list(layers)
        self.final_endpoint = final_endpoint(self.network_fn, self.layers)
        self.weights_file, self.exclude_scopes = weights_file, exclude_scopes
        self._weights = None

    def load_weights(self):
        """Read and check the weight file, once; commands call it early, else the first end_points() does.

        Returns:
          (make_init_fn, means): see pretrained.vgg_weights.

        Raises:
          UsageError: the file is missing, or it does not hold this network's convolution layers.
        """
        if self._weights is None:
            self._weights = pretrained.vgg_weights(self.weights_file, self.name, self.exclude_scopes)
        return self._weights

    def end_points(self, images, layers=None, centered=False):
        """The network's end points on a batch, built up to the deepest of `layers` (default: every loss layer).

        Args:
          images: float (N, H, W, 3) RGB in 0..255, or with centered=True minus vgg_preprocessing.MEANS (what the
            training pipeline and the transform network's input are): the means of the weights are subtracted.
        """
        images = tf.convert_to_tensor(images)
        offset = np.subtract(vgg_preprocessing.MEANS if centered else 0, self.load_weights()[1])
        inputs = images + tf.constant(offset, images.dtype) if offset.any() else images
        with tf.variable_scope(tf.get_variable_scope(), reuse=tf.AUTO_REUSE):
            _, points = self.network_fn(inputs, final_endpoint=final_endpoint(self.network_fn, layers or self.layers))
        return points

    def init_fn(self):
        """fn(session) that loads the weights into the network built in the current graph."""
        return self.load_weights()[0]()

    def min_side(self):
        """The smallest image side for which the deepest layer still has a pixel (each pooling halves)."""
        order = self.network_fn.end_points
        return 2 ** sum(1 for name in order[:order.index(self.final_endpoint)] if '/pool' in name)
