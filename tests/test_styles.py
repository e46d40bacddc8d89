"""Networks of several styles: conditional instance normalization in training, inference, exports and the service."""
import base64
import glob
import json
import os

import numpy as np
import pytest

import checkpoints
import eval as eval_py
import export
import model
import style_names
import train
import training.loop
from config import load_config, style_list
from helpers import (NEEDS_CHROMIUM, eval_pixels, png, request, service_page, serving, usage_error,
                     write_config, write_image_file)
from images import read_image
from inference.stylizer import Stylizer, style_choice
from training.progress import ProgressLog
from utils import UsageError, tf


@pytest.fixture(scope='module')
def two_styles(tmp_path_factory):
    """A random network of two styles whose per-style scales and offsets differ, named as a config would."""
    return checkpoints.save_random_model(str(tmp_path_factory.mktemp('two') / 'two.ckpt'), seed=4, styles=2,
                                         names=['wave', 'scream'])


@pytest.fixture(scope='module')
def unnamed(tmp_path_factory):
    """The same network as written before models carried their style names."""
    return checkpoints.save_random_model(str(tmp_path_factory.mktemp('unnamed') / 'two.ckpt'), seed=4, styles=2)


@pytest.fixture(scope='module')
def photo(tmp_path_factory):
    return write_image_file(str(tmp_path_factory.mktemp('photo') / 'photo.png'), 40, 52, seed=5)


def test_a_network_of_three_styles_adds_a_scale_and_an_offset_per_style_to_each_normalized_layer():
    with tf.Graph().as_default():
        model.net(tf.placeholder(tf.float32, [1, 32, 32, 3]), model.TRAINING,
                  style_weights=tf.placeholder(tf.float32, [3]))
        found = {v.op.name: v.shape.as_list() for v in tf.global_variables()}
    assert found == model.expected_transform_variables(3)
    assert found['deconv1/style_offset'] == [3, 64] and model.styles_in(found) == 3
    assert model.styles_in(model.expected_transform_variables()) == 1


def test_a_config_lists_styles_and_their_weights(tmp_path):
    config = load_config(write_config(tmp_path / 'two.yml', style_image=['a.jpg', 'b.jpg'], style_weight=[50, 20]))
    assert style_list(config) == [('a.jpg', 50.0), ('b.jpg', 20.0)]
    config = load_config(write_config(tmp_path / 'one_weight.yml', style_image=['a.jpg', 'b.jpg'], style_weight=7))
    assert style_list(config) == [('a.jpg', 7.0), ('b.jpg', 7.0)]
    assert style_list(load_config(write_config(tmp_path / 'one.yml'))) == [('style.jpg', 50.0)]
    for values, message in [({'style_image': ['a.jpg', 'b.jpg'], 'style_weight': [1, 2, 3]},
                             'style_weight lists 3 weights for 2 style images'),
                            ({'style_image': ['a.jpg', 5]}, 'style_image[1] must be a string'),
                            ({'style_image': [], 'style_weight': 1}, 'style_image lists 0 values; give 1 to 64'),
                            ({'style_image': ['a.jpg', 'b.jpg'], 'style_weight': [1, -2]},
                             'style_weight must be a finite number >= 0, got -2.0')]:
        with pytest.raises(UsageError) as error:
            load_config(write_config(tmp_path / 'bad.yml', **values))
        assert message in str(error.value)


def test_training_two_styles_trains_one_style_a_step_in_turn(workspace, caplog, monkeypatch):
    caplog.set_level('INFO')
    monkeypatch.setattr(training.loop, 'SUMMARY_EVERY', 1)
    write_image_file('style2.jpg', 44, 36, seed=9)
    config = write_config('two.yml', naming='two', style_image=['style.jpg', 'style2.jpg'], style_weight=[50, 20])
    train.main(['-c', config, '--max_steps', '1'])
    scale = tf.train.load_checkpoint('models/two/fast-style-model.ckpt-1').get_tensor('conv1/style_scale')
    assert scale.shape == (2, 32)
    assert not np.all(scale[0] == 1) and np.all(scale[1] == 1)  # step 1 trained the first style alone
    _drop_tensor('models/two/fast-style-model.ckpt-1', 'style_names')  # as written before names were saved
    train.main(['-c', config, '--max_steps', '2', '--preview', 'style2.jpg'])  # resumes all the same
    scale = tf.train.load_checkpoint('models/two/fast-style-model.ckpt-2').get_tensor('conv1/style_scale')
    assert not np.all(scale[1] == 1)  # and step 2 the second
    assert read_image('generated/preview_two/step-2.jpg').shape == (44, 2 * 36 + 8, 3)  # the styles side by side
    assert sorted(glob.glob('generated/target_style_two_*.jpg')) == ['generated/target_style_two_0.jpg',
                                                                    'generated/target_style_two_1.jpg']
    tags = {value.tag for path in glob.glob('models/two/events.out.tfevents.*')
            for event in tf.train.summary_iterator(path) for value in event.summary.value}
    assert {'style_index', 'style_loss_by_style/0_style', 'style_loss_by_style/1_style2'} <= tags
    assert 'each term weighted (1, 50/20, 1)' in caplog.text
    assert '(style2; latest style loss of each: style2 ' in caplog.text
    # The checkpoints carry the styles' names, from the style images' file names.
    assert list(tf.train.load_checkpoint('models/two/fast-style-model.ckpt-2').get_tensor('style_names')) == \
        [b'style', b'style2']
    assert Stylizer('models/two').style_names == ['style', 'style2']


def _drop_tensor(prefix, name):
    """Rewrite a checkpoint without one of its tensors."""
    reader = tf.train.load_checkpoint(prefix)
    with tf.Graph().as_default():
        kept = [tf.Variable(reader.get_tensor(key), name=key) for key in reader.get_variable_to_shape_map()
                if key != name]
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            tf.train.Saver({v.op.name: v for v in kept}).save(sess, prefix, write_meta_graph=False,
                                                               write_state=False)
    assert not tf.train.load_checkpoint(prefix).has_tensor(name)


def test_style_names_come_from_the_style_images_and_bad_ones_are_left_out(caplog):
    caplog.set_level('INFO')
    assert style_names.from_images(['img/wave.jpg', 'other/wave.png', 'a/scream.jpg']) == ['wave', 'wave_1', 'scream']
    assert style_names.usable([b'wave', b'scream'], 2, 'm') == ['wave', 'scream']
    for values in ([b'wave'], [b'wave', b'wave'], [b'wave', b''], [b'wave', b'x' * 65], [b'wave', b'\xff'],
                   [b'wave', b'a\nb'], np.float32([1, 2]), np.array([[b'a', b'b'], [b'c', b'd']])):
        assert style_names.usable(values, 2, 'm') is None
    assert 'm: its style names cannot name its 2 styles; they go by index' in caplog.text
    assert style_names.index_of('2019', ['wave', '2019'], 2, 'm', '--style') == 1  # a name before an index
    assert style_names.index_of(' 0 ', None, 2, 'm', '--style') == 0


def test_another_number_of_styles_in_the_model_folder_is_refused(workspace, capsys):
    write_image_file('style2.jpg', 44, 36, seed=9)
    two = write_config('two.yml', naming='mixed', style_image=['style.jpg', 'style2.jpg'])
    train.main(['-c', two, '--max_steps', '1'])
    err = usage_error(train.main, ['-c', write_config('one.yml', naming='mixed'), '--max_steps', '2'], capsys)
    assert 'holds a network of 2 styles, and the config lists 1: train into a new model folder' in err


def test_a_style_by_name_or_index_and_a_mix(two_styles, unnamed, photo, tmp_path):
    first = eval_pixels(two_styles, photo, tmp_path / 'first.png', '--style', 'wave')
    second = eval_pixels(two_styles, photo, tmp_path / 'second.png', '--style', 'scream')
    assert np.abs(first - second).mean() > 10
    np.testing.assert_array_equal(eval_pixels(two_styles, photo, tmp_path / 'one.png', '--style', '1'), second)
    np.testing.assert_array_equal(eval_pixels(two_styles, photo, tmp_path / 'index.png', '--style_index', '1'), second)
    np.testing.assert_array_equal(eval_pixels(unnamed, photo, tmp_path / 'unnamed.png', '--style', '0'), first)
    np.testing.assert_array_equal(eval_pixels(two_styles, photo, tmp_path / 'mix10.png', '--style_mix', '1,0'), first)
    half = eval_pixels(two_styles, photo, tmp_path / 'half.png', '--style_mix', '2,2')  # shares are normalized
    apart = np.abs(first - second).mean()
    assert np.abs(half - first).mean() < apart and np.abs(half - second).mean() < apart


@pytest.mark.parametrize('fmt,name,tolerance', [('pb', 'two.pb', 1), ('savedmodel', 'two_savedmodel', 0),
                                                 ('tflite', 'two.tflite', 1), ('ckpt', 'weights.ckpt', 0)])
def test_exports_take_style_weights_and_equal_eval(two_styles, photo, tmp_path, fmt, name, tolerance):
    export.main(['--model_file', two_styles, '--format', fmt, '--output', str(tmp_path / name)])
    reference = eval_pixels(two_styles, photo, tmp_path / 'reference.png', '--style_mix', '0.3,0.7')
    exported = eval_pixels(str(tmp_path / name), photo, tmp_path / 'exported.png', '--style_mix', '0.3,0.7')
    assert np.abs(exported - reference).max() <= tolerance
    assert Stylizer(str(tmp_path / name)).style_names == ['wave', 'scream']  # every export carries the names
    if fmt == 'tflite':  # in its metadata; names that cannot serve there are left out
        with open(tmp_path / name, 'rb') as f:
            model_bytes = f.read()
        for names in ([1, 2], ['a'], {'a': 1}):
            (tmp_path / 'odd.tflite').write_bytes(style_names.tflite_with_names(model_bytes, names))
            assert Stylizer(str(tmp_path / 'odd.tflite')).style_names is None


def test_tiled_inference_of_several_styles_equals_the_whole_image(two_styles):
    image = np.random.default_rng(3).integers(0, 256, (90, 100, 3), np.uint8)
    style = style_choice(2, None, [0.6, 0.4], 'two')
    whole = Stylizer(two_styles)(image, style=style).astype(int)
    tiled = Stylizer(two_styles, max_pixels=4096)(image, progress=False, style=style).astype(int)
    assert np.abs(tiled - whole).max() <= 1


def test_style_options_that_do_not_fit_the_model(two_styles, unnamed, trained_model, photo, tmp_path, capsys):
    out = str(tmp_path / 'o.png')
    for model_file, options, message in [
            (two_styles, [], 'holds 2 styles (0 wave, 1 scream): choose one with --style NAME, or blend them with '
                             '--style_mix w1,w2'),
            (unnamed, [], 'holds 2 styles (0..1): choose one with --style INDEX, or blend them with --style_mix'),
            (two_styles, ['--style', '2'], '--style 2 is not a style of %s: it holds 2 styles (0 wave, 1 scream)'
             % two_styles),
            (two_styles, ['--style', 'Wave'], '--style Wave is not a style of %s' % two_styles),
            (unnamed, ['--style', 'wave'], '--style wave is not a style of %s: it holds 2 styles (0..1)' % unnamed),
            (two_styles, ['--style_mix', '1,2,3'], '--style_mix gives 3 weights, but %s holds 2 styles (0 wave, '
                                                   '1 scream, in that order)' % two_styles),
            (two_styles, ['--style_mix', '1,-1'], '--style_mix takes non-negative weights with a positive, finite'),
            (two_styles, ['--style_mix', 'nan,1'], 'expected comma-separated finite numbers'),
            (two_styles, ['--style_mix', '0,0'], '--style_mix takes non-negative weights'),
            (two_styles, ['--style_mix', '1e308,1e308'], '--style_mix takes non-negative weights'),  # sum: inf
            (two_styles, ['--style_mix', 'a,b'], "expected comma-separated finite numbers, got 'a,b'"),
            (two_styles, ['--style', '0', '--style_mix', '1,0'], 'not allowed with argument'),
            (trained_model, ['--style', '0'], 'holds one style: --style and --style_mix apply to models of several '
                                              'styles')]:
        err = usage_error(eval_py.main, ['--model_file', model_file, '--image_file', photo, '--output', out,
                                         *options], capsys)
        assert message in err, (options, err)
    assert not os.path.exists(out)


@pytest.fixture(scope='module')
def service(two_styles):
    with serving('--model', 'two=' + two_styles) as url:
        yield url


def test_the_service_takes_a_style_or_a_mix(service):
    url = service
    status, _, body = request(url + '/v1/models')
    assert json.loads(body)['models'][0]['styles'] == 2
    assert json.loads(body)['models'][0]['style_names'] == ['wave', 'scream']
    image = png(24, 32, seed=2)[0]
    first = request(url + '/v1/stylize/two?style=0&format=png', image)
    assert first[0] == 200
    assert request(url + '/v1/stylize/two?style=wave&format=png', image)[2] == first[2]
    assert request(url + '/v1/stylize/two?mix=1,0&format=png', image)[2] == first[2]
    assert request(url + '/v1/stylize/two?style=1&format=png', image)[2] != first[2]
    payload = json.dumps({'image': base64.b64encode(image).decode(), 'mix': [1, 0], 'format': 'png'}).encode()
    status, _, body = request(url + '/v1/stylize/two/base64', payload, {'Content-Type': 'application/json'})
    assert status == 200 and base64.b64decode(json.loads(body)['image']) == first[2]
    for style, expected in [(0.0, 200), ('wave', 200), (1.7, 400), (True, 400), ({}, 400), ('x' * 65, 400)]:
        payload = json.dumps({'image': base64.b64encode(image).decode(), 'style': style, 'format': 'png'}).encode()
        status, _, body = request(url + '/v1/stylize/two/base64', payload, {'Content-Type': 'application/json'})
        assert status == expected, (style, body[:200])
        assert expected == 400 or base64.b64decode(json.loads(body)['image']) == first[2]
        assert expected == 200 or 'style must be a style name or index of the model' in json.loads(body)['error']
    for query, message in [('', 'model two holds 2 styles (0 wave, 1 scream): choose one with style NAME, or blend '
                                'them with mix'),
                           ('?style=5', 'style 5 is not a style of model two: it holds 2 styles (0 wave, 1 scream)'),
                           ('?style=Scream', 'style Scream is not a style of model two'),
                           ('?mix=1,x', 'mix must be comma-separated'),
                           ('?mix=1,2,3', 'mix gives 3 weights, but model two holds 2 styles')]:
        status, _, body = request(url + '/v1/stylize/two' + query, image)
        assert status == 400 and message in json.loads(body)['error'], (query, body)


@NEEDS_CHROMIUM
def test_the_page_offers_the_styles_of_a_model(service, tmp_path):
    photo = tmp_path / 'photo.png'
    photo.write_bytes(png(30, 40, seed=5)[0])
    with service_page(service, 1) as (playwright_api, page):
        playwright_api.expect(page.locator('#style option')).to_have_count(2)
        assert page.locator('#style option').all_text_contents() == ['wave', 'scream']
        page.set_input_files('#file', str(photo))
        for choose in (lambda: page.select_option('#style', '1'), lambda: page.fill('#mix', '0.5,0.5'),
                       lambda: page.fill('#mix', '1,2,3')):
            choose()
            page.click('#go')
            playwright_api.expect(page.locator('#status')).not_to_have_text('stylizing...')
        assert 'gives 3 weights, but model two holds 2 styles' in page.text_content('#status')


def test_the_progress_log_shows_every_style_when_the_logged_steps_train_one(caplog):
    caplog.set_level('INFO')
    progress = ProgressLog(20, 4, 1.0, [('wave', 100.0), ('scream', 10.0)], 0.0)
    for step in range(1, 21):  # styles in turn: the logged steps 10 and 20 both train scream
        progress.step(step, {'style_index': (step - 1) % 2, 'style': float(step), 'content': 1.0, 'tv': 0.0,
                             'total': 0.0})
    lines = [line for line in caplog.messages if line.startswith('step 20/20')]
    assert len(lines) == 1 and '(scream; latest style loss of each: wave 1900, scream 200)' in lines[0], lines


def test_a_model_of_several_styles_without_a_choice_shows_the_mix_to_give():
    for styles, example in [(2, '--style_mix w1,w2'), (3, '--style_mix w1,...,w3')]:
        with pytest.raises(UsageError) as error:
            style_choice(styles, None, None, 'models/m')
        assert str(error.value).endswith(example)
