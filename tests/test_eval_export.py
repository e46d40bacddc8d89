"""eval.py and export.py: exact sizes, V1 and V2 checkpoints, the frozen graph run by plain TensorFlow, errors."""
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import eval as eval_py
import export
import model
from inference import styling
from helpers import usage_error, write_image_file
from utils import tf


def _stylize(model_file, image_path, output):
    eval_py.main(['--model_file', model_file, '--image_file', image_path, '--output', output])
    return np.asarray(Image.open(output))


@pytest.fixture(scope='module')
def photo(tmp_path_factory):
    return write_image_file(str(tmp_path_factory.mktemp('photo') / 'photo.jpg'), 37, 53, seed=5)


@pytest.mark.parametrize('name', ['res.png', 'res.jpg', 'deep/folder/res.bmp'])
def test_eval_writes_the_input_size_in_the_extensions_format(tmp_path, trained_model, photo, name):
    output = str(tmp_path / name)
    pixels = _stylize(trained_model, photo, output)
    assert pixels.shape == (37, 53, 3)
    assert Image.open(output).format == {'png': 'PNG', 'jpg': 'JPEG', 'bmp': 'BMP'}[name[-3:]]


def test_eval_default_output_is_generated_res_jpg(tmp_path, trained_model, photo, monkeypatch):
    monkeypatch.chdir(tmp_path)
    eval_py.main(['--model_file', trained_model, '--image_file', photo])
    assert Image.open('generated/res.jpg').size == (53, 37)


@pytest.mark.parametrize('count', [1, 2])
def test_eval_precision_reaches_the_model_for_one_image_and_several(tmp_path, trained_model, monkeypatch, count):
    real_stylizer, precisions = styling.Stylizer, []

    def recording_stylizer(model_file, max_pixels, precision):
        precisions.append(precision)
        return real_stylizer(model_file, max_pixels, precision)
    monkeypatch.setattr(styling, 'Stylizer', recording_stylizer)
    photos = [write_image_file(str(tmp_path / ('photo%d.png' % i)), 20, 24, seed=i) for i in range(count)]
    output = str(tmp_path / ('res.png' if count == 1 else 'out'))
    eval_py.main(['--model_file', trained_model, '--image_file'] + photos + ['--output', output,
                                                                             '--precision', 'bf16'])
    assert precisions == ['bf16']


def _save_like_the_original(prefix, weights):
    """A V1 checkpoint with the original's variables: weights, global_step and Adam's slots and powers."""
    with tf.Graph().as_default():
        variables = [tf.Variable(value, name=name) for name, value in weights.items()]
        tf.Variable(40000, name='global_step', trainable=False)
        loss = tf.add_n([tf.reduce_sum(v) for v in variables])
        train_op = tf.train.AdamOptimizer(1e-3).minimize(loss, var_list=variables)
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            for v in variables:
                sess.run(v.assign(weights[v.op.name]))
            assert train_op is not None  # slots exist; the weights stay as given
            tf.train.Saver(write_version=tf.train.SaverDef.V1).save(sess, prefix)


def test_v1_checkpoint_of_the_original_gives_the_same_pixels(tmp_path, trained_model, photo):
    reader = tf.train.load_checkpoint(trained_model + '/fast-style-model.ckpt-done')
    weights = {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
               if name.endswith('/weight')}
    v1 = str(tmp_path / 'fast-style-model.ckpt-done')
    _save_like_the_original(v1, weights)
    assert os.path.isfile(v1) and not os.path.exists(v1 + '.index')
    np.testing.assert_array_equal(_stylize(v1, photo, str(tmp_path / 'v1.png')),
                                  _stylize(trained_model, photo, str(tmp_path / 'v2.png')))


PLAIN_TF_RUNNER = '''
import sys
import numpy as np
import tensorflow as tf
from PIL import Image
graph_def = tf.compat.v1.GraphDef()
graph_def.ParseFromString(open(sys.argv[1], 'rb').read())
pixels = np.asarray(Image.open(sys.argv[2]).convert('RGB'), np.int32)
height, width = pixels.shape[:2]
with tf.Graph().as_default():
    tf.compat.v1.import_graph_def(graph_def, name='')
    with tf.compat.v1.Session() as sess:
        flat = sess.run('output_image:0', {'input_image:0': pixels.reshape(-1), 'height:0': height, 'width:0': width})
np.save(sys.argv[3], flat.reshape(height, width, 3))
'''


def test_export_runs_with_plain_tensorflow_and_gives_evals_pixels(tmp_path, trained_model, photo):
    pb = str(tmp_path / 'tiny.pb')
    export.main(['--model_file', trained_model, '--output', pb])
    script = tmp_path / 'runner.py'
    script.write_text(PLAIN_TF_RUNNER)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3')
    subprocess.run([sys.executable, str(script), pb, photo, str(tmp_path / 'plain.npy')], check=True,
                   cwd=str(tmp_path), env=env, timeout=300)  # cwd outside the project: none of our code on the path
    plain = np.load(tmp_path / 'plain.npy')
    from_checkpoint = _stylize(trained_model, photo, str(tmp_path / 'ckpt.png')).astype(np.int32)
    # Same pixels up to float rounding of the export's means (116.779 vs 116.78): at most one grey level.
    assert plain.shape == from_checkpoint.shape
    assert np.abs(plain - from_checkpoint).max() <= 1
    assert np.mean(plain == from_checkpoint) > 0.99
    np.testing.assert_array_equal(_stylize(pb, photo, str(tmp_path / 'pb.png')), plain)


def test_weights_only_checkpoint_holds_the_transform_network_alone_and_gives_evals_pixels(tmp_path, trained_model,
                                                                                           photo):
    output = str(tmp_path / 'tiny.ckpt')
    export.main(['--model_file', trained_model, '--format', 'ckpt', '--output', output])
    assert tf.train.load_checkpoint(output).get_variable_to_shape_map() == model.expected_transform_variables()
    assert sorted(os.listdir(tmp_path)) == ['tiny.ckpt.data-00000-of-00001', 'tiny.ckpt.index']
    training = trained_model + '/fast-style-model.ckpt-done.data-00000-of-00001'
    assert os.path.getsize(output + '.data-00000-of-00001') < 0.4 * os.path.getsize(training)  # no Adam slots
    np.testing.assert_array_equal(_stylize(output, photo, str(tmp_path / 'weights.png')),
                                  _stylize(trained_model, photo, str(tmp_path / 'training.png')))


def test_export_default_output_is_next_to_the_model_folder(tmp_path, trained_model, monkeypatch, caplog, capsys):
    caplog.set_level('INFO')
    monkeypatch.chdir(os.path.dirname(trained_model))
    export.main(['--model_file', 'tiny/fast-style-model.ckpt-done'])
    assert os.path.isfile('tiny.pb')
    export.main(['--model_file', 'tiny', '-n', 'other'])
    assert os.path.isfile('other.pb')
    export.main(['--model_file', 'tiny', '--format', 'tflite'])
    export.main(['--model_file', 'tiny', '--format', 'tflite', '--fp16'])  # its own name: float32 stays
    assert os.path.getsize('tiny_fp16.tflite') < 0.6 * os.path.getsize('tiny.tflite')
    export.main(['--model_file', 'tiny', '--format', 'ckpt'])
    assert os.path.isfile('tiny.ckpt.index') and os.path.isfile('tiny.ckpt.data-00000-of-00001')
    assert 'TFLite model (float16 weights) of tiny/fast-style-model.ckpt-done written to tiny_fp16.tflite' \
        in caplog.text
    before = sorted(os.listdir('.'))
    for name in ('a/b', '..', '.hidden'):  # a name, not a path: no folder made, no hidden file
        assert '--name %r must be a file name of letters' % name in usage_error(
            export.main, ['--model_file', 'tiny', '--name', name], capsys)
    for name in ('', ' '):  # nor a blank one
        assert 'argument -n/--name: an empty value' in usage_error(
            export.main, ['--model_file', 'tiny', '--name', name], capsys)
    assert '--name names the default output' in usage_error(
        export.main, ['--model_file', 'tiny', '--name', 'x', '--output', 'y.pb'], capsys)
    assert sorted(os.listdir('.')) == before


def test_eval_errors(tmp_path, trained_model, vgg_checkpoint, photo, capsys):
    junk_pb = tmp_path / 'junk.pb'
    junk_pb.write_bytes(b'\x00not a graph\xff' * 10)
    other_pb = tmp_path / 'other.pb'
    other_pb.write_bytes(tf.GraphDef().SerializeToString())
    junk_tflite = tmp_path / 'junk.tflite'
    junk_tflite.write_bytes(b'\x00not a model\xff' * 10)
    not_image = tmp_path / 'notes.jpg'
    not_image.write_text('hello')
    cases = [
        (['--model_file', str(tmp_path / 'nope'), '--image_file', photo], 'model file not found'),
        (['--model_file', vgg_checkpoint, '--image_file', photo],
         'is not a transform-network checkpoint: 16 of its 16 variables are missing'),
        (['--model_file', str(junk_pb), '--image_file', photo], 'model file is not a frozen TensorFlow graph'),
        (['--model_file', str(other_pb), '--image_file', photo], 'a graph without the stylizer interface'),
        (['--model_file', str(tmp_path / 'nope.pb'), '--image_file', photo], 'model file not found'),
        (['--model_file', str(junk_tflite), '--image_file', photo], 'model file is not a TFLite model'),
        (['--model_file', str(tmp_path / 'nope.tflite'), '--image_file', photo], 'model file not found'),
        (['--model_file', trained_model, '--image_file', str(tmp_path / 'nope.jpg')], 'content image not found'),
        (['--model_file', trained_model, '--image_file', str(not_image)], 'content image is not a readable image'),
        (['--model_file', trained_model, '--image_file', photo, '--output', str(tmp_path / 'x.gif2')],
         "unknown image extension '.gif2'"),
    ]
    for argv, message in cases:
        assert message in usage_error(eval_py.main, argv, capsys)


def test_export_errors(tmp_path, trained_model, vgg_checkpoint, capsys):
    assert 'model file not found' in usage_error(export.main, ['--model_file', str(tmp_path / 'nope')], capsys)
    assert 'not a transform-network checkpoint' in usage_error(export.main, ['--model_file', vgg_checkpoint], capsys)
    blocker = tmp_path / 'file'
    blocker.write_text('')
    argv = ['--model_file', trained_model, '--output', str(blocker / 'x.pb')]
    assert 'file is a file, so no folder can be made there; choose another --output' in usage_error(
        export.main, argv, capsys)  # refused before the export is built
