"""Training: checkpoints, summaries, the style target, resuming with the global step and Adam state, errors."""
import glob
import os
import re
import signal
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import checkpoints
import model
import reader
import train
import training.graph
import training.loop
import training.progress
import utils
from config import load_config
from helpers import BF16_FALLBACK, CPU_HAS_BF16, NO_BF16, usage_error, write_config, write_image_file
from images import encode_image, read_image
from utils import tf


def _event_tags(folder):
    tags = set()
    for path in glob.glob(os.path.join(folder, 'events.out.tfevents.*')):
        for event in tf.train.summary_iterator(path):
            tags.update(value.tag for value in event.summary.value)
    return tags


def _checkpoint_value(prefix, name):
    return tf.train.load_checkpoint(prefix).get_tensor(name)


def test_train_stop_and_resume(workspace, monkeypatch, caplog):
    monkeypatch.setattr(training.loop, 'SUMMARY_EVERY', 1)
    monkeypatch.setattr(training.loop, 'CHECKPOINT_EVERY', 2)
    caplog.set_level('INFO')
    config = write_config('tiny.yml', epoch=2)  # 6 images, batch 2, 2 epochs: 6 steps
    train.main(['-c', config, '--max_steps', '3'])
    folder = 'models/tiny'
    assert os.path.isfile(folder + '/fast-style-model.ckpt-2.index')  # the periodic checkpoint
    assert tf.train.latest_checkpoint(folder).endswith('fast-style-model.ckpt-3')  # --max_steps saves
    assert os.path.isfile('generated/target_style_tiny.jpg')
    tags = _event_tags(folder)
    for tag in ['losses/content_loss', 'losses/style_loss', 'losses/regularizer_loss', 'total_loss',
                'weighted_losses/weighted_content_loss', 'weighted_losses/weighted_style_loss',
                'weighted_losses/weighted_regularizer_loss', 'style_losses/vgg_16/conv1/conv1_2',
                'style_losses/vgg_16/conv4/conv4_3']:
        assert tag in tags
    assert any(tag.startswith('generated/image') for tag in tags)
    assert any(tag.startswith('origin/image') for tag in tags)
    # The README's `tensorboard --logdir models/<naming>`: TensorBoard is installed with the requirements and reads them.
    inspected = subprocess.run([sys.executable, '-m', 'tensorboard.main', '--inspect', '--logdir', folder],
                               capture_output=True, text=True, timeout=300)
    assert inspected.returncode == 0 and 'total_loss' in inspected.stdout, inspected.stderr[-2000:]
    assert 'step 3/3' in caplog.text and 's/step' in caplog.text and 'img/s' in caplog.text and 'left' in caplog.text
    # The first line comes after the run's first step (its time includes warming up), the next after its third.
    assert re.search(r'step 1/3 .* s/step .*\(the first step includes warming up\)', caplog.text)
    assert 'step 2/3' not in caplog.text
    # The loss line shows the weighted terms, which add up to the loss.
    total, *terms = map(float, re.search(r'loss (\S+) = content (\S+) \+ style (\S+) \+ tv (\S+) ',
                                         caplog.text).groups())
    assert sum(terms) == pytest.approx(total, rel=1e-3) and 'each term weighted (1, 50, 1)' in caplog.text
    assert 'to continue, run again with a larger --max_steps, or without it to train to the end (step 6)' \
        in caplog.text
    weights_at_3 = _checkpoint_value(folder + '/fast-style-model.ckpt-3', 'conv1/conv/weight')

    caplog.clear()
    train.main(['-c', config, '--max_steps', '3'])  # the same command again says what continues
    assert 'nothing to do: the model is already at step 3 of 3; to train on, raise --max_steps or leave it out' \
        in caplog.text

    caplog.clear()
    train.main(['-c', config, '--max_steps', '60'])
    assert '--max_steps 60 is past the end of this run: 6 steps (epoch 2 x 6 images // batch 2)' in caplog.text
    assert 'resumed from models/tiny/fast-style-model.ckpt-3 at step 3' in caplog.text
    assert 'step 4/6' in caplog.text and 'step 5/6' not in caplog.text  # a resumed run's own first step
    done = folder + '/fast-style-model.ckpt-done'
    assert _checkpoint_value(done, 'global_step') == 6
    # Adam's beta1 power (0.9 at the start, times 0.9 per step) continued from step 3 instead of restarting.
    np.testing.assert_allclose(_checkpoint_value(done, 'beta1_power'), 0.9 ** 7, rtol=1e-5)
    assert not np.allclose(_checkpoint_value(done, 'conv1/conv/weight'), weights_at_3)
    names = tf.train.load_checkpoint(done).get_variable_to_shape_map()
    assert not [n for n in names if n.startswith('vgg_16')]  # the loss network is never saved

    caplog.clear()
    train.main(['-c', config])
    assert 'nothing to do: the model is already at step 6 of 6 (training is complete' in caplog.text


def test_train_dir_override_and_subfolders(workspace, caplog):
    caplog.set_level('INFO')
    os.rename('train', 'photos')
    train.main(['-c', write_config('tiny.yml', train_dir='missing/'), '--train_dir', 'photos', '--max_steps', '1'])
    assert '6 images' in caplog.text
    # Training from a folder that holds the run's own outputs leaves them out: previews and style targets are not
    # photos (the model folder photos/models/tiny, and generated/ of the working directory, photos/ here).
    os.chdir('photos')
    config = write_config('tiny.yml', train_dir='.', style_image='../style.jpg', loss_model_file='../vgg/vgg_16.ckpt')
    for steps in ('1', '2'):
        train.main(['-c', config, '--max_steps', steps, '--preview', 'img0.jpg'])
    second = [message for message in caplog.messages if message.startswith('training steps 2 to 2 ')]
    assert os.path.isfile('generated/preview_tiny/step-1.jpg') and '(6 images, batch 2)' in second[0]
    assert 'left out of .: ./generated, where results go' in caplog.messages
    assert 'left out of .: ./models, where results go' not in caplog.messages  # the model folder is ./models/tiny


@pytest.mark.parametrize('values,message', [
    ({'loss_model': 'vgg_11'}, "unknown loss model 'vgg_11' (valid: vgg_16, vgg_19)"),
    ({'style_layers': ['vgg_16/conv9/conv9_1']},
     "unknown layer 'vgg_16/conv9/conv9_1' for loss model vgg_16 (valid: vgg_16/conv1/conv1_1"),
    ({'train_dir': 'nowhere'}, 'training folder not found: nowhere'),
    ({'train_dir': 'tiny.yml'}, 'training folder is a file, not a folder: tiny.yml (set train_dir'),
    ({'style_image': 'nowhere.jpg'}, 'style image not found: nowhere.jpg'),
    ({'style_image': 'tiny.yml'}, 'style image is not a readable image: tiny.yml'),
    ({'batch_size': 7}, '6 training images make no full batch of batch_size 7'),
    ({'loss_model_file': 'nowhere/vgg_16.ckpt'}, "VGG weights not found: nowhere/vgg_16.ckpt (put slim's vgg_16.ckpt "
                                                 'there, see pretrained/README.md; only the default pretrained/'),
    ({'loss_model_file': 'pretrained/vgg_16.ckpt'}, 'VGG weights not found: pretrained/vgg_16.ckpt (download http'),
])
def test_errors(workspace, capsys, values, message):
    err = usage_error(train.main, ['-c', write_config('tiny.yml', **values), '--no_download'], capsys)
    assert message in err


def test_every_missing_prerequisite_is_reported_at_once(workspace, capsys):
    config = write_config('tiny.yml', train_dir='photos/', style_image='img/candy.jpg',
                          loss_model_file='pretrianed/vgg_16.ckpt')
    err = usage_error(train.main, ['-c', config], capsys)
    assert 'training folder not found: photos/ (set train_dir' in err
    assert 'style image not found: img/candy.jpg (see img/README.md' in err
    assert 'VGG weights not found: pretrianed/vgg_16.ckpt' in err  # a mistyped path: reported, not downloaded into
    assert not os.path.exists('pretrianed') and not os.path.exists('models')


def test_a_preview_of_a_held_out_photo_at_every_checkpoint(workspace, capsys):
    from inference.stylizer import Stylizer
    write_image_file('held_out.png', 40, 1024, seed=3)  # wider than a preview: made 512 wide
    config = write_config('tiny.yml')
    train.main(['-c', config, '--max_steps', '2', '--preview', 'held_out.png'])
    train.main(['-c', config, '--preview', 'held_out.png'])  # resumed to the end, step 3
    assert sorted(os.listdir('generated/preview_tiny')) == ['step-2.jpg', 'step-3.jpg']
    photo = np.asarray(Image.open('held_out.png').resize((512, 20), Image.LANCZOS))
    stylizer = Stylizer('models/tiny/fast-style-model.ckpt-done')
    with open('generated/preview_tiny/step-3.jpg', 'rb') as f:  # the last checkpoint's pixels, as JPEG
        jpeg = f.read()
    assert jpeg == encode_image(stylizer(photo, progress=False), 'JPEG', quality=90)
    stylizer.close()
    events = glob.glob('models/tiny/events.out.tfevents.*')
    in_tensorboard = {event.step: value.image for path in events for event in tf.train.summary_iterator(path)
                      for value in event.summary.value if value.tag == 'preview'}  # each run's writer
    assert sorted(in_tensorboard) == [2, 3] and in_tensorboard[3].encoded_image_string == jpeg
    assert (in_tensorboard[3].height, in_tensorboard[3].width, in_tensorboard[3].colorspace) == (20, 512, 3)
    train.main(['-c', config, '--preview', 'held_out.png'])  # nothing to do: no event file, no preview
    assert len(glob.glob('models/tiny/events.out.tfevents.*')) == len(events) == 2
    assert sorted(os.listdir('generated/preview_tiny')) == ['step-2.jpg', 'step-3.jpg']
    with open('generated/preview_tiny/notes.txt', 'w') as f:
        f.write('mine')
    assert ('--preview generated/preview_tiny exists and is not a folder of previews of train.py' in
            usage_error(train.main, ['-c', config, '--preview', 'held_out.png'], capsys))
    assert 'preview photo not found: gone.jpg (--preview takes a photo' in usage_error(
        train.main, ['-c', config, '--preview', 'gone.jpg'], capsys)
    assert 'preview photo' in usage_error(train.main, ['-c', config, '--preview', 'generated/preview_tiny/notes.txt'],
                                          capsys)


def test_training_folder_without_images(workspace, capsys):
    os.makedirs('empty/sub')
    open('empty/sub/notes.txt', 'w').close()
    argv = ['-c', write_config('tiny.yml', train_dir='empty')]
    assert 'training folder has no .jpg or .png images: empty' in usage_error(train.main, argv, capsys)


def test_not_a_vgg_checkpoint(workspace, trained_model, capsys):
    prefix = trained_model + '/fast-style-model.ckpt-done'
    err = usage_error(train.main, ['-c', write_config('tiny.yml', loss_model_file=prefix)], capsys)
    assert 'is not a vgg_16 checkpoint: 26 of its 26 variables are missing' in err


def test_missing_config(workspace, capsys):
    assert 'config file not found: nope.yml' in usage_error(train.main, ['-c', 'nope.yml'], capsys)


def test_corrupt_training_state_is_reported(workspace, capsys):
    os.makedirs('models/tiny')
    with open('models/tiny/checkpoint', 'w') as f:
        f.write('model_checkpoint_path: "fast-style-model.ckpt-9"\n')
    with open('models/tiny/fast-style-model.ckpt-9', 'w') as f:
        f.write('not a checkpoint')
    err = usage_error(train.main, ['-c', write_config('tiny.yml'), '--max_steps', '1'], capsys)
    assert 'no checkpoint in models/tiny can be restored' in err


def test_ctrl_c_saves_the_current_step(workspace, monkeypatch, caplog):
    caplog.set_level('INFO')
    real_step = training.progress.ProgressLog.step

    def interrupt_at_two(self, step, *args):
        real_step(self, step, *args)
        if step == 2:
            signal.raise_signal(signal.SIGINT)  # handled before the next line, unlike os.kill

    monkeypatch.setattr(training.progress.ProgressLog, 'step', interrupt_at_two)
    train.main(['-c', write_config('tiny.yml')])
    assert tf.train.latest_checkpoint('models/tiny').endswith('fast-style-model.ckpt-2')
    assert 'stopped by SIGINT at step 2' in caplog.text and 'Run the same command to resume' in caplog.text
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers restored afterwards


def test_a_corrupt_training_image_is_skipped(workspace):
    with open('train/broken.jpg', 'wb') as f:
        f.write(b'\xff\xd8\xff\xe0 truncated jpeg')
    train.main(['-c', write_config('tiny.yml', epoch=2, max_bad_fraction=0.5)])  # 6 of 7 readable: all steps run
    assert tf.train.load_checkpoint('models/tiny/fast-style-model.ckpt-done').get_tensor('global_step') == 7


def _losses_and_gradients(config, filenames, grams, model_prefix, reference):
    """Loss values and transform-network gradients of one batch, in the fast or the original formulation."""
    loss_net = train.loss_network_for(config)
    loader = reader.ImageLoader(len(filenames), config.max_bad_fraction, config.image_size)
    with tf.Graph().as_default():
        ops = training.graph.build_graph(config, filenames, [(grams, config.style_weight)], loss_net, loader,
                                         reference=reference)
        gradients = tf.gradients(ops.losses['total'], model.transform_variables())
        init_loss_network = loss_net.init_fn()
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            init_loss_network(sess)
            checkpoints.transform_saver().restore(sess, model_prefix)
            return sess.run([ops.losses, gradients])


def test_fast_training_graph_gives_the_original_losses_and_gradients(workspace):
    """Mean subtraction instead of the identity resize and crop, the content half run only to its layer and
    without back-propagation, the fast transform network: the same losses and gradients."""
    config = load_config(write_config('tiny.yml'))
    filenames = ['train/img0.jpg', 'train/img1.jpg']  # batch 2: both graphs see the same batch
    rng = np.random.default_rng(0)
    grams = [rng.uniform(0, 50, (channels, channels)).astype(np.float32) for channels in (64, 128, 256, 512)]
    prefix = checkpoints.save_random_model(str(workspace / 'start.ckpt'))
    fast_losses, fast_gradients = _losses_and_gradients(config, filenames, grams, prefix, reference=False)
    losses_, gradients = _losses_and_gradients(config, filenames, grams, prefix, reference=True)
    for key, value in losses_.items():
        np.testing.assert_allclose(fast_losses[key], value, rtol=1e-4)
    for fast, reference in zip(fast_gradients, gradients):
        assert np.linalg.norm(fast - reference) <= 1e-3 * np.linalg.norm(reference)



def test_training_takes_a_vgg16_npy(workspace, vgg16_npy, caplog):
    """The npy dict of the same weights gives the same style targets and losses, and a run trains on it."""
    caplog.set_level('INFO')
    configs = {name: load_config(write_config(name + '.yml', loss_model_file=path))
               for name, path in (('ckpt', 'vgg/vgg_16.ckpt'), ('npy', vgg16_npy))}
    style = read_image('style.jpg')
    grams = {name: train.get_style_features(config, style, train.loss_network_for(config))[0]
             for name, config in configs.items()}
    prefix = checkpoints.save_random_model(str(workspace / 'start.ckpt'))
    values = {name: _losses_and_gradients(config, ['train/img0.jpg', 'train/img1.jpg'], grams[name], prefix,
                                          reference=False)[0]
              for name, config in configs.items()}
    # The formats' means differ in the third decimal (116.78 vs 116.779): equal to float precision, not bits.
    for ckpt, npy in zip(grams['ckpt'], grams['npy']):
        np.testing.assert_allclose(npy, ckpt, rtol=1e-3, atol=1e-3 * np.abs(ckpt).max())
    for key in ('total', 'content', 'style'):
        np.testing.assert_allclose(values['npy'][key], values['ckpt'][key], rtol=1e-3)
    train.main(['-c', 'npy.yml', '--max_steps', '1'])
    assert 'weights from %s' % vgg16_npy in caplog.text
    assert tf.train.latest_checkpoint('models/tiny').endswith('fast-style-model.ckpt-1')


def _bfloat16_nodes_while_training(monkeypatch, config):
    """Train one step with `config`, recording the graphs the session runs; returns the most nodes computing in
    bfloat16 in any one run."""
    real_run, counts = tf.Session.run, [0]

    def recording_run(self, fetches, feed_dict=None, options=None, run_metadata=None):
        if options is not None or run_metadata is not None:
            return real_run(self, fetches, feed_dict, options, run_metadata)
        metadata = tf.RunMetadata()
        result = real_run(self, fetches, feed_dict, tf.RunOptions(output_partition_graphs=True), metadata)
        counts.append(sum(1 for graph in metadata.partition_graphs for node in graph.node
                          if node.attr['T'].type == tf.bfloat16.as_datatype_enum))
        return result
    monkeypatch.setattr(tf.Session, 'run', recording_run)
    train.main(['-c', config, '--max_steps', '1'])
    monkeypatch.setattr(tf.Session, 'run', real_run)
    return max(counts)


def test_mixed_precision_training_runs_bfloat16_and_keeps_float32_weights(workspace, monkeypatch, caplog):
    caplog.set_level('INFO')
    assert _bfloat16_nodes_while_training(monkeypatch, write_config('plain.yml', model_path='plain')) == 0
    bfloat16_nodes = _bfloat16_nodes_while_training(monkeypatch, write_config('tiny.yml', mixed_precision=True))
    # Where the CPU has native bfloat16 it runs; elsewhere float32 runs, and the log says so.
    assert bfloat16_nodes > 10 if CPU_HAS_BF16 else bfloat16_nodes == 0 and BF16_FALLBACK in caplog.messages
    for name, value in NO_BF16.items():  # told the CPU lacks it, any machine runs float32 and says so
        monkeypatch.setenv(name, value)
    caplog.clear()
    utils._announced.clear()
    assert _bfloat16_nodes_while_training(monkeypatch, write_config('told.yml', mixed_precision=True,
                                                                    model_path='told')) == 0
    assert BF16_FALLBACK in caplog.messages
    monkeypatch.delenv(next(iter(NO_BF16)))
    train.main(['-c', write_config('tiny.yml', mixed_precision=True), '--max_steps', '2'])
    reader_ = tf.train.load_checkpoint('models/tiny/fast-style-model.ckpt-2')
    assert reader_.get_variable_to_dtype_map()['conv1/conv/weight'] == tf.float32
    assert np.isfinite(reader_.get_tensor('deconv3/conv/weight')).all()
    assert 'step 2/' in caplog.text