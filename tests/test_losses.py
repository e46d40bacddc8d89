"""The perceptual losses against numpy implementations of docs/ORIGINAL.md's formulas."""
import numpy as np
import pytest

import losses
from nets import loss_network, nets_factory
from utils import UsageError, tf

RNG = np.random.default_rng(0)


def _np_gram(f):
    n, h, w, c = f.shape
    flat = f.reshape(n, h * w, c)
    return np.einsum('nic,nid->ncd', flat, flat) / (h * w * c)


def _run(tensor):
    with tf.Session() as sess:
        return sess.run(tensor)


def test_gram():
    features = RNG.normal(size=(2, 5, 7, 4)).astype(np.float32)
    with tf.Graph().as_default():
        np.testing.assert_allclose(_run(losses.gram(tf.constant(features))), _np_gram(features), rtol=1e-5)


def test_content_loss_is_mean_squared_difference_per_layer():
    a, b = RNG.normal(size=(2, 2, 6, 6, 8)).astype(np.float32), RNG.normal(size=(2, 2, 3, 3, 16)).astype(np.float32)
    end_points = {'l1': np.concatenate(a), 'l2': np.concatenate(b)}
    expected = np.mean((a[0] - a[1]) ** 2) + np.mean((b[0] - b[1]) ** 2)
    with tf.Graph().as_default():
        generated_points, content_points = losses.split_halves({k: tf.constant(v) for k, v in end_points.items()})
        loss = losses.content_loss(generated_points, content_points, ['l1', 'l2'])
        np.testing.assert_allclose(_run(loss), expected, rtol=1e-5)


def test_style_loss_compares_grams_normalized_by_map_size():
    generated, content = RNG.normal(size=(2, 3, 6, 5, 4)).astype(np.float32)
    target = _np_gram(RNG.normal(size=(1, 8, 8, 4)).astype(np.float32))[0]
    diff = _np_gram(generated) - target  # the target is broadcast over the batch
    expected = np.sum(diff ** 2) / generated.size
    with tf.Graph().as_default():
        generated_points, _ = losses.split_halves({'s': tf.constant(np.concatenate([generated, content]))})
        total, per_layer = losses.style_loss(generated_points, [target], ['s'])
        total_value, layer_value = _run([total, per_layer['s']])
    np.testing.assert_allclose(total_value, expected, rtol=1e-5)
    np.testing.assert_allclose(layer_value, expected, rtol=1e-5)


def test_total_variation_loss():
    images = RNG.normal(size=(2, 5, 6, 3)).astype(np.float32)
    dy, dx = np.diff(images, axis=1), np.diff(images, axis=2)
    expected = np.sum(dx ** 2) / 2 / dx.size + np.sum(dy ** 2) / 2 / dy.size
    with tf.Graph().as_default():
        np.testing.assert_allclose(_run(losses.total_variation_loss(tf.constant(images))), expected, rtol=1e-5)


def test_final_endpoint_is_the_deepest_layer_and_unknown_layers_list_valid_ones():
    network_fn = nets_factory.get_network_fn('vgg_16', 1)
    layers = ['vgg_16/conv2/conv2_2', 'vgg_16/conv4/conv4_3', 'vgg_16/conv1/conv1_2']
    assert loss_network.final_endpoint(network_fn, layers) == 'vgg_16/conv4/conv4_3'
    with pytest.raises(UsageError, match=r"unknown layer 'vgg_16/conv3/conv3_4'.*valid: vgg_16/conv1/conv1_1"):
        loss_network.final_endpoint(network_fn, ['vgg_16/conv3/conv3_4'])
