"""Fixtures shared by the tests; the data they make comes from helpers.py."""
import os

import numpy as np
import pytest

from helpers import make_workspace, save_random_vgg, write_config
from utils import tf


def pytest_configure(config):
    # tf_slim's layers call a deprecated Keras method; that is theirs to fix, not a signal for us.
    config.addinivalue_line('filterwarnings', 'ignore:`layer.apply` is deprecated')
    # tf.data's note on options in graph mode, raised by the distribution strategies' input pipelines.
    config.addinivalue_line('filterwarnings', 'ignore:To make it possible to preserve tf.data options')
    # The TFLite interpreter's notice that it moves to the ai-edge-litert package; TensorFlow 2.21 still has it.
    config.addinivalue_line('filterwarnings', 'ignore:\\s*Warning. tf.lite.Interpreter is deprecated')


@pytest.fixture(scope='session')
def vgg_checkpoint(tmp_path_factory):
    """Prefix of a random-weight VGG-16 checkpoint (conv layers, slim names), made once for the session."""
    return save_random_vgg(str(tmp_path_factory.mktemp('vgg') / 'vgg_16.ckpt'))


@pytest.fixture(scope='session')
def vgg16_npy(tmp_path_factory, vgg_checkpoint):
    """The random checkpoint's weights as a classic vgg16.npy: BGR conv1_1, [weights, biases] lists, fc layers."""
    reader = tf.train.load_checkpoint(vgg_checkpoint)
    layers = {}
    for name in reader.get_variable_to_shape_map():
        if name.endswith('/weights'):
            layer = name.split('/')[2]
            weights = reader.get_tensor(name)
            if layer == 'conv1_1':
                weights = weights[:, :, ::-1, :]
            layers[layer] = [weights, reader.get_tensor(name[:-len('weights')] + 'biases')]
    layers['fc8'] = [np.zeros((4, 2), np.float32), np.zeros(2, np.float32)]
    path = str(tmp_path_factory.mktemp('npy') / 'vgg16.npy')
    np.save(path, layers, allow_pickle=True)
    return path


@pytest.fixture
def workspace(tmp_path, vgg_checkpoint, monkeypatch):
    """A fresh workspace as the current directory (train.py writes generated/ there, as the original)."""
    make_workspace(tmp_path, vgg_checkpoint)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope='session')
def trained_model(tmp_path_factory, vgg_checkpoint):
    """A model folder after 3 training steps on tiny images (6 images, batch 2, 1 epoch: -done at step 3)."""
    import train
    folder = make_workspace(tmp_path_factory.mktemp('trained'), vgg_checkpoint)
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        train.main(['-c', write_config('tiny.yml')])
    finally:
        os.chdir(cwd)
    return os.path.join(folder, 'models', 'tiny')


@pytest.fixture(autouse=True)
def fresh_announcements(monkeypatch):
    """Each test sees the once-per-process precision line again (utils.computing_precision)."""
    import utils
    monkeypatch.setattr(utils, '_announced', set())


@pytest.fixture(scope='session')
def arbitrary_checkpoint(tmp_path_factory):
    """Prefix of a random-weight checkpoint in the layout of Magenta's arbitrary-style network."""
    from nets import arbitrary
    return arbitrary.save_random_checkpoint(str(tmp_path_factory.mktemp('arbitrary') / 'model.ckpt'))


@pytest.fixture(scope='session')
def arbitrary_stylizer(arbitrary_checkpoint):
    """The random arbitrary-style checkpoint, loaded once."""
    from inference.stylizer import Stylizer
    loaded = Stylizer(arbitrary_checkpoint)
    yield loaded
    loaded.close()
