"""Every check before the first write, and no empty value taken for "not given": the cases an attacker found on
the newer surfaces (side files written before a refusal, a lock checked after them, empty options, a style image
that is small as a file and huge once resized), each refused with one line and the file system left as it was."""
import hashlib
import json
import os

import numpy as np
import pytest

import eval as eval_command
import files
import serve
import train
from benchmarks import init_from_curve
from helpers import usage_error, write_config, write_image_file
from inference import arbitrary
from nets import arbitrary as arbitrary_net
from service.requests import OPTIONS, parse_options
from service.work import HTTPError
from utils import UsageError


def _snapshot(folder='.'):
    """Every file and folder under `folder` with a digest of its bytes: what 'left as it was' compares."""
    found = {}
    for root, folders, names in os.walk(folder):
        for name in folders:
            found[os.path.join(root, name)] = 'folder'
        for name in names:
            with open(os.path.join(root, name), 'rb') as f:
                found[os.path.join(root, name)] = hashlib.sha256(f.read()).hexdigest()
    return found


# -- files.Outputs: the rule itself --------------------------------------------------------------------------------

def test_no_claim_or_lock_after_the_first_write(tmp_path):
    outputs = files.Outputs()
    outputs.claim(str(tmp_path / 'a.jpg'))
    outputs.image(str(tmp_path / 'a.jpg'), np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(RuntimeError, match='after the run began writing'):
        outputs.claim(str(tmp_path / 'side.jpg'))
    with pytest.raises(RuntimeError, match='was not claimed before the run began writing'):
        outputs.image(str(tmp_path / 'side.jpg'), np.zeros((4, 4, 3), np.uint8))  # a side file slipping ahead
    with pytest.raises(RuntimeError, match='lock'):
        with outputs.locked(str(tmp_path / 'held'), 'busy', 'cannot create it (%s)'):
            pass
    assert sorted(os.listdir(tmp_path)) == ['a.jpg']


def test_a_claimed_folder_covers_its_files_and_still_checks_each(tmp_path):
    folder = tmp_path / 'previews'
    folder.mkdir()
    (folder / 'notes.txt').write_text('mine')
    outputs = files.Outputs()
    outputs.claim(str(folder), folder=True, resumable=os.path.isdir)
    outputs.image(str(folder / 'step-1.jpg'), np.zeros((4, 4, 3), np.uint8))
    outputs.image(str(folder / 'step-2.jpg'), np.zeros((4, 4, 3), np.uint8))  # after the first write: covered
    with pytest.raises(UsageError, match='notes.txt exists'):
        outputs.data(str(folder / 'notes.txt'), b'x')
    assert (folder / 'notes.txt').read_text() == 'mine'


def test_a_held_folder_refuses_a_second_holder_and_goes_if_the_run_made_it_and_left_it_empty(tmp_path):
    made = str(tmp_path / 'new' / 'models')
    with files.Outputs().locked(made, 'the folder is busy', 'cannot create it (%s)'):
        assert os.path.isdir(made)
        with pytest.raises(UsageError, match='the folder is busy'):
            with files.Outputs().locked(made, 'the folder is busy', 'cannot create it (%s)'):
                pass
    assert os.listdir(tmp_path) == []  # made for the run, left empty: gone again


# -- train.py: side files after every check, the lock among them ---------------------------------------------------

def test_a_refused_preview_writes_no_style_target_and_no_model_folder(workspace, capsys):
    os.makedirs('generated/preview_tiny')
    open('generated/preview_tiny/notes.txt', 'w').close()  # the user's file: not a folder of previews
    write_image_file('photo.jpg', 40, 40)
    config = write_config('tiny.yml')
    before = _snapshot()
    err = usage_error(train.main, ['-c', config, '--preview', 'photo.jpg'], capsys)
    assert '--preview generated/preview_tiny exists and is not a folder of previews of train.py' in err
    assert _snapshot() == before


def test_a_run_refused_by_the_lock_leaves_the_running_runs_files_alone(workspace, capsys):
    config = write_config('tiny.yml', style_image='other_style.jpg')
    write_image_file('other_style.jpg', 48, 40, seed=5)
    os.makedirs('generated')
    with open('generated/target_style_tiny.jpg', 'wb') as f:
        f.write(b'the running run\'s style target')
    os.makedirs('models/tiny')
    before = _snapshot()
    with files.exclusive_folder('models/tiny', 'held by the test'):  # another train.py holds the folder
        err = usage_error(train.main, ['-c', config, '--max_steps', '1'], capsys)
    assert 'the model folder models/tiny is being trained by another train.py now' in err
    assert _snapshot() == before


@pytest.mark.parametrize('option', ['--init_from', '--train_dir', '--preview', '--max_steps', '--devices'])
def test_an_empty_option_is_an_error_not_the_option_left_out(workspace, capsys, option):
    # '--init_from "$MODEL"' with MODEL unset would otherwise train hours from scratch without a word.
    err = usage_error(train.main, ['-c', write_config('tiny.yml'), option, ''], capsys)
    assert err.startswith('error: argument %s: an empty value; give one, or leave the option out' % option)
    assert usage_error(train.main, ['-c', write_config('tiny.yml'), option, '  '], capsys) == err


def test_an_empty_path_in_a_config_is_an_error(workspace, capsys):
    for key in ('train_dir', 'model_path', 'naming', 'loss_model_file'):
        err = usage_error(train.main, ['-c', write_config('blank.yml', **{key: ''})], capsys)
        assert 'blank.yml: %s is empty' % key in err, err
    assert not os.path.exists('models') and not os.path.exists('generated')


# -- eval.py: what the user must fix first, and the style network's input ------------------------------------------

def test_a_missing_model_is_named_before_an_existing_output(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    write_image_file('photo.jpg', 32, 32)
    os.makedirs('generated')
    open('generated/res.jpg', 'w').close()
    err = usage_error(eval_command.main, ['--model_file', 'x', '--image_file', 'photo.jpg'], capsys)
    assert err.startswith('error: model file not found: x (pass a checkpoint such as models/wave.ckpt')


def test_a_style_image_is_bounded_after_resizing(tmp_path, monkeypatch, capsys, trained_model):
    monkeypatch.chdir(tmp_path)
    write_image_file('photo.jpg', 32, 32)
    write_image_file('strip.png', 16, 256)  # 12 KB as a file; 1024 x 16384 at --style_size 1024
    before = _snapshot()
    err = usage_error(eval_command.main, ['--model_file', trained_model, '--image_file', 'photo.jpg',
                                          '--style_image', 'strip.png', '--style_size', '1024'], capsys)
    largest = arbitrary.largest_style_side(16, 256)
    assert ('style image strip.png is 256x16: its smaller side resized to 1024 makes it 16384x1024, over the 2.1 '
            'megapixels the style network takes; use a style size of at most %d for it' % largest) in err
    assert _snapshot() == before
    # The largest size it names is exact: it fits, one more does not.
    assert np.prod(arbitrary_net.resized_style_shape(16, 256, largest)) <= arbitrary_net.MAX_RESIZED_STYLE_PIXELS
    assert np.prod(arbitrary_net.resized_style_shape(16, 256, largest + 1)) > arbitrary_net.MAX_RESIZED_STYLE_PIXELS
    arbitrary.check_style_shape(16, 256, largest)
    arbitrary.check_style_shape(1024, 2048, 1024)  # the bound itself is allowed
    with pytest.raises(UsageError, match='over the 2.1 megapixels'):
        arbitrary.check_style_shape(1024, 2049, 1024)


def test_every_exported_form_checks_the_bound_before_predicting():
    """The runners of the exports (a .pb or SavedModel through Network, a .tflite through TFLiteNetwork) check
    the shape before anything runs: neither the session nor the interpreter is touched."""
    huge = np.zeros((16, 256, 3), np.uint8)
    for runner in (arbitrary.Network({}, {}), arbitrary.TFLiteNetwork.__new__(arbitrary.TFLiteNetwork)):
        with pytest.raises(UsageError, match='over the 2.1 megapixels'):
            runner.embed(None, huge, 1024)


# -- the service's options and serve.py --demo ---------------------------------------------------------------------

@pytest.mark.parametrize('option', [name for name in OPTIONS if name != 'preserve_colors'] + ['preserve_colors'])
def test_an_empty_service_option_is_a_400(option):
    with pytest.raises(HTTPError) as error:
        parse_options({option: ''})
    assert error.value.status == 400 and option in str(error.value)


def test_the_demo_says_when_it_leaves_out_the_arbitrary_network(monkeypatch, caplog):
    caplog.set_level('WARNING')
    monkeypatch.setattr(serve, 'demo_models', dict)  # no shipped model, no arbitrary network: nothing to load
    assert serve.load_models([], True, 1000, 'fp32') == {}
    assert "--demo: Magenta's arbitrary-style network is left out" in caplog.text
    assert 'to download it' in caplog.text


# -- the benchmarks follow the commands' rules ---------------------------------------------------------------------

def _curve(*options):
    return ['--config', 'tiny.yml', '--init_from', 'model', '--photos', 'train', '--test', 'photo.jpg',
            '--steps', '1', '--work', 'work', '--figure', 'curve.jpg', *options]


@pytest.fixture
def curve_workspace(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_config('tiny.yml')
    write_image_file('photo.jpg', 32, 32)
    os.makedirs('work')
    with open('work/results.json', 'w') as f:
        json.dump({'photo': [0, 1.5], 'init_from-0': [2.0, 3.0]}, f)
    with open('work/notes.md', 'w') as f:
        f.write('my notes')


def test_the_curve_replaces_no_file_in_its_work_folder_that_is_not_its_own(curve_workspace, capsys):
    before = _snapshot()
    err = usage_error(init_from_curve.main, _curve('--output', 'work/notes.md', '--report_only'), capsys)
    assert '--output work/notes.md exists; pass --overwrite' in err
    err = usage_error(init_from_curve.main, _curve('--output', 'work/results.json', '--report_only'), capsys)
    assert 'would both be written' in err or 'exists' in err
    open('work/scratch-1.jpg', 'w').close()  # a picture its results do not name: a user's, not the curve's
    err = usage_error(init_from_curve.main, _curve('--output', 'report.md'), capsys)
    assert '--work work/scratch-1.jpg exists' in err
    os.remove('work/scratch-1.jpg')
    assert _snapshot() == before
    init_from_curve.main(_curve('--output', 'report.md', '--report_only'))  # its own results: a report
    assert '| 0 | 2 | 3 |' in open('report.md').read()


@pytest.mark.parametrize('content,problem', [
    ('not json', 'is not readable JSON'), ('{}', 'has no row for the photo unchanged'),
    ('[1, 2]', 'is not a JSON object'), ('{"photo": [0, 1], "notes": [1, 2]}', "has the key 'notes'"),
    ('{"photo": [0, NaN]}', 'not two finite numbers'), ('{"photo": [0, 1, 2]}', 'not two finite numbers'),
    ('[' * 100000, 'is not readable JSON'), ('', 'is not readable JSON')])
def test_results_it_cannot_read_are_one_line(curve_workspace, capsys, content, problem):
    with open('work/results.json', 'w') as f:
        f.write(content)
    for extra in (['--report_only'], []):
        err = usage_error(init_from_curve.main, _curve('--output', 'report.md', *extra), capsys)
        assert err.startswith('error: work/results.json ') and problem in err and 'move it away, or choose another --work' in err
    assert not os.path.exists('report.md')
