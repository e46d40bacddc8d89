"""batch.py on Beam's in-process runner with tiny models and images: eval.py's pixels over a mixed folder, the
failures file, a run again that does only what is missing, no network, and one line for every mistake before the
pipeline starts."""
import json
import os
import socket

import numpy as np
import pytest
from PIL import Image

import eval as eval_command
from helpers import usage_error, write_image_file

beam = pytest.importorskip('apache_beam')
import batch  # noqa: E402 (after the skip: it needs Beam)


def _pixels(path):
    with Image.open(path) as image:
        return np.asarray(image)


def _mixed_folder(folder):
    """Photos as people have them: odd sizes, EXIF rotation, alpha, 16-bit, grayscale, a subfolder, a file that
    is not an image, and a text file a folder search leaves out."""
    write_image_file(os.path.join(folder, 'a.jpg'), 37, 52, seed=1)
    write_image_file(os.path.join(folder, 'sub', 'b.png'), 48, 33, seed=2)
    write_image_file(os.path.join(folder, 'gray.png'), 40, 41, mode='L', seed=3)
    rgba = np.random.default_rng(4).integers(0, 256, (30, 36, 4), np.uint8)
    Image.fromarray(rgba, 'RGBA').save(os.path.join(folder, 'alpha.png'))
    Image.fromarray((np.arange(44 * 45, dtype=np.uint16).reshape(44, 45) * 30)).save(os.path.join(folder, 'deep.png'))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    Image.fromarray(rgba[..., :3]).save(os.path.join(folder, 'turned.jpg'), exif=exif)
    with open(os.path.join(folder, 'broken.jpg'), 'wb') as f:
        f.write(b'\xff\xd8 not a JPEG')
    with open(os.path.join(folder, 'notes.txt'), 'w') as f:
        f.write('not an image')


@pytest.fixture(scope='module')
def run(tmp_path_factory, trained_model):
    """The mixed folder, and batch.py's results of it under out/ (exit status 1: one image is broken)."""
    root = tmp_path_factory.mktemp('batch')
    _mixed_folder(str(root / 'photos'))
    with pytest.raises(SystemExit) as done:
        batch.main(['--model_file', trained_model, '--input', str(root / 'photos'), '--output', str(root / 'out')])
    assert done.value.code == 1
    return root


def _results(folder):
    return sorted(os.path.relpath(os.path.join(top, name), folder) for top, _, names in os.walk(folder)
                  for name in names)


def test_the_results_are_eval_pys_pixel_for_pixel(run, trained_model):
    with pytest.raises(SystemExit):  # the broken photo: eval.py's exit status 1 too
        eval_command.main(['--model_file', trained_model, '--image_file', str(run / 'photos'),
                           '--output', str(run / 'eval') + '/'])
    assert _results(run / 'out') == ['a.jpg', 'alpha.png', 'batch_failures.jsonl', 'deep.png', 'gray.png',
                                     'sub/b.png', 'turned.jpg']
    for name in _results(run / 'eval'):
        np.testing.assert_array_equal(_pixels(run / 'out' / name), _pixels(run / 'eval' / name), err_msg=name)
    assert _pixels(run / 'out' / 'alpha.png').shape == (30, 36, 4) and _pixels(run / 'out' / 'turned.jpg').shape[:2] \
        == (36, 30)


def test_what_cannot_be_read_goes_to_the_failures_file(run, capsys):
    with open(run / 'out' / 'batch_failures.jsonl') as f:
        failures = [json.loads(line) for line in f]
    assert failures == [{'input': str(run / 'photos' / 'broken.jpg'),
                         'reason': 'content image is not a readable image: %s (cannot identify image file)'
                                   % (run / 'photos' / 'broken.jpg')}]


def test_a_run_again_does_only_what_is_missing_and_overwrite_redoes_all(run, trained_model, caplog):
    caplog.set_level('INFO')
    os.remove(run / 'out' / 'sub' / 'b.png')
    kept = os.stat(run / 'out' / 'a.jpg').st_mtime_ns
    argv = ['--model_file', trained_model, '--input', str(run / 'photos'), '--output', str(run / 'out')]
    with pytest.raises(SystemExit):
        batch.main(argv)
    assert '1 stylized, 1 failed, 5 left as they were' in caplog.text
    assert os.stat(run / 'out' / 'a.jpg').st_mtime_ns == kept and os.path.isfile(run / 'out' / 'sub' / 'b.png')
    with pytest.raises(SystemExit):
        batch.main(argv + ['--overwrite'])
    assert '6 stylized, 1 failed, 0 left as they were' in caplog.text


def test_globs_formats_and_two_inputs_to_one_result(tmp_path, trained_model, monkeypatch):
    """A glob names results by the file's name; --format png makes a.jpg and a.png one result: both fail, named.
    An animated GIF given by name is its first frame, as in eval.py. Nothing reaches the network while it runs."""
    write_image_file(str(tmp_path / 'in' / 'a.jpg'), 32, 40, seed=5)
    write_image_file(str(tmp_path / 'in' / 'a.png'), 32, 40, seed=6)
    frames = [Image.fromarray(np.full((34, 30, 3), value, np.uint8)) for value in (40, 200)]
    frames[0].save(tmp_path / 'in' / 'anim.gif', save_all=True, append_images=frames[1:])

    def no_network(*args, **kwargs):
        raise AssertionError('a network connection was attempted: %r' % (args,))
    monkeypatch.setattr(socket.socket, 'connect', no_network)  # Beam's Prism runner would download a binary
    with pytest.raises(SystemExit) as done:
        batch.main(['--model_file', trained_model, '--input', str(tmp_path / 'in' / '*.*'), '--output',
                    str(tmp_path / 'out'), '--format', 'png'])
    assert done.value.code == 1
    with open(tmp_path / 'out' / 'batch_failures.jsonl') as f:
        reasons = sorted(json.loads(line)['reason'] for line in f)
    assert len(reasons) == 2 and all('make one result, %s' % (tmp_path / 'out' / 'a.png') in r for r in reasons)
    eval_command.main(['--model_file', trained_model, '--image_file', str(tmp_path / 'in' / 'anim.gif'),
                       '--output', str(tmp_path / 'anim.png')])
    np.testing.assert_array_equal(_pixels(tmp_path / 'out' / 'anim.png'), _pixels(tmp_path / 'anim.png'))


def test_magenta_network_with_a_style_image_as_eval_py(tmp_path, arbitrary_checkpoint):
    write_image_file(str(tmp_path / 'in' / 'p.jpg'), 40, 48, seed=7)
    write_image_file(str(tmp_path / 'style.jpg'), 64, 64, seed=8)
    options = ['--model_file', arbitrary_checkpoint, '--style_image', str(tmp_path / 'style.jpg'),
               '--style_strength', '0.5', '--preserve_colors']
    batch.main(options + ['--input', str(tmp_path / 'in'), '--output', str(tmp_path / 'out')])
    eval_command.main(options + ['--image_file', str(tmp_path / 'in' / 'p.jpg'), '--output', str(tmp_path / 'e.jpg')])
    np.testing.assert_array_equal(_pixels(tmp_path / 'out' / 'p.jpg'), _pixels(tmp_path / 'e.jpg'))


@pytest.mark.parametrize('options,message', [
    (['--input', 'nothing/*.jpg'], "no images found for 'nothing/*.jpg'"),
    (['--input', 'empty'], "no images found for 'empty'"),
    (['--input', 'photos/none.jpg'], '--input photos/none.jpg: not found (check the path)'),
    (['--output', 'broken.pb'], '--output broken.pb is a file; the results go under a folder'),
    (['--model_file', 'none.ckpt'], 'model file not found: none.ckpt'),
    (['--model_file', 'broken.pb'], 'broken.pb'),
    (['--style', 'wave'], 'holds one style: --style and --style_mix apply to models of several styles'),
    (['--stroke', '1.5'], 'so its stroke size is fixed: --stroke needs a model trained with style_scales'),
    (['--runner', 'NoSuchRunner'], '--runner NoSuchRunner'),
    (['--direct_num_worker', '2'], "unknown option --direct_num_worker (did you mean '--direct_num_workers'?)"),
    (['--project', ''], '--project: an empty value'),
    (['--output', 'photos/out'], '--output photos/out lies inside the input photos'),
    (['--output', ''], 'argument --output: an empty value'),
    (['--style_image', 'none.jpg'], 'style image not found: none.jpg'),
    (['--quality', '0'], '--quality must be between 1 and 100'),
    (['--output', 'nofs://bucket/out'], "--output nofs://bucket/out: Beam has no file system for it here"),
])
def test_mistakes_are_one_line_before_the_pipeline_and_write_nothing(tmp_path, monkeypatch, capsys, trained_model,
                                                                     options, message):
    monkeypatch.chdir(tmp_path)
    write_image_file('photos/a.jpg', 32, 32)
    os.makedirs('empty')
    with open('broken.pb', 'wb') as f:
        f.write(b'not a graph')
    given = dict(zip(options[::2], options[1::2]))
    argv = ['--model_file', trained_model, '--input', 'photos', '--output', 'out']
    for key, value in given.items():
        if key in argv:
            argv[argv.index(key) + 1] = value
        else:
            argv += [key, value]
    before = sorted(os.listdir('.'))
    err = usage_error(batch.main, argv, capsys)
    assert message in err, err
    assert sorted(os.listdir('.')) == before


def test_the_workers_package_holds_every_module_a_run_imports(tmp_path):
    """Beam's --setup_file ./setup.py ships the project to Dataflow's workers as this sdist: a module it lacks would
    fail there, far from here."""
    import modulefinder
    import subprocess
    import sys
    import tarfile
    from helpers import ROOT
    done = subprocess.run([sys.executable, 'setup.py', '-q', 'egg_info', '--egg-base', str(tmp_path), 'sdist',
                           '--dist-dir', str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    with tarfile.open(next(tmp_path.glob('*.tar.gz'))) as sdist:
        shipped = {name.split('/', 1)[1] for name in sdist.getnames() if name.endswith('.py')}
    finder = modulefinder.ModuleFinder(path=[ROOT])  # the project's own modules, imported anywhere in batch.py's
    finder.run_script(os.path.join(ROOT, 'batch.py'))  # reach, function bodies included
    used = {os.path.relpath(module.__file__, ROOT) for module in finder.modules.values()
            if module.__file__ and module.__file__.startswith(ROOT + os.sep) and module.__name__ != '__main__'}
    assert {'inference/collection.py', 'inference/stylizer.py', 'files.py'} <= used and used <= shipped, \
        used - shipped


def test_a_pipeline_that_fails_is_one_line_and_leaves_no_staging_behind(tmp_path, monkeypatch, capsys,
                                                                        trained_model):
    from inference import collection

    def read_fails(planned):
        raise RuntimeError('the disk went away')
    monkeypatch.setattr(collection, 'read', read_fails)
    monkeypatch.chdir(tmp_path)
    write_image_file('photos/a.jpg', 32, 32)
    with pytest.raises(SystemExit) as done:
        batch.main(['--model_file', trained_model, '--input', 'photos', '--output', 'out'])  # relative paths too
    err = capsys.readouterr().err.strip()
    assert done.value.code == 1 and len(err.splitlines()) == 1
    assert err.startswith('error: the pipeline stopped: ') and 'the disk went away' in err
    assert sorted(os.listdir('.')) == ['photos']  # the output folder it made, and Beam's staging in it, are gone
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)
    batch.main(['--model_file', trained_model, '--input', 'photos', '--output', 'out'])
    assert sorted(os.listdir('out')) == ['a.jpg', 'batch_failures.jsonl']
    assert os.path.getsize('out/batch_failures.jsonl') == 0


def test_a_second_run_into_the_same_folder_is_refused_while_the_first_writes(tmp_path, monkeypatch, capsys,
                                                                            trained_model):
    import files
    monkeypatch.chdir(tmp_path)
    write_image_file('photos/a.jpg', 32, 32)
    os.makedirs('out')
    with files.exclusive_folder('out', 'held by the test'):  # another batch.py holds it
        err = usage_error(batch.main, ['--model_file', trained_model, '--input', 'photos', '--output', 'out'],
                          capsys)
    assert 'another batch.py is writing into out now' in err and os.listdir('out') == []
