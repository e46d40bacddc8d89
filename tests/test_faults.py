"""Fault injection: signals, SIGKILL at random moments, half-written checkpoints, NaN, failed saves, bad data."""
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from PIL import Image

import checkpoints
import eval as eval_py
import export
import losses
import train
import training.loop
import training.progress
from config import Config
from helpers import ROOT, usage_error, write_config, write_image_file
from utils import UsageError, tf

STEP_LINE = re.compile(r'resumed from \S+ at step (\d+)')


class _Training:
    """train.py in a child process as a user runs it, its output collected by a thread, so that every wait has a
    deadline instead of blocking on a read."""

    def __init__(self, config, *extra):
        env = {k: v for k, v in os.environ.items() if k != 'TF_CPP_MIN_LOG_LEVEL'}
        self.process = subprocess.Popen([sys.executable, os.path.join(ROOT, 'train.py'), '-c', config, *extra],
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        self.lines = []
        self.reader = threading.Thread(target=lambda: self.lines.extend(self.process.stdout), daemon=True)
        self.reader.start()

    def wait_for(self, text, timeout=300):
        """Wait until a line of the log holds `text`; returns the lines so far."""
        deadline = time.time() + timeout
        while not any(text in line for line in list(self.lines)):
            assert time.time() < deadline and self.process.poll() is None, ''.join(self.lines)
            time.sleep(0.05)
        return list(self.lines)

    def finish(self, timeout=300):
        """(exit status, the whole log) once the process has ended."""
        code = self.process.wait(timeout)
        self.reader.join(timeout)
        self.process.stdout.close()
        return code, ''.join(self.lines)


def _latest_step(folder):
    prefix = tf.train.latest_checkpoint(folder)
    return int(tf.train.load_checkpoint(prefix).get_tensor('global_step')) if prefix else 0


@pytest.mark.parametrize('signum', [signal.SIGINT, signal.SIGTERM])
def test_a_signal_saves_the_current_step_and_exits_0(workspace, signum):
    config = write_config('tiny.yml', epoch=1000, checkpoint_secs=3600.0)
    run = _Training(config)
    run.wait_for('training steps')
    run.wait_for(' step ')  # a step was taken and logged
    run.process.send_signal(signum)
    code, output = run.finish()
    assert code == 0, output
    stopped = re.search(r'stopped by %s at step (\d+); saved (\S+)\. Run the same command to resume'
                        % signal.Signals(signum).name, output)
    assert stopped, output
    assert _latest_step('models/tiny') == int(stopped.group(1)) > 0
    resumed = subprocess.run([sys.executable, os.path.join(ROOT, 'train.py'), '-c', config, '--max_steps',
                              str(int(stopped.group(1)) + 1)], capture_output=True, text=True, timeout=600)
    assert 'resumed from %s at step %s' % (stopped.group(2), stopped.group(1)) in resumed.stderr


def test_a_second_run_in_the_same_model_folder_is_refused_while_the_first_trains(workspace, capsys):
    config = write_config('tiny.yml', epoch=1000, checkpoint_secs=3600.0)
    run = _Training(config)
    run.wait_for(' step ')
    assert 'the model folder models/tiny is being trained by another train.py now' in usage_error(
        train.main, ['-c', config, '--max_steps', '2'], capsys)  # the two would overwrite each other's checkpoints
    run.process.send_signal(signal.SIGINT)
    code, output = run.finish()
    assert code == 0 and 'stopped by SIGINT' in output, output
    assert os.listdir('models/tiny') and not [name for name in os.listdir('models/tiny') if 'lock' in name]
    step = _latest_step('models/tiny')
    train.main(['-c', config, '--max_steps', str(step + 1)])  # the lock went with the process
    assert _latest_step('models/tiny') == step + 1


def test_a_file_system_without_locks_trains_unlocked(tmp_path, monkeypatch):
    import errno
    import fcntl
    import files

    def no_locks(*_):
        raise OSError(errno.ENOLCK, 'No locks available')
    monkeypatch.setattr(fcntl, 'flock', no_locks)
    with files.exclusive_folder(str(tmp_path), 'busy'):
        ran = True
    assert ran and os.listdir(tmp_path) == []


def test_a_second_signal_exits_at_once():
    """After the first signal the handlers are the system's defaults: a second one ends the process at once."""
    with training.progress.StopRequest() as stop:
        signal.raise_signal(signal.SIGTERM)  # to this thread: handled before the next line, unlike os.kill
        assert stop.received == 'SIGTERM'
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
        assert signal.getsignal(signal.SIGINT) is signal.SIG_DFL
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def _newest_complete_step(folder):
    """The highest global step among the folder's checkpoints whose every tensor reads back, found independently
    of train.py's own search (a kill mid-save leaves one that does not)."""
    steps = []
    for name in os.listdir(folder):
        if name.endswith('.index'):
            try:
                reader = tf.train.load_checkpoint(os.path.join(folder, name[:-len('.index')]))
                values = {key: reader.get_tensor(key) for key in reader.get_variable_to_shape_map()}
            except (tf.errors.OpError, ValueError):
                continue
            steps.append(int(values['global_step']))
    return max(steps, default=0)


def test_sigkill_at_random_moments_loses_at_most_a_step(workspace):
    """checkpoint_secs 0 saves every step, so kills land during saves too. Each restart resumes from the newest
    complete checkpoint at the moment of the kill, with Adam's state: after N steps in all, Adam's running power
    of beta1 is 0.9 ** (N + 1), which a reset on resume would restart from 0.9."""
    config = write_config('tiny.yml', epoch=1000, checkpoint_secs=0.0, keep_checkpoints=3)
    rng = random.Random(7)
    resumed_steps, killed_at = [], []
    for _ in range(4):
        run = _Training(config)
        lines = run.wait_for('training steps')
        resumed_steps += [int(m.group(1)) for m in map(STEP_LINE.search, lines) if m]
        start_step, deadline = _latest_step('models/tiny'), time.time() + 120
        while _latest_step('models/tiny') == start_step:
            assert time.time() < deadline, 'no checkpoint written'
            time.sleep(0.05)  # this run has saved at least once
        time.sleep(rng.uniform(0.0, 1.5))
        run.process.kill()
        run.finish()
        killed_at.append(_newest_complete_step('models/tiny'))
    assert resumed_steps == killed_at[:3]  # every restart: the newest complete checkpoint, nothing older
    # A kill between writing a checkpoint and deleting the oldest leaves one extra; the next start trims it.
    assert _checkpoint_count('models/tiny') <= 3 + 1
    final = killed_at[-1] + 1
    train.main(['-c', config, '--max_steps', str(final)])
    assert _checkpoint_count('models/tiny') <= 3  # keep_checkpoints
    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint('models/tiny'))
    assert int(reader.get_tensor('global_step')) == final
    np.testing.assert_allclose(reader.get_tensor('beta1_power'), 0.9 ** (final + 1), rtol=1e-4)


def test_a_restart_trims_checkpoints_to_keep_checkpoints(workspace):
    train.main(['-c', write_config('tiny.yml', epoch=1000, checkpoint_secs=0.0, keep_checkpoints=5),
                '--max_steps', '5'])
    assert _checkpoint_count('models/tiny') == 5
    train.main(['-c', write_config('tiny.yml', epoch=1000, checkpoint_secs=0.0, keep_checkpoints=2),
                '--max_steps', '6'])
    steps = {name.split('.')[1] for name in os.listdir('models/tiny') if name.startswith('fast-style-model.ckpt-')}
    assert steps == {'ckpt-5', 'ckpt-6'}  # data, index and meta graph of the older ones all gone


def _checkpoint_count(folder):
    return len([name for name in os.listdir(folder) if name.endswith('.index')])


def test_a_half_written_checkpoint_is_never_picked(workspace, caplog):
    caplog.set_level('INFO')
    config = write_config('tiny.yml', epoch=1000)
    train.main(['-c', config, '--max_steps', '2'])
    # A save cut short: index written, data truncated, and the state file already naming it.
    with open('models/tiny/fast-style-model.ckpt-2.data-00000-of-00001', 'rb') as f:
        data = f.read()
    with open('models/tiny/fast-style-model.ckpt-3.data-00000-of-00001', 'wb') as f:
        f.write(data[:len(data) // 3])
    with open('models/tiny/fast-style-model.ckpt-2.index', 'rb') as f, \
            open('models/tiny/fast-style-model.ckpt-3.index', 'wb') as out:
        out.write(f.read())
    with open('models/tiny/checkpoint', 'w') as f:
        f.write('model_checkpoint_path: "fast-style-model.ckpt-3"\nall_model_checkpoint_paths: '
                '"fast-style-model.ckpt-2"\nall_model_checkpoint_paths: "fast-style-model.ckpt-3"\n')
    train.main(['-c', config, '--max_steps', '4'])
    assert 'skipping checkpoint models/tiny/fast-style-model.ckpt-3' in caplog.text
    assert 'resumed from models/tiny/fast-style-model.ckpt-2 at step 2' in caplog.text
    assert _latest_step('models/tiny') == 4


def _save_copy(source, prefix, poisoned=None):
    """A checkpoint at prefix with the values of `source`, the variable `poisoned` (if any) set to NaN."""
    reader = tf.train.load_checkpoint(source)
    with tf.Graph().as_default():
        for name in reader.get_variable_to_shape_map():
            value = reader.get_tensor(name)
            tf.Variable(np.full_like(value, np.nan) if name == poisoned else value, name=name)
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            return tf.train.Saver().save(sess, prefix)


def test_resuming_skips_a_checkpoint_with_non_finite_weights(workspace, caplog):
    caplog.set_level('INFO')
    config = write_config('tiny.yml', epoch=1000)
    train.main(['-c', config, '--max_steps', '2'])
    _save_copy('models/tiny/fast-style-model.ckpt-2', 'models/tiny/fast-style-model.ckpt-3',
               'res2/residual/conv/weight')
    with open('models/tiny/checkpoint', 'w') as f:
        f.write('model_checkpoint_path: "fast-style-model.ckpt-3"\nall_model_checkpoint_paths: '
                '"fast-style-model.ckpt-2"\nall_model_checkpoint_paths: "fast-style-model.ckpt-3"\n')
    train.main(['-c', config, '--max_steps', '4'])
    assert 'skipping checkpoint models/tiny/fast-style-model.ckpt-3' in caplog.text
    assert 'non-finite' in caplog.text.split('skipping checkpoint models/tiny/fast-style-model.ckpt-3')[1][:300]
    assert 'resumed from models/tiny/fast-style-model.ckpt-2 at step 2' in caplog.text
    assert np.isfinite(tf.train.load_checkpoint('models/tiny/fast-style-model.ckpt-4').get_tensor(
        'res2/residual/conv/weight')).all()


def test_a_save_with_non_finite_weights_is_refused_and_writes_nothing(tmp_path):
    with tf.Graph().as_default():
        weight = tf.Variable(np.array([1.0, np.inf], np.float32), name='w')
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            saving = checkpoints.Checkpoints(sess, tf.train.Saver(), str(tmp_path / 'm.ckpt'),
                                             Config(checkpoint_secs=600.0), [weight])
            with pytest.raises(UsageError, match='became non-finite .* by step 7; nothing was saved'):
                saving.save(7)
            weight.load(np.array([1.0, 2.0], np.float32), sess)
            assert saving.save(8).endswith('m.ckpt-8')
    assert sorted(name.split('.')[1] for name in os.listdir(tmp_path) if name.endswith('.index')) == ['ckpt-8']


def test_a_nan_loss_stops_before_saving_and_names_the_term(workspace, monkeypatch, capsys):
    real_style_loss = losses.style_loss

    def style_loss_going_nan(end_points, grams, layers):
        total, per_layer = real_style_loss(end_points, grams, layers)
        poison = tf.where(tf.train.get_or_create_global_step() >= 3, np.float32(np.nan), np.float32(0))
        return total + poison, per_layer

    monkeypatch.setattr(losses, 'style_loss', style_loss_going_nan)
    with pytest.raises(SystemExit) as exit_info:
        train.main(['-c', write_config('tiny.yml', epoch=1000, checkpoint_secs=0.0)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert 'the style loss became non-finite (nan) at step 4' in err
    assert 'the last checkpoint models/tiny/fast-style-model.ckpt-3 is intact' in err and 'style weight' in err
    assert _latest_step('models/tiny') == 3


def test_non_finite_checkpoints_are_refused_by_eval_and_export(tmp_path, trained_model, capsys):
    prefix = _save_copy(trained_model + '/fast-style-model.ckpt-done', str(tmp_path / 'diverged.ckpt'),
                        'res3/residual/conv/weight')
    photo = write_image_file(str(tmp_path / 'p.png'), 16, 16)
    for main, argv in [(eval_py.main, ['--model_file', prefix, '--image_file', photo]),
                       (export.main, ['--model_file', prefix, '--output', str(tmp_path / 'x.pb')])]:
        with pytest.raises(SystemExit):
            main(argv)
        assert 'holds non-finite weights (res3/residual/conv/weight has NaN or Inf values)' in capsys.readouterr().err
    assert not os.path.exists(tmp_path / 'x.pb')


def test_a_failed_save_keeps_the_previous_checkpoint(workspace, monkeypatch, capsys):
    real_save = tf.train.Saver.save
    calls = []

    def disk_full_on_third(self, sess, path, *args, **kwargs):
        calls.append(path)
        if len(calls) == 3:
            raise tf.errors.ResourceExhaustedError(None, None, 'No space left on device')
        return real_save(self, sess, path, *args, **kwargs)

    monkeypatch.setattr(tf.train.Saver, 'save', disk_full_on_third)
    with pytest.raises(SystemExit) as exit_info:
        train.main(['-c', write_config('tiny.yml', epoch=1000, checkpoint_secs=0.0)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert 'cannot save a checkpoint in models/tiny (No space left on device); free disk space' in err
    assert 'the last checkpoint models/tiny/fast-style-model.ckpt-2 is intact' in err
    assert _latest_step('models/tiny') == 2


def test_unwritable_model_folder(workspace, capsys):
    open('blocker', 'w').close()
    with pytest.raises(SystemExit):
        train.main(['-c', write_config('tiny.yml', model_path='blocker/models')])
    assert ('the model folder (model_path/naming) blocker/models/tiny: %s is a file, so no folder can be made there; '
            'choose another path' % os.path.realpath('blocker')) in capsys.readouterr().err


def make_bad_data(folder):
    """Every kind of training file people have; returns the number that cannot be read."""
    rng = np.random.default_rng(0)
    photo = Image.fromarray(rng.integers(0, 256, (60, 80, 3), np.uint8))
    os.makedirs(folder, exist_ok=True)
    photo.save(os.path.join(folder, 'good.jpg'))
    photo.convert('L').save(os.path.join(folder, 'gray.jpg'))
    photo.convert('CMYK').save(os.path.join(folder, 'cmyk.jpg'))
    photo.convert('RGBA').save(os.path.join(folder, 'rgba.png'))
    photo.convert('P').save(os.path.join(folder, 'palette.png'))
    Image.fromarray((rng.integers(0, 65535, (50, 40))).astype(np.uint16)).save(os.path.join(folder, 'deep16.png'))
    photo.resize((3, 2)).save(os.path.join(folder, 'tiny.png'))
    Image.fromarray(rng.integers(0, 256, (2000, 3000, 3), np.uint8)).save(os.path.join(folder, 'huge.jpg'))
    with open(os.path.join(folder, 'good.jpg'), 'rb') as f:
        jpeg = f.read()
    bad = {'truncated.jpg': jpeg[:len(jpeg) // 2], 'empty.jpg': b'', 'text.png': b'hello, not a picture',
           'corrupt.jpg': b'\xff\xd8\xff\xe0' + bytes(rng.integers(0, 256, 500, np.uint8))}
    for name, content in bad.items():
        with open(os.path.join(folder, name), 'wb') as f:
            f.write(content)
    return len(bad)


def test_bad_training_data_is_skipped_counted_and_summarized(workspace, monkeypatch, caplog):
    monkeypatch.setattr(training.loop, 'SUMMARY_EVERY', 1)
    caplog.set_level('INFO')
    unreadable = make_bad_data('messy')
    train.main(['-c', write_config('tiny.yml', train_dir='messy', max_bad_fraction=0.5, epoch=2)])
    assert '(%d unreadable images skipped)' % unreadable in caplog.text
    assert _latest_step('models/tiny') == 2 * 12 // 2
    skipped = [value.simple_value for path in os.listdir('models/tiny') if path.startswith('events')
               for event in tf.train.summary_iterator(os.path.join('models/tiny', path))
               for value in event.summary.value if value.tag == 'data/skipped_images']
    assert skipped and max(skipped) == unreadable


def test_too_many_bad_images_stop_with_the_first_few(workspace, capsys):
    make_bad_data('messy')
    with pytest.raises(SystemExit) as exit_info:
        train.main(['-c', write_config('tiny.yml', train_dir='messy', max_bad_fraction=0.1, epoch=100)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert re.search(r'error: \d+ of the \d+ training images read so far could not be read, more than '
                     r'max_bad_fraction 0.1 allows; first: messy/\w+\.(jpg|png) \(', err)
