"""Magenta's arbitrary-style network: its layout, the fast formulation against Magenta's, and eval.py's options."""
import numpy as np
import pytest
from PIL import Image

import checkpoints
import eval as eval_py
import model
from helpers import usage_error, write_image_file
from inference import arbitrary as arbitrary_inference, styling
from inference.stylizer import Stylizer
from nets import arbitrary
from utils import tf

# Facts of Magenta's transformer (nza_model.py): every variable of the published checkpoint under transformer/.
TRANSFORMER = {
    'transformer/contract/conv1/weights': [9, 9, 3, 32], 'transformer/contract/conv2/weights': [3, 3, 32, 64],
    'transformer/contract/conv3/weights': [3, 3, 64, 128],
    **{'transformer/contract/conv%d/BatchNorm/%s' % (layer, kind): [channels]
       for layer, channels in ((1, 32), (2, 64), (3, 128)) for kind in ('beta', 'moving_mean', 'moving_variance')},
    **{'transformer/residual/residual%d/conv%d/weights' % (block, conv): [3, 3, 128, 128]
       for block in range(1, 6) for conv in (1, 2)},
    'transformer/expand/conv1/conv/weights': [3, 3, 128, 64], 'transformer/expand/conv2/conv/weights': [3, 3, 64, 32],
    'transformer/expand/conv3/conv/weights': [9, 9, 32, 3],
}


@pytest.fixture(scope='module')
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp('arbitrary-images')
    return {name: write_image_file(str(folder / ('%s.png' % name)), height, width, seed=seed)
            for name, height, width, seed in (('photo', 45, 61, 1), ('style', 70, 50, 2), ('other', 64, 96, 3))}


def test_the_layout_is_the_published_checkpoints():
    expected = checkpoints.expected_variables(arbitrary.build_all)
    assert {name: shape for name, shape in expected.items() if name.startswith('transformer/')} == TRANSFORMER
    assert expected['Conv/weights'] == [1, 1, 768, 100] and expected['Conv/biases'] == [100]
    for scope, channels in arbitrary.STYLE_NORM_LAYERS:
        for conv in ('Conv', 'Conv_1'):  # beta, then gamma
            assert expected['style_params/transformer/%s/StyleNorm/%s/weights' % (scope, conv)] == [1, 1, 100, channels]
    assert expected['InceptionV3/Mixed_6e/Branch_3/Conv2d_0b_1x1/BatchNorm/moving_variance'] == [192]
    assert not any(name.startswith('InceptionV3/Mixed_7') or name.endswith('gamma') for name in expected)


def test_batch_norm_is_slims_at_inference_with_its_epsilon():
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (1, 4, 5, 6)).astype(np.float32)
    beta, mean, variance = rng.normal(0, 1, 6), rng.normal(0, 1, 6), rng.uniform(0.001, 0.01, 6)
    with tf.Graph().as_default(), tf.Session() as sess:
        y = arbitrary.batch_norm(tf.constant(x))
        for name, value in (('beta', beta), ('moving_mean', mean), ('moving_variance', variance)):
            tf.global_variables('BatchNorm/' + name)[0].load(value.astype(np.float32), sess)
        np.testing.assert_allclose(sess.run(y), (x - mean) / np.sqrt(variance + 0.001) + beta, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('height, width', [(37, 51), (5, 9), (64, 64)])
def test_the_fast_transformer_equals_magentas(arbitrary_checkpoint, height, width):
    rng = np.random.default_rng(height)
    content = rng.integers(0, 256, (1, height, width, 3), dtype=np.uint8)
    embedding = rng.normal(0, 1, (1, arbitrary.EMBEDDING)).astype(np.float32)
    results = []
    for transform in (arbitrary.transform_reference, arbitrary.transform):
        with tf.Graph().as_default():
            output = arbitrary.stylize_uint8(tf.constant(content), arbitrary.style_parameters(tf.constant(embedding)),
                                             transform)
            with tf.Session() as sess:
                tf.train.Saver([v for v in tf.global_variables() if not v.op.name.startswith('InceptionV3')]
                               ).restore(sess, arbitrary_checkpoint)
                results.append(sess.run(output).astype(int))
    assert results[0].shape == (1, height, width, 3)
    assert np.abs(results[0] - results[1]).max() <= 1
    assert results[0].std() > 20  # a real picture, not a saturated or grey one


def test_the_style_image_is_resized_as_magenta_does():
    assert arbitrary.resized_style_shape(300, 200) == (384, 256)
    assert arbitrary.resized_style_shape(200, 300) == (256, 384)
    assert arbitrary.resized_style_shape(333, 333, 100) == (100, 100)
    with tf.Graph().as_default(), tf.Session() as sess:
        image = tf.placeholder(tf.uint8, [1, None, None, 3])
        resized = sess.run(arbitrary.style_input(image, 128), {image: np.full((1, 31, 47, 3), 255, np.uint8)})
    assert resized.shape == (1, *arbitrary.resized_style_shape(31, 47, 128), 3) and np.allclose(resized, 1)


def _eval(checkpoint, photo, output, *options):
    eval_py.main(['--model_file', checkpoint, '--image_file', photo, '--output', str(output), *options])
    return np.asarray(Image.open(output)).astype(int)


def test_eval_stylizes_in_the_style_of_any_image_mixed_or_weakened(arbitrary_checkpoint, images, tmp_path):
    one = _eval(arbitrary_checkpoint, images['photo'], tmp_path / 'one.png', '--style_image', images['style'])
    other = _eval(arbitrary_checkpoint, images['photo'], tmp_path / 'other.png', '--style_image', images['other'])
    assert one.shape == (45, 61, 3) and np.abs(one - other).mean() > 5
    first = _eval(arbitrary_checkpoint, images['photo'], tmp_path / 'mix.png', '--style_image', images['style'],
                  images['other'], '--style_mix', '1,0')
    np.testing.assert_array_equal(first, one)
    # --style_strength 0: the photo's own style, whatever the style image
    own = _eval(arbitrary_checkpoint, images['photo'], tmp_path / 'own.png', '--style_image', images['photo'])
    zero = _eval(arbitrary_checkpoint, images['photo'], tmp_path / 'zero.png', '--style_image', images['style'],
                 '--style_strength', '0')
    np.testing.assert_array_equal(zero, own)
    part = _eval(arbitrary_checkpoint, images['photo'], tmp_path / 'part.png', '--style_image', images['style'],
                 '--style_strength', '0.5')
    assert 0 < np.abs(part - one).mean() < np.abs(own - one).mean()


def test_the_style_embedding_is_predicted_once_per_style_image(arbitrary_checkpoint, arbitrary_stylizer, images,
                                                               monkeypatch):
    calls = []
    embed = arbitrary_stylizer.embed
    monkeypatch.setattr(arbitrary_stylizer, 'embed', lambda *args, **kwargs: calls.append(1) or embed(*args, **kwargs))
    recipe = styling.Recipe(arbitrary_checkpoint, style_images=(images['style'],))
    style_for = styling.style_of(arbitrary_stylizer, [np.asarray(Image.open(images['style']))], recipe)
    photos = [np.asarray(Image.open(images[name])) for name in ('photo', 'other', 'photo')]
    styles = [style_for(photo)[0] for photo in photos]
    assert len(calls) == 1 and all(np.array_equal(style, styles[0]) for style in styles)


def test_tiled_equals_whole_within_one_level(arbitrary_checkpoint, arbitrary_stylizer, images):
    photo = np.asarray(Image.open(images['other']))
    style = arbitrary_stylizer.embed(np.asarray(Image.open(images['style'])))
    tiled = Stylizer(arbitrary_checkpoint, max_pixels=4096)
    try:
        whole = arbitrary_stylizer(photo, style=style)
        assert np.abs(tiled(photo, progress=False, style=style).astype(int) - whole).max() <= 1
    finally:
        tiled.close()


def test_style_image_mistakes_are_one_line(arbitrary_checkpoint, images, tmp_path, capsys):
    photo = images['photo']

    def error(*options):
        return usage_error(eval_py.main, ['--model_file', arbitrary_checkpoint, '--image_file', photo, '--output',
                                          str(tmp_path / 'out.png'), *options], capsys)
    (tmp_path / 'text.jpg').write_text('not an image')
    assert 'style image is not a readable image' in error('--style_image', str(tmp_path / 'text.jpg'))
    tiny = write_image_file(str(tmp_path / 'tiny.png'), 1, 1)
    assert 'tiny.png is 1x1: too small to hold a style' in error('--style_image', tiny)
    strip = write_image_file(str(tmp_path / 'strip.png'), 20, 400)
    assert 'its sides differ more than 16 times' in error('--style_image', strip)
    huge = tmp_path / 'huge.png'
    Image.new('RGB', (8000, 6000)).save(huge)
    assert 'style image %s is too large: 8000x6000 is over the limit' % huge in error('--style_image', str(huge))
    assert "is Magenta's arbitrary-style network: give the style with --style_image" in error()
    assert '2 style images take 2 shares: --style_mix w1,w2' in error('--style_image', photo, photo,
                                                                      '--style_mix', '1,2,3')
    assert '2 style images take 2 shares' in error('--style_image', photo, photo)
    assert '1 style image takes 1 share' in error('--style_image', photo, '--style_mix', '1,2')
    assert '--style_strength must be between 0 and 1' in error('--style_image', photo, '--style_strength', '2')
    assert '--style_strength and --style_size apply to --style_image' in error('--style_size', '300')
    assert '--style_size must be between 64 and 1024' in error('--style_image', photo, '--style_size', '32')
    assert not (tmp_path / 'out.png').exists()


def test_a_style_image_for_a_trained_style_network_is_refused(trained_model, images, tmp_path, capsys):
    err = usage_error(eval_py.main, ['--model_file', trained_model, '--image_file', images['photo'], '--output',
                                     str(tmp_path / 'out.png'), '--style_image', images['style']], capsys)
    assert "--style_image needs a checkpoint of Magenta's arbitrary-style network" in err


def _resaved(prefix, path, drop=(), extra=False):
    """The checkpoint saved again without the variables `drop`, with a global step if `extra`."""
    reader = tf.train.load_checkpoint(prefix)
    with tf.Graph().as_default(), tf.Session() as sess:
        kept = [tf.Variable(reader.get_tensor(name), name=name) for name in reader.get_variable_to_shape_map()
                if name not in drop]
        kept += [tf.Variable(7, name='global_step')] if extra else []
        sess.run(tf.global_variables_initializer())
        return tf.train.Saver(kept).save(sess, path, write_meta_graph=False)


def test_variables_the_network_does_not_use_are_ignored(arbitrary_checkpoint, arbitrary_stylizer, images, tmp_path):
    with_step = Stylizer(_resaved(arbitrary_checkpoint, str(tmp_path / 'step.ckpt'), extra=True))
    try:
        photo, style = (np.asarray(Image.open(images[name])) for name in ('photo', 'style'))
        np.testing.assert_array_equal(with_step(photo, style=with_step.embed(style)),
                                      arbitrary_stylizer(photo, style=arbitrary_stylizer.embed(style)))
    finally:
        with_step.close()


def test_a_checkpoint_missing_variables_names_them(arbitrary_checkpoint, tmp_path, images, capsys):
    prefix = _resaved(arbitrary_checkpoint, str(tmp_path / 'partial.ckpt'),
                      drop=('transformer/expand/conv3/conv/weights', 'Conv/biases'))
    err = usage_error(eval_py.main, ['--model_file', prefix, '--image_file', images['photo'], '--output',
                                     str(tmp_path / 'out.png'), '--style_image', images['style']], capsys)
    assert ('2 of its %d variables are missing: Conv/biases, transformer/expand/conv3/conv/weights'
            % len(checkpoints.expected_variables(arbitrary.build_all))) in err
    assert arbitrary_inference.FIX in err


def test_video_takes_its_own_style_from_the_first_frame(arbitrary_checkpoint, images, tmp_path, monkeypatch):
    import imageio_ffmpeg
    from helpers import make_video
    calls = []
    embed = Stylizer.embed
    monkeypatch.setattr(Stylizer, 'embed', lambda self, pixels, *args: calls.append(pixels.shape) or
                        embed(self, pixels, *args))
    make_video(tmp_path / 'in.mp4', seconds=1, size=(64, 48))
    eval_py.main(['--model_file', arbitrary_checkpoint, '--video', str(tmp_path / 'in.mp4'), '--output',
                  str(tmp_path / 'out.mp4'), '--style_image', images['style'], '--style_strength', '0.5',
                  '--smooth', '0.5', '--consistency', 'flow', '--preserve_colors', '--batch_size', '4'])
    assert calls == [(70, 50, 3), (48, 64, 3)]  # the style image, then the first frame: once each
    reader = imageio_ffmpeg.read_frames(str(tmp_path / 'out.mp4'))
    assert next(reader)['size'] == (64, 48) and len(list(reader)) == 10


@pytest.mark.parametrize('fmt', ['pb', 'savedmodel', 'tflite'])
def test_exports_equal_eval_and_tile(arbitrary_checkpoint, arbitrary_stylizer, images, tmp_path, fmt):
    import export
    output = str(tmp_path / {'pb': 'arbitrary.pb', 'savedmodel': 'arbitrary_savedmodel',
                             'tflite': 'arbitrary.tflite'}[fmt])
    export.main(['--model_file', arbitrary_checkpoint, '--format', fmt, '--output', output])
    photo, style = (np.asarray(Image.open(images[name])) for name in ('other', 'style'))
    expected = arbitrary_stylizer(photo, style=arbitrary_stylizer.embed(style))
    # whole, and tiled on the export's own weights (which a .tflite does not give)
    for max_pixels in (10 ** 6,) if fmt == 'tflite' else (10 ** 6, 4096):
        exported = Stylizer(output, max_pixels=max_pixels)
        try:
            embedding = exported.embed(style)
            np.testing.assert_allclose(embedding, arbitrary_stylizer.embed(style), rtol=1e-4, atol=1e-4)
            assert np.abs(exported(photo, progress=False, style=embedding).astype(int) - expected).max() <= 1
        finally:
            exported.close()


def test_the_savedmodel_serves_without_our_code(arbitrary_checkpoint, arbitrary_stylizer, images, tmp_path):
    import export
    output = str(tmp_path / 'served_savedmodel')
    export.main(['--model_file', arbitrary_checkpoint, '--format', 'savedmodel', '--output', output])
    photo, style = (np.asarray(Image.open(images[name])) for name in ('photo', 'style'))
    with tf.Graph().as_default(), tf.Session() as sess:
        meta = tf.saved_model.loader.load(sess, ['serve'], output)
        signature = meta.signature_def['serving_default']
        stylized = sess.run(signature.outputs['stylized'].name, {signature.inputs['image'].name: photo[None],
                                                                signature.inputs['style_image'].name: style[None]})
        mask = np.zeros((1, *photo.shape[:2], 1), np.float32)
        mask[:, :, photo.shape[1] // 2:] = 1  # the style on the right, the photo's own on the left
        signature = meta.signature_def['by_region']
        by_region = sess.run(signature.outputs['stylized'].name, {signature.inputs['image'].name: photo[None],
                                                                 signature.inputs['style_image'].name: style[None],
                                                                 signature.inputs['mask'].name: mask})
    assert np.abs(stylized[0].astype(int) - arbitrary_stylizer(photo, style=arbitrary_stylizer.embed(style))).max() <= 1
    regions = model.StyleMap(np.stack([arbitrary_stylizer.embed(style), arbitrary_stylizer.embed(photo)]),
                             np.concatenate([mask[0], 1 - mask[0]], -1))
    assert np.abs(by_region[0].astype(int) - arbitrary_stylizer(photo, style=regions)).max() <= 1


def test_export_formats_that_do_not_apply_are_refused(arbitrary_checkpoint, tmp_path, capsys):
    import export
    err = usage_error(export.main, ['--model_file', arbitrary_checkpoint, '--format', 'ckpt', '--output',
                                    str(tmp_path / 'x.ckpt')], capsys)
    assert "is Magenta's arbitrary-style network: export it as --format pb or savedmodel" in err
