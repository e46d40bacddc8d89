"""Fuzzing the loading functions behind the commands: random bytes as images, configs, weights and models must
give a clear UsageError (or a valid result), never another exception."""
import io
import os
import tempfile

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings, strategies as st
from PIL import Image

import checkpoints
import reader
from config import CONFIG_SCHEMA, load_config
from images import load_image
from inference.stylizer import Stylizer
from nets import pretrained
from utils import UsageError

# Derandomized: CI runs the same examples every time (set FUZZ_EXAMPLES higher and derandomize off to explore).
FUZZ = settings(max_examples=int(os.environ.get('FUZZ_EXAMPLES', 150)), deadline=None,
                derandomize=not os.environ.get('FUZZ_EXPLORE'), suppress_health_check=[HealthCheck.too_slow])


def _real_image_bytes(fmt):
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (12, 10, 3), np.uint8)).save(buffer, format=fmt)
    return buffer.getvalue()


def _mutated(data):
    """Real files with some bytes overwritten, cut or extended: they get past the format checks."""
    return st.tuples(st.lists(st.tuples(st.integers(0, len(data) - 1), st.integers(0, 255)), max_size=8),
                     st.integers(1, len(data)), st.binary(max_size=20)).map(
        lambda change: _apply(data, *change))


def _apply(data, edits, cut, tail):
    data = bytearray(data)
    for position, value in edits:
        data[position] = value
    return bytes(data[:cut]) + tail


FILE_BYTES = st.one_of(st.binary(max_size=300), _mutated(_real_image_bytes('PNG')), _mutated(_real_image_bytes('JPEG')),
                       _mutated(_real_image_bytes('BMP')), _mutated(_real_image_bytes('WEBP')))
SCRATCH = tempfile.mkdtemp(prefix='fuzz')


def _write(name, data):
    path = os.path.join(SCRATCH, name)
    with open(path, 'wb') as f:
        f.write(data)
    return path


@FUZZ
@given(FILE_BYTES, st.sampled_from(['x.jpg', 'x.png', 'x.webp', 'x.bmp', 'x.tif']))
def test_random_bytes_as_images(data, name):
    try:
        rgb, alpha = load_image(_write(name, data))
    except UsageError as error:
        assert 'is not a readable image' in str(error)
        return
    assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3
    assert alpha is None or alpha.shape == rgb.shape[:2]


class _Name:
    def __init__(self, path):
        self.path = path

    def numpy(self):
        return self.path.encode()


@FUZZ
@given(FILE_BYTES)
def test_random_bytes_in_the_training_pipeline(data):
    loader = reader.ImageLoader(num_files=1000, max_bad_fraction=1.0, min_side=8)
    pixels, ok = loader(_Name(_write('train.jpg', data)))
    assert pixels.dtype == np.uint8 and pixels.ndim == 3
    assert ok or loader.bad


YAML_VALUES = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20)),
                           lambda inner: st.lists(inner, max_size=4), max_leaves=6)


@FUZZ
@given(st.one_of(st.text(max_size=200),
                 st.dictionaries(st.one_of(st.sampled_from(sorted(CONFIG_SCHEMA)), st.text(max_size=12)),
                                 YAML_VALUES, max_size=len(CONFIG_SCHEMA)).map(yaml.safe_dump)))
def test_random_yaml_as_configs(text):
    try:
        config = load_config(_write('c.yml', text.encode('utf-8', 'surrogatepass')))
    except UsageError as error:
        assert str(error) and '\n' not in str(error).strip()
        return
    assert set(config) == set(CONFIG_SCHEMA)


@FUZZ
@given(st.one_of(st.binary(max_size=300), _mutated(np.lib.format.magic(1, 0) + b'\x76\x00' + b' ' * 118)))
@example(b'\x93NUMPY\x01\x00\x01\x00{')  # a header numpy's parser fails on with tokenize.TokenError
def test_random_bytes_as_vgg16_npy(data):
    with pytest.raises(UsageError, match='is not a VGG-16 npy dict'):
        pretrained.load_vgg16_npy(_write('w.npy', data))


@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes_as_checkpoints_and_frozen_graphs(data):
    prefix = _write('m.ckpt', b'')
    _write('m.ckpt.index', data)
    _write('m.ckpt.data-00000-of-00001', data[::-1])
    with pytest.raises(UsageError):
        checkpoints.check_transform_checkpoint(prefix)
    with pytest.raises(UsageError):
        Stylizer(_write('m.pb', data))
