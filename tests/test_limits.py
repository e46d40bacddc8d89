"""Limits checked where the data enters: decoded pixels of training images, JSON bodies, crafted frozen graphs and
non-finite style weights fed to the exports (malformed HTTP: test_serve_abuse.py)."""
import base64
import json
import tracemalloc

import numpy as np
import pytest
from PIL import Image

import checkpoints
import export
import reader
from images import load_image
from inference.stylizer import Stylizer
from service.requests import base64_request
from service.work import HTTPError
from utils import UsageError, tf


def test_a_training_image_over_the_pixel_budget_is_skipped_from_its_header(tmp_path):
    Image.new('L', (400, 300)).save(tmp_path / 'big.png')
    class PathTensor:  # what tf.py_function hands the loader
        def numpy(self):
            return str(tmp_path / 'big.png').encode()
    loader = reader.ImageLoader(1, 1.0, 8, max_pixels=100_000)
    image, ok = loader(PathTensor())
    assert not ok and 'too large: 400x300 is over the limit of 100000 pixels' in loader.bad[str(tmp_path / 'big.png')]


@pytest.mark.parametrize('mode', ['RGB', 'RGBA', 'P', 'I;16', 'L'])
def test_a_large_png_is_shrunk_by_a_whole_factor_for_training(tmp_path, mode):
    pixels = np.random.default_rng(0).integers(0, 256, (300, 500, 3), np.uint8)
    image = Image.fromarray(pixels)
    image = image.convert(mode) if mode != 'I;16' else Image.fromarray(pixels[..., 0].astype(np.uint16) * 257)
    image.save(tmp_path / 'large.png')
    rgb, _ = load_image(str(tmp_path / 'large.png'), min_side=64)
    assert rgb.shape == (75, 125, 3)  # 300 // 64 = 4: both sides still cover 64
    assert load_image(str(tmp_path / 'large.png'))[0].shape == (300, 500, 3)  # no min_side: as it is


# ------------------------------------------------------------------------------------------------------------------
# JSON bodies
# ------------------------------------------------------------------------------------------------------------------

def _png_bytes(side=64):
    import io
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (side, side, 3), np.uint8)).save(buffer, 'PNG')
    return buffer.getvalue()


def test_a_json_body_of_numbers_is_refused_before_it_is_parsed():
    body = b'{"image": "AAAA", "x": [' + b'0,' * 5_000_000 + b'0]}'
    tracemalloc.start()
    with pytest.raises(HTTPError, match='holds more than 65536 bytes besides the image'):
        base64_request(body)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 0.1 * len(body)  # json.loads would have built 5 million int objects


def test_a_json_image_costs_about_twice_the_body():
    image = _png_bytes(600)
    body = json.dumps({'image': 'data:image/png;base64,' + base64.b64encode(image).decode(), 'max_size': 64,
                       'format': 'x' * 2000}).encode()
    tracemalloc.start()
    data, _, _, options = base64_request(body)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert data == image and options == {'max_size': 64, 'format': 'a string of 2000 bytes'}
    assert peak < 1.0 * len(body)  # the decoded image (0.75 of the body) and small change; the body is the caller's


@pytest.mark.parametrize('body, message', [
    (b'{"image": "' + b'A' * 3000 + b'!"}', 'not valid base64'),
    (b'{"image": 5}', 'needs "image": a base64 string'),
    (b'["' + b'A' * 3000 + b'"]', 'needs "image": a base64 string'),
    (b'{"image": "' + b'A' * 3000, 'must be JSON'),
    (b'', 'must be JSON'),
])
def test_broken_json_bodies_get_one_line(body, message):
    with pytest.raises(HTTPError, match=message):
        base64_request(body)


def test_escaped_base64_is_read_too():
    image = _png_bytes(40)
    text = json.dumps({'image': base64.b64encode(image).decode()}).replace('/', '\\/').encode()
    assert base64_request(text)[0] == image


# ------------------------------------------------------------------------------------------------------------------
# Frozen graphs: crafted inputs, non-finite style weights
# ------------------------------------------------------------------------------------------------------------------

@pytest.fixture(scope='module')
def two_style_graph(tmp_path_factory):
    folder = tmp_path_factory.mktemp('frozen')
    prefix = checkpoints.save_random_model(str(folder / 'two' / 'fast-style-model.ckpt-done'), seed=2, styles=2)
    export.main(['--model_file', prefix, '--output', str(folder / 'two.pb')])
    return str(folder / 'two.pb')


def _crafted(tmp_path, source, change):
    graph_def = tf.GraphDef()
    with open(source, 'rb') as f:
        graph_def.ParseFromString(f.read())
    change({node.name: node for node in graph_def.node}, graph_def)
    path = str(tmp_path / 'crafted.pb')
    with open(path, 'wb') as f:
        f.write(graph_def.SerializeToString())
    return path


def _unknown_rank(nodes, _):
    nodes['style_weights'].attr['shape'].shape.unknown_rank = True
    del nodes['style_weights'].attr['shape'].shape.dim[:]


def _no_styles(nodes, _):
    nodes['style_weights'].attr['shape'].shape.dim[0].size = 0


def _dangling(nodes, graph_def):
    next(node for node in graph_def.node if node.op == 'Conv2D').input[0] = 'nowhere'


def _float_height(nodes, _):
    nodes['height'].attr['dtype'].type = tf.float32.as_datatype_enum


@pytest.mark.parametrize('change, message', [
    (_unknown_rank, 'has a style_weights input of shape unknown'),
    (_no_styles, r'has a style_weights input of shape \[0\]'),
    (_dangling, 'is a broken graph'),
    (_float_height, 'has an input height that is not a int32 placeholder'),
])
def test_crafted_frozen_graphs_get_one_line(tmp_path, two_style_graph, change, message):
    with pytest.raises(UsageError, match=message):
        Stylizer(_crafted(tmp_path, two_style_graph, change))


def test_non_finite_style_weights_fed_to_an_export_count_as_zero(two_style_graph):
    with tf.Graph().as_default(), tf.Session() as sess:
        graph_def = tf.GraphDef()
        with open(two_style_graph, 'rb') as f:
            graph_def.ParseFromString(f.read())
        tf.import_graph_def(graph_def, name='')
        image = np.random.default_rng(0).integers(0, 256, 16 * 16 * 3).astype(np.int32)

        def run(weights):
            return sess.run('output_image:0', {'input_image:0': image, 'height:0': 16, 'width:0': 16,
                                               'style_weights:0': np.asarray(weights, np.float32)})
        for weights in ([np.nan, 1], [np.inf, 1], [-np.inf, 1]):
            assert np.array_equal(run(weights), run([0, 1]))
        assert run([np.nan, np.nan]).min() >= 0  # no style at all: flat, but pixels, not -2147483648
