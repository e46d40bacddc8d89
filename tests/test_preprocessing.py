"""VGG preprocessing against numpy: means, cover-resize (TF1 bilinear), central crop, and the inverse."""
import numpy as np
import pytest

from preprocessing import preprocessing_factory, vgg_preprocessing
from utils import tf

MEANS = np.array([123.68, 116.78, 103.94])


def _np_bilinear_tf1(image, out_h, out_w):
    """TF1's resize_bilinear without half-pixel centres: source = destination * in / out."""
    in_h, in_w = image.shape[:2]
    ys, xs = np.arange(out_h) * in_h / out_h, np.arange(out_w) * in_w / out_w
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    y1, x1 = np.minimum(y0 + 1, in_h - 1), np.minimum(x0 + 1, in_w - 1)
    fy, fx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
    top = image[y0][:, x0] * (1 - fx) + image[y0][:, x1] * fx
    bottom = image[y1][:, x0] * (1 - fx) + image[y1][:, x1] * fx
    return top * (1 - fy) + bottom * fy


def _np_preprocess(image, size):
    h, w = image.shape[:2]
    scale = max(size / h, size / w)
    new_h, new_w = int(np.round(h * scale)), int(np.round(w * scale))
    resized = _np_bilinear_tf1(image.astype(np.float64), new_h, new_w)
    top, left = (new_h - size) // 2, (new_w - size) // 2
    return resized[top:top + size, left:left + size] - MEANS


@pytest.mark.parametrize('shape', [(40, 60), (60, 40), (32, 32), (17, 101), (200, 90)])
def test_preprocess_matches_numpy(shape):
    image = np.random.default_rng(0).integers(0, 256, shape + (3,), dtype=np.uint8)
    preprocess, _ = preprocessing_factory.get_preprocessing('vgg_16', is_training=True)
    with tf.Session(graph=tf.Graph()) as sess:
        ours = sess.run(preprocess(tf.constant(image), 32, 32))
    assert ours.shape == (32, 32, 3)
    np.testing.assert_allclose(ours, _np_preprocess(image, 32), atol=5e-3)  # float32 source positions


def test_same_size_is_only_mean_subtraction_and_unprocess_inverts_it():
    image = np.random.default_rng(1).integers(0, 256, (24, 24, 3), dtype=np.uint8)
    preprocess, unprocess = preprocessing_factory.get_preprocessing('vgg_19')
    with tf.Session(graph=tf.Graph()) as sess:
        processed = preprocess(tf.constant(image), 24, 24)
        ours, back = sess.run([processed, unprocess(processed)])
    np.testing.assert_allclose(ours, image - MEANS, atol=1e-4)
    np.testing.assert_allclose(back, image, atol=1e-4)


def test_mean_subtraction_works_on_batches_with_other_means():
    batch = np.full((2, 3, 4, 3), 200, np.int32)
    with tf.Session(graph=tf.Graph()) as sess:
        out = sess.run(vgg_preprocessing.mean_image_subtraction(tf.constant(batch), (1.0, 2.0, 3.0)))
    np.testing.assert_array_equal(out[..., 2], 197.0)


def test_unknown_preprocessing_name():
    with pytest.raises(ValueError, match='vgg_16'):
        preprocessing_factory.get_preprocessing('inception')

