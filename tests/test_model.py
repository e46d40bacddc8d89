"""The transform network: the original's variable names and shapes, any input size, values per docs/ORIGINAL.md."""
import numpy as np
import pytest

import checkpoints
import model
from utils import UsageError, tf

SPEC_VARIABLES = {
    'conv1/conv/weight': [9, 9, 3, 32], 'conv2/conv/weight': [3, 3, 32, 64], 'conv3/conv/weight': [3, 3, 64, 128],
    'deconv1/conv_transpose/conv/weight': [3, 3, 128, 64], 'deconv2/conv_transpose/conv/weight': [3, 3, 64, 32],
    'deconv3/conv/weight': [9, 9, 32, 3],
}
SPEC_VARIABLES.update({'res%d/residual/%s/weight' % (i, c): [3, 3, 128, 128]
                       for i in range(1, 6) for c in ('conv', 'conv_1')})


def test_variables_are_the_originals():
    assert model.expected_transform_variables() == SPEC_VARIABLES  # the table that checkpoint checks use
    with tf.Graph().as_default():
        model.net(tf.placeholder(tf.float32, [2, 64, 64, 3]), model.TRAINING)
        assert {v.op.name: v.shape.as_list() for v in tf.global_variables()} == SPEC_VARIABLES
        assert len(tf.trainable_variables()) == len(SPEC_VARIABLES)


# ---- a numpy reference of docs/ORIGINAL.md's network, in float64 ----

def _np_conv(x, weight, stride):
    """Reflect-pad by k // 2, then a VALID convolution."""
    k = weight.shape[0]
    x = np.pad(x, ((0, 0), (k // 2, k // 2), (k // 2, k // 2), (0, 0)), mode='reflect')
    out_h, out_w = (x.shape[1] - k) // stride + 1, (x.shape[2] - k) // stride + 1
    out = np.zeros((x.shape[0], out_h, out_w, weight.shape[3]))
    for i in range(k):
        for j in range(k):
            out += x[:, i:i + stride * (out_h - 1) + 1:stride, j:j + stride * (out_w - 1) + 1:stride] @ weight[i, j]
    return out


EPSILON = 1e-5  # pinned here, not read from the code under test: the README promises this value


def _np_instance_norm(x):
    return (x - x.mean((1, 2), keepdims=True)) / np.sqrt(x.var((1, 2), keepdims=True) + EPSILON)


def _np_net(image, w):
    relu = lambda t: np.maximum(t, 0)  # noqa: E731
    height, width = image.shape[1:3]
    x = np.pad(image, ((0, 0), (10, 10), (10, 10), (0, 0)), mode='reflect')
    x = relu(_np_instance_norm(_np_conv(x, w['conv1/conv/weight'], 1)))
    x = relu(_np_instance_norm(_np_conv(x, w['conv2/conv/weight'], 2)))
    x = relu(_np_instance_norm(_np_conv(x, w['conv3/conv/weight'], 2)))
    for i in range(1, 6):
        hidden = relu(_np_conv(x, w['res%d/residual/conv/weight' % i], 1))
        x = x + _np_conv(hidden, w['res%d/residual/conv_1/weight' % i], 1)
    for name in ('deconv1', 'deconv2'):
        upsampled = x.repeat(4, axis=1).repeat(4, axis=2)  # nearest neighbour, x4
        x = relu(_np_instance_norm(_np_conv(upsampled, w['%s/conv_transpose/conv/weight' % name], 2)))
    y = (np.tanh(_np_instance_norm(_np_conv(x, w['deconv3/conv/weight'], 1))) + 1) * 127.5
    return y[:, 10:10 + height, 10:10 + width]


@pytest.mark.parametrize('formulation', [model.INFERENCE, model.TRAINING, model.ORIGINAL],
                         ids=['inference', 'training', 'original'])
@pytest.mark.parametrize('height,width', [(24, 28), (13, 17), (21, 11)])
def test_net_matches_numpy_reference_of_the_spec(height, width, formulation):
    image = np.random.default_rng(height).uniform(-120, 130, (2, height, width, 3))
    with tf.Graph().as_default():
        tf.set_random_seed(1)
        images = tf.placeholder(tf.float32, [None, None, None, 3])
        generated = model.net(images, formulation)
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            weights = {v.op.name: sess.run(v).astype(np.float64) for v in tf.global_variables()}
            ours = sess.run(generated, {images: image})
    np.testing.assert_allclose(ours, _np_net(image, weights), atol=0.05)


@pytest.mark.parametrize('height,width', [(1, 1), (1, 9), (5, 7), (10, 10), (11, 3), (37, 53), (64, 64), (3, 120)])
def test_output_has_the_input_size_and_is_finite(height, width):
    with tf.Graph().as_default():
        images = tf.placeholder(tf.float32, [1, None, None, 3])
        generated = model.net(images)
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            out = sess.run(generated, {images: np.random.default_rng(0).uniform(-120, 130, (1, height, width, 3))})
    assert out.shape == (1, height, width, 3)
    assert np.isfinite(out).all() and out.min() >= 0 and out.max() <= 255


def test_instance_norm_is_accurate_when_the_mean_dwarfs_the_spread():
    # A float32 one-pass variance (what the fused kernel alone computes) is off by about 6e-4 here.
    rng = np.random.default_rng(0)
    maps = (rng.standard_normal((2, 300, 200, 4)) * [2, 0.5, 20, 1] + [1000, -300, 50, 0]).astype(np.float32)
    with tf.Graph().as_default(), tf.Session() as sess:
        normalized = sess.run(model.instance_norm(tf.constant(maps)))
    np.testing.assert_allclose(normalized, _np_instance_norm(maps.astype(np.float64)), atol=1e-4)


@pytest.mark.parametrize('build', [
    lambda x, center: model.conv2d(x, 8, 16, 3, 2, center=center),
    lambda x, center: model.upsample_conv2d(x, 8, 16, center=center),
    lambda x, center: model.conv2d_few_outputs(x, 8, 3, 9, center=center),
], ids=['conv2d', 'upsample_conv2d', 'conv2d_few_outputs'])
def test_centered_convolution_only_shifts_each_channel_to_near_zero_mean(build):
    """What instance_norm(centered=True) relies on: a per-channel constant, which normalization ignores, that
    removes nearly all of the mean (the fused kernel's float32 variance needs it on large maps)."""
    x = np.random.default_rng(0).normal(50, 1, (1, 64, 48, 8)).astype(np.float32)
    with tf.Graph().as_default():
        tf.set_random_seed(0)
        with tf.variable_scope('layer'):
            plain = build(tf.constant(x), False)
        with tf.variable_scope('layer', reuse=True):
            centered = build(tf.constant(x), True)
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            plain, centered = sess.run([plain, centered])
    shift = plain - centered
    np.testing.assert_allclose(shift, np.broadcast_to(shift[:, :1, :1], shift.shape), atol=1e-3)
    assert np.all(np.abs(centered.mean((0, 1, 2))) < 0.05 * np.abs(plain.mean((0, 1, 2))))


def test_constant_image_gives_no_nan():
    """The original's epsilon of 1e-9 turned flat feature maps into NaN ("black images")."""
    with tf.Graph().as_default():
        generated = model.net(tf.fill([1, 32, 32, 3], 7.0))
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            assert np.isfinite(sess.run(generated)).all()


@pytest.mark.parametrize('length,pad', [(20, 10), (11, 10), (3, 10), (1, 10), (2, 5)])
def test_mirror_pad_is_numpy_reflect_for_any_length(length, pad):
    data = np.arange(2 * length * 3 * 4, dtype=np.float32).reshape(2, length, 3, 4)  # pixels move whole
    with tf.Session(graph=tf.Graph()) as sess:
        padded = sess.run(model.mirror_pad(tf.constant(data), pad))
    expected = np.pad(data, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode='reflect')
    np.testing.assert_array_equal(padded, expected)


def test_find_checkpoint_resolves_folders_prefixes_and_file_names(trained_model):
    done = trained_model + '/fast-style-model.ckpt-done'
    assert checkpoints.find_checkpoint(trained_model) == done
    assert checkpoints.find_checkpoint(done) == done
    assert checkpoints.find_checkpoint(done + '.index') == done
    with pytest.raises(UsageError, match='model file not found'):
        checkpoints.find_checkpoint(trained_model + '/nothing.ckpt')


def test_find_checkpoint_in_a_copied_folder_without_state_file(tmp_path, trained_model):
    import shutil
    copy = tmp_path / 'copy'
    shutil.copytree(trained_model, copy)
    (copy / 'checkpoint').unlink()
    assert checkpoints.find_checkpoint(str(copy)).startswith(str(copy / 'fast-style-model.ckpt-'))
    with pytest.raises(UsageError, match='no checkpoint in model folder'):
        checkpoints.find_checkpoint(str(tmp_path))


def _stylize_both_ways(prefix, image):
    """uint8 results of the fast and the reference formulation with the same weights."""
    results = []
    for formulation in (model.INFERENCE, model.ORIGINAL):
        with tf.Graph().as_default():
            images = tf.placeholder(tf.uint8, [None, None, None, 3])
            out = tf.cast(tf.clip_by_value(model.net(model.mean_image_subtraction(images), formulation),
                                           0, 255), tf.uint8)
            with tf.Session() as sess:
                checkpoints.transform_saver().restore(sess, prefix)
                results.append(sess.run(out, {images: image}))
    return results


@pytest.mark.parametrize('height,width', [(1, 9), (9, 2), (7, 5), (31, 33), (6, 90), (65, 4)])
def test_fast_formulation_gives_the_reference_pixels(tmp_path, height, width):
    """Sub-pixel upsampling, row-split last convolution and fused normalization change no pixel beyond rounding.

    Not on an image of at most 4 pixels a side: its maps at a quarter of the size are one pixel, padded to a
    constant, whose normalization scales the convolutions' rounding noise up to unit variance in either
    formulation, so its pixels are the kernels' rounding (AVX2's and AVX-512's differ), not the network's."""
    prefix = checkpoints.save_random_model(str(tmp_path / 'random.ckpt'), seed=height)
    image = np.random.default_rng(width).integers(0, 256, (2, height, width, 3), dtype=np.uint8)
    fast, reference = _stylize_both_ways(prefix, image)
    difference = np.abs(fast.astype(int) - reference)
    assert difference.max() <= 1 and difference.mean() < 0.05


def test_sub_pixel_upsampling_equals_resize_then_strided_convolution():
    """Exact per layer, borders included, on odd sizes and on a 1-pixel map."""
    for height, width in [(1, 1), (3, 5), (8, 7)]:
        x = np.random.default_rng(height).normal(size=(2, height, width, 6)).astype(np.float32)
        with tf.Graph().as_default():
            with tf.variable_scope('a'):
                fast = model.upsample_conv2d(tf.constant(x), 6, 5)
            with tf.variable_scope('a', reuse=True):
                reference = model.resize_conv2d(tf.constant(x), 6, 5, 3, 2)
            with tf.Session() as sess:
                sess.run(tf.global_variables_initializer())
                fast_value, reference_value = sess.run([fast, reference])
        assert fast_value.shape == (2, 2 * height, 2 * width, 5)
        np.testing.assert_allclose(fast_value, reference_value, rtol=1e-5, atol=1e-5)


def test_inference_runs_no_transposed_convolution():
    """TF 2.21's oneDNN transposed convolution (Conv2DBackpropInput) keeps about 0.1 GB for every input size it has
    run on (a 1-megapixel image), so serve.py, a folder of mixed sizes or tiled inference would grow without bound:
    the upsampling layers are plain convolutions, at inference as in training."""
    for formulation in (model.INFERENCE, model.TRAINING):
        with tf.Graph().as_default() as graph:
            model.net(tf.placeholder(tf.float32, [None, None, None, 3]), formulation)
        assert 'Conv2DBackpropInput' not in {op.type for op in graph.get_operations()}
