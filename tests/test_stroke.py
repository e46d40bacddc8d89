"""Stroke size: a network trained at several sizes of its style image (style_scales), eval.py --stroke between
them, and the same in the exports, the service and its page."""
import re

import numpy as np
import pytest
from PIL import Image

import checkpoints
import eval as eval_py
import export
import style_names
import train
from config import load_config, style_list, style_scale_list
from helpers import (NEEDS_CHROMIUM, eval_pixels, request, service_page, serving, usage_error,
                     write_config, write_image_file)
from inference import stroke
from inference.stylizer import Stylizer
from utils import UsageError, tf

SCALES = ['wave@0.5', 'wave@1', 'wave@2']


@pytest.fixture(scope='module')
def strokes(tmp_path_factory):
    """A random network of three styles named as a config with style_scales [0.5, 1, 2] names them."""
    return checkpoints.save_random_model(str(tmp_path_factory.mktemp('strokes') / 'strokes.ckpt'), seed=6, styles=3,
                                         names=SCALES)


@pytest.fixture(scope='module')
def photo(tmp_path_factory):
    return write_image_file(str(tmp_path_factory.mktemp('photo') / 'photo.png'), 36, 44, seed=8)


def test_a_config_trains_one_style_image_at_several_scales(tmp_path):
    config = load_config(write_config(tmp_path / 'scales.yml', style_image='img/wave.jpg', style_scales=[2, 0.5, 1]))
    assert style_list(config) == [('img/wave.jpg', 50.0)] * 3
    assert style_scale_list(config) == [0.5, 1, 2]  # smallest first, whatever the order given
    assert style_names.from_images(['img/wave.jpg'] * 3, style_scale_list(config)) == SCALES
    assert style_scale_list(load_config(write_config(tmp_path / 'one.yml'))) == [1.0]
    for value, message in [([], 'style_scales lists 0 values; give 1 to 64'),
                           ([0.5, 0], 'style_scales 0 makes a 0-pixel style crop of image_size 32'),
                           ([-1, 1], 'style_scales must be a finite number >= 0, got -1.0'),
                           ([1, float('nan')], 'style_scales must be a finite number >= 0, got nan'),
                           ([1, float('inf')], 'style_scales must be a finite number >= 0, got inf'),
                           ([1, 'big'], 'style_scales[1] must be a number'),
                           ([0.25, 1], 'makes a 8-pixel style crop of image_size 32; each scale must give 16 to 8192'),
                           ([1, 1.0], 'style_scales lists a scale twice: 1, 1')]:
        with pytest.raises(UsageError) as error:
            load_config(write_config(tmp_path / 'bad.yml', style_scales=value))
        assert message in str(error.value)
    with pytest.raises(UsageError, match='style_scales trains one style image at several sizes, and style_image '
                                         'lists 2'):
        load_config(write_config(tmp_path / 'two.yml', style_image=['a.jpg', 'b.jpg'], style_scales=[0.5, 1]))


def test_training_at_three_scales_writes_each_target_at_its_size_and_names_the_styles(workspace):
    config = write_config('strokes.yml', naming='strokes', style_scales=[0.5, 1, 2])
    train.main(['-c', config, '--max_steps', '1'])
    sides = [Image.open('generated/target_style_strokes_%d.jpg' % index).size for index in range(3)]
    assert sides == [(16, 16), (32, 32), (64, 64)]
    assert Stylizer('models/strokes').style_names == ['style@0.5', 'style@1', 'style@2']


def test_the_scales_come_from_the_names_and_the_weights_interpolate_in_log_stroke():
    np.testing.assert_array_equal(stroke.scales_of(SCALES), [0.5, 1, 2])
    for names in (None, ['wave'], ['wave', 'scream'], ['wave@1', 'sea@2'], ['wave@1', 'wave@1'], ['wave@0', 'wave@1'],
                  ['wave@1', 'wave@x'], ['@1', '@2'], ['wave@1', 'wave@inf']):
        assert stroke.scales_of(names) is None
    scales = np.array([0.5, 1, 2])
    for at, index in ((0.5, 0), (1, 1), (2, 2)):  # a trained scale is that style alone, exactly
        np.testing.assert_array_equal(stroke.stroke_weights(at, scales), np.eye(3, dtype=np.float32)[index])
    np.testing.assert_allclose(stroke.stroke_weights(2 ** 0.5, scales), [0, 0.5, 0.5], atol=1e-7)
    np.testing.assert_allclose(stroke.stroke_weights(0.5 * 2 ** 0.25, scales), [0.75, 0.25, 0], atol=1e-7)
    np.testing.assert_allclose(stroke.stroke_weights(1.5, np.array([2, 1, 0.5])), [np.log2(1.5), 1 - np.log2(1.5), 0],
                               atol=1e-7)  # in any order
    with tf.Graph().as_default(), tf.Session() as sess:
        at = tf.placeholder(tf.float32, [])
        weights = stroke.weights_in_graph(at, scales)
        for value in (0.5, 0.6, 1, 1.3, 2 ** 0.5, 2):
            np.testing.assert_allclose(sess.run(weights, {at: value}), stroke.stroke_weights(value, scales), atol=1e-6)
        np.testing.assert_array_equal(sess.run(weights, {at: 1}), [0, 1, 0])
        for value in (0.4, 2.1):
            with pytest.raises(tf.errors.InvalidArgumentError, match='stroke is outside the sizes'):
                sess.run(weights, {at: value})


def test_eval_stroke_at_a_scale_is_its_style_and_between_is_the_mix(strokes, photo, tmp_path):
    at_two = eval_pixels(strokes, photo, tmp_path / 'two.png', '--stroke', '2')
    np.testing.assert_array_equal(at_two, eval_pixels(strokes, photo, tmp_path / 'style.png', '--style', 'wave@2'))
    np.testing.assert_array_equal(eval_pixels(strokes, photo, tmp_path / 'default.png'),  # stroke 1 unless asked
                                  eval_pixels(strokes, photo, tmp_path / 'one.png', '--style', 'wave@1'))
    between = eval_pixels(strokes, photo, tmp_path / 'between.png', '--stroke', '1.5')
    share = np.log2(1.5)
    np.testing.assert_array_equal(between, eval_pixels(strokes, photo, tmp_path / 'mix.png', '--style_mix',
                                                       '0,%r,%r' % (float(1 - share), float(share))))
    assert 0 < np.abs(between - at_two).mean() < np.abs(at_two - eval_pixels(strokes, photo, tmp_path / 'half.png',
                                                                             '--stroke', '0.5')).mean()


def test_bad_strokes_are_one_line_before_any_work(strokes, photo, tmp_path, capsys):
    output = tmp_path / 'out.png'
    run = ['--model_file', strokes, '--image_file', photo, '--output', str(output)]
    for extra, message in [(['--stroke', '3'], '--stroke 3 is outside the sizes %s was trained at: give 0.5 to 2 '
                                               '(its styles: 0.5, 1, 2)' % strokes),
                           (['--stroke', '0'], '--stroke must be a positive number'),
                           (['--stroke', 'nan'], '--stroke must be a positive number'),
                           (['--stroke', ''], 'argument --stroke: an empty value'),
                           (['--stroke', '1', '--style', 'wave@1'], 'argument --style/--style_index: not allowed '
                                                                    'with argument --stroke'),
                           (['--stroke', '1', '--style_image', photo], "stroke size of Magenta's arbitrary-style "
                                                                       'network is --style_size')]:
        assert message in usage_error(eval_py.main, run + extra, capsys)
    plain = checkpoints.save_random_model(str(tmp_path / 'plain.ckpt'), seed=1)
    assert 'was not trained at several sizes of its style image, so its stroke size is fixed' in usage_error(
        eval_py.main, ['--model_file', plain, '--image_file', photo, '--output', str(output), '--stroke', '1'], capsys)
    assert not output.exists()


@pytest.mark.parametrize('fmt,name', [('pb', 'strokes.pb'), ('savedmodel', 'strokes_savedmodel')])
def test_exports_take_a_stroke_in_the_graph(strokes, photo, tmp_path, fmt, name):
    export.main(['--model_file', strokes, '--format', fmt, '--output', str(tmp_path / name)])
    pixels = np.asarray(Image.open(photo).convert('RGB'))
    for value in (1.5, 2):
        expected = eval_pixels(strokes, photo, tmp_path / ('expected%g.png' % value), '--stroke', str(value))
        with tf.Graph().as_default(), tf.Session() as sess:
            if fmt == 'pb':
                graph_def = tf.GraphDef()
                graph_def.ParseFromString((tmp_path / name).read_bytes())
                tf.import_graph_def(graph_def, name='')
                flat = sess.run('output_image_by_stroke:0', {'input_image:0': pixels.ravel(), 'stroke:0': value,
                                                             'height:0': pixels.shape[0], 'width:0': pixels.shape[1]})
                got = flat.reshape(pixels.shape)
            else:
                meta = tf.saved_model.loader.load(sess, ['serve'], str(tmp_path / name))
                signature = meta.signature_def['by_stroke']
                got = sess.run(signature.outputs['stylized'].name, {signature.inputs['image'].name: pixels[None],
                                                                    signature.inputs['stroke'].name: value})[0]
        assert np.abs(got.astype(int) - expected).max() <= 1
    assert Stylizer(str(tmp_path / name)).style_names == SCALES  # eval.py --stroke reads the exports as well


@pytest.fixture(scope='module')
def server(strokes):
    with serving('--model', 'strokes=' + strokes) as url:
        yield url


def test_the_service_takes_a_stroke_and_lists_the_trained_sizes(server, strokes, photo, tmp_path):
    url = server
    status, _, body = request(url + '/v1/models')
    assert status == 200 and b'"strokes":[0.5,1.0,2.0]' in body.replace(b' ', b'')
    data = open(photo, 'rb').read()
    status, _, body = request(url + '/v1/stylize/strokes?stroke=1.5&format=png', data,
                              {'Content-Type': 'image/png'})
    assert status == 200
    (tmp_path / 'served.png').write_bytes(body)
    expected = eval_pixels(strokes, photo, tmp_path / 'expected.png', '--stroke', '1.5')
    assert np.abs(np.asarray(Image.open(tmp_path / 'served.png')).astype(int) - expected).max() <= 1
    for query, message in [('stroke=3', b'stroke 3 is outside the sizes model strokes was trained at'),
                           ('stroke=', b'stroke must be a finite number'),
                           ('stroke=-1', b'stroke must be a positive number'),
                           ('stroke=1&style=0', b'give stroke or style, not both')]:
        status, _, body = request(url + '/v1/stylize/strokes?' + query, data, {'Content-Type': 'image/png'})
        assert status == 400 and message in body, (query, body)


@NEEDS_CHROMIUM
def test_the_page_offers_a_stroke_slider_over_the_trained_sizes(server, photo):
    with service_page(server, 1) as (playwright_api, page):
        playwright_api.expect(page.locator('#stroke_pick')).to_be_visible()
        assert page.locator('#styles').is_hidden()  # the stroke stands for the network's styles
        assert page.text_content('#stroke_value') == '1x'
        page.set_input_files('#file', photo)
        sent = []
        page.on('request', lambda request: sent.append(request.url) if '/v1/stylize/' in request.url else None)
        for value, shown in (('1', '2'), ('-0.5', '0.707')):  # the slider's log2 of the stroke
            page.locator('#stroke').fill(value)
            assert page.text_content('#stroke_value') == shown + 'x'
            page.click('#go')
            playwright_api.expect(page.locator('#result')).to_have_attribute('src', re.compile('^blob:'))
            playwright_api.expect(page.locator('#status')).not_to_have_class('error')
            assert 'stroke=%s' % shown in sent[-1]
