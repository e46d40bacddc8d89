"""The loss network: slim's names and values, and no fully connected weights when they are not needed."""
import numpy as np
import pytest
from tf_slim.nets import vgg as slim_vgg

from helpers import save_random_vgg
from nets import nets_factory, pretrained
from checkpoints import get_init_fn
from utils import slim, tf


def _build(fn, size=224, **kwargs):
    """Build a network in a fresh graph; return (graph, end_points, {variable name: shape})."""
    graph = tf.Graph()
    with graph.as_default():
        _, end_points = fn(tf.placeholder(tf.float32, [1, size, size, 3], name='images'), **kwargs)
        shapes = {v.op.name: v.shape.as_list() for v in tf.global_variables()}
    return graph, end_points, shapes


@pytest.mark.parametrize('name', ['vgg_16', 'vgg_19'])
def test_end_points_and_variables_match_tf_slim(name):
    def slim_fn(images):
        with slim.arg_scope(slim_vgg.vgg_arg_scope()):
            return getattr(slim_vgg, name)(images, num_classes=1000, is_training=False)

    _, slim_points, slim_shapes = _build(slim_fn)
    _, our_points, our_shapes = _build(nets_factory.get_network_fn(name, num_classes=1000))
    assert list(our_points) == list(slim_points)
    assert our_shapes == slim_shapes
    assert {k: v.shape.as_list() for k, v in our_points.items()} == {
        k: v.shape.as_list() for k, v in slim_points.items()}
    assert nets_factory.get_network_fn(name, 1).end_points == list(slim_points)


def test_final_endpoint_builds_no_fully_connected_weights_and_takes_small_inputs():
    network_fn = nets_factory.get_network_fn('vgg_16', num_classes=1)
    _, end_points, shapes = _build(network_fn, size=32, final_endpoint='vgg_16/conv4/conv4_3')
    assert list(end_points)[-1] == 'vgg_16/conv4/conv4_3'
    assert not [name for name in shapes if '/fc' in name or 'conv5' in name]
    assert end_points['vgg_16/conv4/conv4_3'].shape.as_list() == [1, 4, 4, 512]
    with pytest.raises(ValueError, match='unknown final_endpoint'):
        _build(network_fn, size=32, final_endpoint='vgg_16/conv9')


def test_unknown_network_lists_valid_names():
    with pytest.raises(ValueError, match='vgg_16, vgg_19'):
        nets_factory.get_network_fn('resnet_50', num_classes=1)


def test_slim_checkpoint_gives_slims_features(vgg_checkpoint):
    """Weights restored into our network give the features tf_slim's own vgg_16 computes with them."""
    images = np.random.default_rng(0).uniform(-120, 130, (1, 224, 224, 3)).astype(np.float32)
    layers = ['vgg_16/conv1/conv1_2', 'vgg_16/conv3/conv3_3', 'vgg_16/conv5/conv5_3', 'vgg_16/pool5']

    def slim_fn(inputs):
        with slim.arg_scope(slim_vgg.vgg_arg_scope()):
            return slim_vgg.vgg_16(inputs, num_classes=1, is_training=False)

    slim_graph, slim_points, _ = _build(slim_fn)
    with slim_graph.as_default(), tf.Session() as sess:
        conv_vars = [v for v in tf.global_variables() if '/fc' not in v.op.name]
        tf.train.Saver(conv_vars).restore(sess, vgg_checkpoint)  # fc layers are never run
        expected = sess.run([slim_points[k] for k in layers], {'images:0': images})

    network_fn = nets_factory.get_network_fn('vgg_16', num_classes=1)
    graph, our_points, _ = _build(network_fn, final_endpoint='vgg_16/pool5')
    with graph.as_default(), tf.Session() as sess:
        get_init_fn(vgg_checkpoint, 'vgg_16/fc')(sess)
        ours = sess.run([our_points[k] for k in layers], {'images:0': images})
    for a, b in zip(ours, expected):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-3 * np.abs(b).max())


def test_v1_checkpoint_of_slims_format_loads(tmp_path, vgg_checkpoint):
    """slim's published vgg_16.ckpt is a single V1 file: it must pass the check and load."""
    prefix = save_random_vgg(str(tmp_path / 'vgg_16.ckpt'), write_version=tf.train.SaverDef.V1)
    pretrained.check_vgg_checkpoint(prefix, 'vgg_16')
    with tf.Graph().as_default():
        nets_factory.get_network_fn('vgg_16', 1)(tf.zeros([1, 32, 32, 3]), final_endpoint='vgg_16/pool5')
        with tf.Session() as sess:
            get_init_fn(prefix, 'vgg_16/fc')(sess)
            weights = sess.run(tf.global_variables('vgg_16/conv1/conv1_1/weights')[0])
    assert weights.shape == (3, 3, 3, 64) and np.abs(weights).sum() > 0
