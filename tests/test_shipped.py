"""The style models shipped in models/: each loads through eval.py, export.py and serve.py and stylizes."""
import json
import os

import numpy as np
import pytest
from PIL import Image

import export
import model
import serve
import style_names
from config import load_config, style_list, style_scale_list
from helpers import ROOT, png, request, run_command, start_server, write_image_file
from inference.stylizer import Stylizer
from utils import tf

SHIPPED = serve.shipped_models()
STYLES = {name: model.styles_in(tf.train.load_checkpoint(prefix).get_variable_to_shape_map())
          for name, prefix in SHIPPED.items()}  # how many styles each holds


def test_models_are_shipped_with_a_recipe_each():
    assert SHIPPED, 'no models/<style>.ckpt in the repository'
    for name, prefix in SHIPPED.items():
        shapes = tf.train.load_checkpoint(prefix).get_variable_to_shape_map()
        names = shapes.pop(style_names.NAME, None)
        assert shapes == model.expected_transform_variables(model.styles_in(shapes))  # weights only, no Adam
        recipe = os.path.join(ROOT, 'models', 'recipe', name + '.yml')  # how it was trained
        config = load_config(recipe)
        images = [image for image, _ in style_list(config)]
        assert len(images) == STYLES[name] and (names is not None) == (STYLES[name] > 1)
        if names is not None:  # a model of several styles knows them by their names in its recipe
            assert Stylizer(prefix).style_names == style_names.from_images(images, style_scale_list(config))


@pytest.fixture(scope='module')
def photo(tmp_path_factory):
    return write_image_file(str(tmp_path_factory.mktemp('photo') / 'photo.png'), 48, 64, seed=11)


@pytest.mark.parametrize('name,style', [(name, style) for name in sorted(SHIPPED)
                                        for style in (range(STYLES[name]) if STYLES[name] > 1 else [None])])
def test_eval_and_export_take_a_shipped_model(name, style, photo, tmp_path):
    choice = [] if style is None else ['--style', Stylizer(SHIPPED[name]).style_names[style]]
    done = run_command('eval.py', '--model_file', 'models/%s.ckpt' % name, '--image_file', photo, '--output',
                       str(tmp_path / 'eval.png'), *choice, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    original = np.asarray(Image.open(photo)).astype(int)
    stylized = np.asarray(Image.open(tmp_path / 'eval.png')).astype(int)
    assert stylized.shape == original.shape and np.abs(stylized - original).mean() > 10
    export.main(['--model_file', SHIPPED[name], '--output', str(tmp_path / 'exported.pb')])
    weights = None if style is None else np.eye(STYLES[name], dtype=np.float32)[style]
    from_export = Stylizer(str(tmp_path / 'exported.pb'))(original.astype(np.uint8), progress=False, style=weights)
    assert np.abs(from_export.astype(int) - stylized).max() <= 1  # the export's means differ in the third decimal


def test_serve_demo_serves_every_shipped_model():
    process, url = start_server('--demo')
    try:
        status, _, body = request(url + '/v1/models')
        assert status == 200
        assert sorted(entry['name'] for entry in json.loads(body)['models']) == sorted(SHIPPED)
        for name in SHIPPED:
            choice = '&style=%d' % (STYLES[name] - 1) if STYLES[name] > 1 else ''
            status, headers, _ = request(url + '/v1/stylize/%s?format=png%s' % (name, choice), png(20, 30)[0])
            assert status == 200 and headers['x-image-size'] == '30x20'
    finally:
        process.terminate()
        process.wait(30)


def test_the_crop_step_of_the_recipe_is_reproducible_and_overwrites_nothing(tmp_path, capsys):
    from helpers import usage_error
    crops = _load_crops_tool()
    write_image_file(str(tmp_path / 'photos' / 'a.jpg'), 60, 90, seed=1)
    write_image_file(str(tmp_path / 'photos' / 'sub' / 'b.png'), 80, 40, seed=2)
    (tmp_path / 'photos' / 'broken.jpg').write_bytes(b'not a photo')
    for run in ('one', 'two'):
        crops.main(['--photos', str(tmp_path / 'photos'), '--output', str(tmp_path / run), '--per_photo', '3',
                    '--size', '32'])
    names = sorted(os.listdir(tmp_path / 'one'))
    assert names == ['a_%02d.jpg' % i for i in range(3)] + ['sub_b_%02d.jpg' % i for i in range(3)]
    for name in names:
        first, second = (np.asarray(Image.open(tmp_path / run / name)) for run in ('one', 'two'))
        assert first.shape == (32, 32, 3) and np.array_equal(first, second)  # the same seed, the same crops
    before = sorted(os.listdir(tmp_path / 'one'))
    err = usage_error(crops.main, ['--photos', str(tmp_path / 'photos'), '--output', str(tmp_path / 'one')], capsys)
    assert 'exists and is not an empty folder' in err and sorted(os.listdir(tmp_path / 'one')) == before


def _load_crops_tool():
    import importlib.util
    spec = importlib.util.spec_from_file_location('crops', os.path.join(ROOT, 'models', 'recipe', 'crops.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
