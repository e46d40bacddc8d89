"""The commands as a user runs them: one-line errors with exit status 2, no traceback, no TensorFlow noise."""

import pytest
from PIL import Image

from helpers import run_command, write_image_file

NOISE = ('Traceback', 'oneDNN', 'cuda', 'WARNING', 'deprecat', 'absl')


def _run(script, *args, cwd):
    return run_command(script, *args, cwd=cwd, timeout=120)


@pytest.mark.parametrize('script,args,message', [
    ('train.py', ['-c', 'missing.yml'], 'error: config file not found: missing.yml'),
    ('eval.py', ['--model_file', 'models/none', '--image_file', 'a.jpg'], 'error: model file not found: models/none '
                '(pass a checkpoint such as models/wave.ckpt, a model folder, or an export: .pb, SavedModel folder or '
                '.tflite); content image not found: a.jpg'),
    ('export.py', ['--model_file', 'models/none'], 'error: model file not found: models/none'),
])
def test_errors_are_one_clean_line(tmp_path, script, args, message):
    result = _run(script, *args, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith(message)
    assert not [word for word in NOISE if word in result.stderr + result.stdout]


def test_a_real_run_logs_only_our_lines(tmp_path, trained_model):
    result = _run('export.py', '--model_file', trained_model, '--output', 'm.pb', cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert 'frozen graph of' in result.stderr and 'written to m.pb' in result.stderr
    assert not [word for word in NOISE if word in result.stderr + result.stdout]


def test_eval_ends_at_once_with_its_image_and_log_written(tmp_path, trained_model):
    # The commands end without the interpreter's teardown (utils.run_and_exit): nothing may be lost by it.
    photo = write_image_file(str(tmp_path / 'photo.png'), 30, 26, seed=2)
    result = _run('eval.py', '--model_file', trained_model, '--image_file', photo, '--output', 'out/res.png',
                  cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr.rstrip().endswith('written to out/res.png')
    assert Image.open(str(tmp_path / 'out' / 'res.png')).size == (26, 30)


def test_help_states_the_defaults(tmp_path):
    result = _run('eval.py', '--help', cwd=tmp_path)
    text = ' '.join(result.stdout.split())  # argparse wraps the help at any space
    assert result.returncode == 0 and 'default: generated/res.jpg' in text and 'default: generated/)' in text


def test_bad_arguments_are_one_line_too(tmp_path):
    result = _run('train.py', '-c', 'x.yml', '--max_steps', 'ten', cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == ("error: argument --max_steps: invalid int value: 'ten' "
                                     "(see train.py --help)")


QUICK_ANSWERS = [  # (command, arguments, exit status, the start of what it says)
    ('train.py', ['--help'], 0, 'usage: train.py'),
    ('train.py', ['-c', 'missing.yml'], 2, 'error: config file not found: missing.yml'),
    ('train.py', ['-c', 'x.yml', '--epoch', '0'], 2, 'error: --epoch must be positive'),
    ('eval.py', ['--help'], 0, 'usage: eval.py'),
    ('eval.py', ['--model_file', 'models/wave.ckpt', '--image_file', 'img.jpg'], 2, 'error: content image not found'),
    ('eval.py', ['--model_file', 'none.ckpt', '--video', 'v.mp4', '--output', 'photo.jpg'], 2,  # before the outputs
     'error: model file not found: none.ckpt (pass a checkpoint such as models/wave.ckpt, a model folder, or an '
     'export: .pb, SavedModel folder or .tflite); video not found: v.mp4 (check the path)'),
    ('eval.py', ['--model_fil', 'models/wave.ckpt', '--image_file', 'photo.jpg'], 2,
     'error: unrecognized arguments: --model_fil models/wave.ckpt; did you mean --model_file?'),
    ('eval.py', ['--model_file', 'models/wave.ckpt', '--image_file', 'photo.jpg', '--output', ''], 2,
     'error: argument --output: an empty value; give one, or leave the option out'),
    ('train.py', ['-c', 'x.yml', '--init_from', ''], 2,
     'error: argument --init_from: an empty value; give one, or leave the option out'),
    ('eval.py', ['--model_file', 'none.pb', '--image_file', 'photo.jpg'], 2, 'error: model file not found: none.pb'),
    ('eval.py', ['--model_file', 'none.ckpt', '--image_file', 'photo.jpg'], 2, 'error: model file not found'),
    ('eval.py', ['--model_file', 'empty', '--image_file', 'photo.jpg'], 2, 'error: no checkpoint in model folder'),
    ('eval.py', ['--model_file', 'models', '--image_file', 'photo.jpg'], 2,
     'error: models holds 2 models (scream.ckpt, wave.ckpt): pass one of them, e.g. models/scream.ckpt'),
    ('eval.py', ['--image_file', 'photo.jpg'], 2, 'error: --model_file is required (or --style_image'),
    ('eval.py', ['--image_file', 'photo.jpg', '--style_image', 'photo.jpg', '--no_download'], 2,
     "error: Magenta's arbitrary-style checkpoint not found: pretrained/arbitrary_style_transfer/model.ckpt"),
    ('eval.py', ['--image_file', 'photo.jpg', '--style_image', 'tiny.jpg'], 2,
     'error: style image tiny.jpg is 8x8: too small to hold a style'),
    ('export.py', ['--help'], 0, 'usage: export.py'),
    ('export.py', ['--model_file', 'none'], 2, 'error: model file not found: none'),
    ('stylize.py', ['--help'], 0, 'usage: stylize.py'),
    ('stylize.py', ['--content', 'photo.jpg', '--style', 'none.jpg'], 2, 'error: style image not found: none.jpg'),
    ('serve.py', ['--help'], 0, 'usage: serve.py'),
    ('serve.py', ['--model', 'x=none.ckpt'], 2, 'error: model file not found: none.ckpt'),
]


@pytest.mark.parametrize('script,args,code,answer', QUICK_ANSWERS)
def test_help_mistakes_and_missing_files_answer_before_tensorflow_is_imported(tmp_path, script, args, code, answer):
    # A TensorFlow that cannot be imported stands first on the path: the command must answer without it.
    (tmp_path / 'tensorflow').mkdir()
    (tmp_path / 'tensorflow' / '__init__.py').write_text('raise ImportError("TensorFlow was imported")\n')
    (tmp_path / 'empty').mkdir()
    (tmp_path / 'models').mkdir()  # two models side by side, as in the repository's models/
    for name in ('wave.ckpt.index', 'scream.ckpt.index'):
        (tmp_path / 'models' / name).write_bytes(b'')
    write_image_file(str(tmp_path / 'photo.jpg'), 16, 16)
    write_image_file(str(tmp_path / 'tiny.jpg'), 8, 8)
    result = run_command(script, *args, cwd=tmp_path, timeout=60, env={'PYTHONPATH': str(tmp_path)})
    assert result.returncode == code, result.stderr
    assert (result.stdout if code == 0 else result.stderr).startswith(answer), result.stdout + result.stderr
