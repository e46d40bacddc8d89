"""Fixtures shared by the tests; the data they make comes from helpers.py."""
import os

import pytest

from helpers import make_workspace, save_random_vgg, write_config


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
