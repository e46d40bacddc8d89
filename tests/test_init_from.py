"""train.py --init_from: a new model folder starts from another trained network's weights, of any form and number
of styles; the global step and Adam start afresh, and a folder with a checkpoint resumes instead."""
import numpy as np
import pytest

import checkpoints
import export
import model
import train
from helpers import usage_error, write_config, write_image_file
from inference.stylizer import Stylizer, model_weights
from training.init_from import starting_weights
from utils import tf


def _random_weights(styles, seed):
    rng = np.random.default_rng(seed)
    return {name: rng.normal(size=shape).astype(np.float32)
            for name, shape in model.expected_transform_variables(styles).items()}


@pytest.mark.parametrize('source, styles', [(1, 1), (1, 3), (2, 2), (2, 3), (3, 2), (2, 1)])
def test_starting_weights_carry_the_convolutions_and_the_styles_by_position(source, styles):
    weights = _random_weights(source, seed=source)
    start, note = starting_weights(weights, styles)
    assert set(start) == set(model.expected_transform_variables(styles)) and note
    for name, value in start.items():
        if name.endswith(model.STYLE_VARIABLES):
            untrained = 1.0 if name.endswith('style_scale') else 0.0
            kept = min(source, styles) if source > 1 else 0
            if kept:
                np.testing.assert_array_equal(value[:kept], weights[name][:kept])
            assert np.all(value[kept:] == untrained)  # a one-style network's layers: scale 1, offset 0
        else:
            np.testing.assert_array_equal(value, weights[name])


def test_model_weights_are_the_same_from_every_form_that_holds_them(trained_model, tmp_path):
    reference = model_weights(trained_model)
    for fmt, name in (('pb', 'm.pb'), ('savedmodel', 'm_savedmodel'), ('ckpt', 'm.ckpt')):
        export.main(['--model_file', trained_model, '--format', fmt, '--output', str(tmp_path / name)])
        weights = model_weights(str(tmp_path / name))
        assert set(weights) == set(reference)
        for key in reference:
            np.testing.assert_array_equal(weights[key], reference[key])


def _variables(prefix):
    reader = tf.train.load_checkpoint(prefix)
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}


def test_training_starts_from_the_model_and_afresh(workspace, trained_model, caplog):
    caplog.set_level('INFO')
    source = model_weights(trained_model)
    config = write_config('new.yml', naming='new')
    train.main(['-c', config, '--max_steps', '1', '--init_from', trained_model])
    after = _variables('models/new/fast-style-model.ckpt-1')
    assert after['global_step'] == 1  # afresh: the source model was at step 3
    for name, value in source.items():  # one Adam step from the source (about 1e-3 a weight), not from a new start
        assert np.abs(after[name] - value).max() < 0.01
    assert any('transform network initialised from %s' % trained_model in m for m in caplog.messages)
    caplog.clear()
    train.main(['-c', config, '--max_steps', '2', '--init_from', trained_model])  # resumes: init_from left out
    assert any('--init_from %s left out: the model folder holds a checkpoint' % trained_model in m
               for m in caplog.messages)
    assert _variables('models/new/fast-style-model.ckpt-2')['global_step'] == 2


def test_a_network_of_two_styles_starts_from_a_network_of_one(workspace, trained_model):
    write_image_file('style2.jpg', 44, 36, seed=9)
    config = write_config('two.yml', naming='two', style_image=['style.jpg', 'style2.jpg'], style_weight=[50, 20])
    train.main(['-c', config, '--max_steps', '1', '--init_from', trained_model])
    after = _variables('models/two/fast-style-model.ckpt-1')
    assert np.all(after['conv2/style_scale'][1] == 1) and np.all(after['conv2/style_offset'][1] == 0)  # not trained
    assert np.abs(after['conv2/conv/weight'] - model_weights(trained_model)['conv2/conv/weight']).max() < 0.01


def test_init_from_errors(workspace, trained_model, tmp_path, capsys):
    err = usage_error(train.main, ['-c', write_config('a.yml', naming='a', train_dir='nowhere'), '--init_from',
                                   'models/none.ckpt'], capsys)
    assert 'training folder not found: nowhere' in err and 'model to start from not found: models/none.ckpt' in err
    lite = str(tmp_path / 'm.tflite')
    export.main(['--model_file', trained_model, '--format', 'tflite', '--output', lite])
    err = usage_error(train.main, ['-c', write_config('b.yml', naming='b'), '--init_from', lite], capsys)
    assert 'is a TFLite model, whose weights cannot be read back' in err
    err = usage_error(train.main, ['-c', write_config('c.yml', naming='c'), '--init_from', 'vgg/vgg_16.ckpt'],
                      capsys)  # a checkpoint, but of another network
    assert 'vgg/vgg_16.ckpt' in err and len(err.splitlines()) == 1


def test_mirrored_training_starts_from_the_model_on_every_replica(workspace, trained_model):
    # A style added to the trained network, the shared weights frozen: on every replica too.
    write_image_file('style2.jpg', 44, 36, seed=9)
    config = write_config('mirrored.yml', naming='mirrored', style_image=['style.jpg', 'style2.jpg'])
    train.main(['-c', config, '--max_steps', '1', '--init_from', trained_model, '--frozen_styles', '1',
                '--distribute', 'mirrored', '--devices', 'cpu:0,cpu:1'])
    after = _variables('models/mirrored/fast-style-model.ckpt-1')
    for name, value in model_weights(trained_model).items():
        np.testing.assert_array_equal(after[name], value)
    assert np.all(after['conv1/style_scale'][0] == 1) and not np.all(after['conv1/style_scale'][1] == 1)


def test_a_style_added_with_frozen_styles_leaves_the_others_exactly_as_they_were(workspace, caplog):
    caplog.set_level('INFO')
    source = checkpoints.save_random_model('two.ckpt', seed=6, styles=2, names=['wave', 'scream'])
    write_image_file('style2.jpg', 44, 36, seed=9)
    write_image_file('udnie.jpg', 40, 40, seed=10)
    config = write_config('three.yml', naming='three', style_image=['style.jpg', 'style2.jpg', 'udnie.jpg'])
    command = ['-c', config, '--init_from', source, '--frozen_styles', '2']
    train.main(command + ['--max_steps', '2'])
    assert 'the shared weights and styles style, style2 are kept as they are: the steps train udnie alone' \
        in caplog.text
    train.main(command + ['--max_steps', '3'])  # the same command resumes, still frozen
    before, after = model_weights(source), _variables('models/three/fast-style-model.ckpt-done')  # step 3
    for name, value in model.expected_transform_variables(3).items():
        if name.endswith(model.STYLE_VARIABLES):
            np.testing.assert_array_equal(after[name][:2], before[name])
            untrained = 1.0 if name.endswith('style_scale') else 0.0
            assert not np.all(after[name][2] == untrained), name  # the new style learned
        else:
            np.testing.assert_array_equal(after[name], before[name])
    photo = np.random.default_rng(1).integers(0, 256, (36, 44, 3), np.uint8)
    for index in (0, 1):  # so the old styles paint exactly as before
        np.testing.assert_array_equal(Stylizer('models/three')(photo, style=np.eye(3, dtype=np.float32)[index]),
                                      Stylizer(source)(photo, style=np.eye(2, dtype=np.float32)[index]))
    caplog.clear()  # training on without --frozen_styles: the shared weights' Adam state starts afresh
    train.main(['-c', config, '--epoch', '2', '--max_steps', '4'])
    assert 'holds no optimizer state for the weights its run kept frozen: theirs starts afresh' in caplog.text
    moved = _variables('models/three/fast-style-model.ckpt-4')
    assert not np.array_equal(moved['conv1/conv/weight'], before['conv1/conv/weight'])
    assert 'conv1/conv/weight/Adam' in moved


def test_frozen_styles_errors(workspace, trained_model, capsys):
    write_image_file('style2.jpg', 44, 36, seed=9)
    two = write_config('two.yml', naming='two', style_image=['style.jpg', 'style2.jpg'])
    for options, message in [
            (['--frozen_styles', '2', '--init_from', trained_model], '--frozen_styles 2 leaves no style to train: '
                                                                     'the config lists 2 styles'),
            (['--frozen_styles', '1'], '--frozen_styles keeps the styles of a trained network, and models/two holds '
                                       'no checkpoint: start from one with --init_from MODEL'),
            (['--frozen_styles', '-1'], '--frozen_styles must be 0 or more')]:
        assert message in usage_error(train.main, ['-c', two, *options], capsys), options
    three = write_config('three.yml', naming='three', style_image=['style.jpg', 'style2.jpg', 'style.jpg'])
    err = usage_error(train.main, ['-c', three, '--frozen_styles', '2', '--init_from', trained_model], capsys)
    assert '--frozen_styles 2 keeps styles that %s does not have: it holds 1 style' % trained_model in err
