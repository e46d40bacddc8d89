"""Never lose a user's file: outputs replace old files only when complete, inputs and folders are never
overwritten or deleted, colliding names are refused, and hostile sizes and models get one-line errors."""
import os
import re
import resource
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import eval as eval_py
import export
import stylize
from helpers import ROOT, make_video, run_command, usage_error, write_image_file
from images import image_size, load_image
from utils import UsageError


def _tree(folder):
    """{relative path: bytes} of every file below folder (hidden ones too), to compare before and after."""
    found = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            with open(path, 'rb') as f:
                found[os.path.relpath(path, folder)] = f.read()
    return found


def _run_with_file_size_limit(script, argv, limit_bytes, cwd):
    """Run one of our commands in a child process that may write no file larger than limit_bytes (a disk that
    fills up half-way through a write); returns the CompletedProcess."""
    return run_command(script, *argv, cwd=cwd, limits={resource.RLIMIT_FSIZE: limit_bytes})


EXPORTS = (('pb', 'm.pb'), ('savedmodel', 'm_savedmodel'), ('tflite', 'm.tflite'), ('ckpt', 'm.ckpt'))


@pytest.fixture(scope='module')
def exports(trained_model, tmp_path_factory):
    """A folder with one earlier export of each kind."""
    folder = tmp_path_factory.mktemp('exports')
    for fmt, name in EXPORTS:
        export.main(['--model_file', trained_model, '--format', fmt, '--output', str(folder / name)])
    return folder


# ------------------------------------------------------------------------------------------------------------------
# export.py never deletes or replaces what it did not write
# ------------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('fmt', ['savedmodel', 'pb', 'tflite', 'ckpt'])
def test_export_refuses_an_output_that_is_not_an_earlier_export(tmp_path, trained_model, exports, capsys, fmt):
    photos = tmp_path / 'my_photos'
    write_image_file(str(photos / 'holiday.jpg'), 20, 20)
    others = {'savedmodel': 'm.pb', 'pb': 'm.tflite', 'tflite': 'm_savedmodel', 'ckpt': 'm.pb'}
    targets = [photos, photos / 'holiday.jpg', exports / others[fmt]]
    if fmt == 'ckpt':
        targets.append(trained_model + '/fast-style-model.ckpt-done')  # it has Adam's slots: not an export
    for target in targets:
        before = _tree(tmp_path), _tree(exports)
        err = usage_error(export.main, ['--model_file', trained_model, '--format', fmt, '--output', str(target)],
                          capsys)
        # Refused even with --overwrite: the training checkpoint is the input itself, the rest are not exports.
        err_overwriting = usage_error(export.main, ['--model_file', trained_model, '--format', fmt, '--output',
                                                    str(target), '--overwrite'], capsys)
        assert err == err_overwriting
        assert ('exists and is not a %s written by export.py' % export.KINDS[fmt] in err
                and 'refusing to replace it, even with --overwrite' in err) or ' is the input ' in err
        assert (_tree(tmp_path), _tree(exports)) == before


@pytest.mark.parametrize('output', ['.', 'models', 'models/tiny', '..'])
def test_export_refuses_an_output_holding_the_model_or_the_working_directory(trained_model, capsys, monkeypatch,
                                                                             output):
    workspace = os.path.dirname(os.path.dirname(trained_model))
    monkeypatch.chdir(workspace)
    before = _tree(workspace)
    err = usage_error(export.main, ['--model_file', 'models/tiny', '--format', 'savedmodel', '--output', output,
                                    '--overwrite'], capsys)
    assert re.search(r'--output \S+ (is|holds) the input models/tiny: writing it would replace that', err)
    assert _tree(workspace) == before


def test_export_replaces_an_earlier_export_of_the_same_kind_when_told(tmp_path, trained_model, exports, capsys):
    shutil.copytree(exports, tmp_path, dirs_exist_ok=True)
    stale = [tmp_path / 'm_savedmodel' / 'variables' / 'variables.index', tmp_path / 'm.ckpt.index']
    for path in stale:
        os.utime(path, (0, 0))
    for fmt, name in EXPORTS:
        err = usage_error(export.main, ['--model_file', trained_model, '--format', fmt, '--output',
                                        str(tmp_path / name)], capsys)
        assert err == 'error: --output %s exists; pass --overwrite to replace it, or choose another --output' % (
            tmp_path / name)
        export.main(['--model_file', trained_model, '--format', fmt, '--output', str(tmp_path / name), '--overwrite'])
    assert all(os.path.getmtime(path) > 0 for path in stale)  # new exports took the old ones' places
    assert sorted(os.listdir(tmp_path)) == sorted(os.listdir(exports))  # no staging left behind
    assert sorted(_tree(tmp_path)) == sorted(_tree(exports))
    for fmt, name in EXPORTS:
        assert export.is_earlier_export(str(tmp_path / name), fmt)


@pytest.mark.parametrize('fmt,name', EXPORTS)
def test_a_failed_export_leaves_the_earlier_one_intact(tmp_path, trained_model, exports, fmt, name):
    shutil.copytree(exports, tmp_path / 'out')
    before = _tree(tmp_path / 'out')
    done = _run_with_file_size_limit('export.py', ['--model_file', trained_model, '--format', fmt, '--overwrite',
                                                   '--output', str(tmp_path / 'out' / name)], 100000, tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith('error: cannot write')
    assert _tree(tmp_path / 'out') == before
    assert sorted(os.listdir(tmp_path / 'out')) == sorted(os.listdir(exports))


# ------------------------------------------------------------------------------------------------------------------
# eval.py: written completely or not at all, never over an input, never two inputs to one name
# ------------------------------------------------------------------------------------------------------------------

@pytest.fixture(scope='module')
def photo(tmp_path_factory):
    return write_image_file(str(tmp_path_factory.mktemp('photo') / 'photo.png'), 40, 48, seed=3)


def test_a_failed_image_write_leaves_the_old_output_and_no_partial_file(tmp_path, trained_model, photo):
    folder = tmp_path / 'out'
    folder.mkdir()
    (folder / 'res.png').write_bytes(b'an earlier result')
    done = _run_with_file_size_limit('eval.py', ['--model_file', trained_model, '--image_file', photo,
                                                 '--output', str(folder / 'res.png'), '--overwrite'], 200, tmp_path)
    assert done.returncode == 2, done.stderr
    assert 'error: cannot write %s (File too large); nothing was changed there' % (folder / 'res.png') in done.stderr
    assert _tree(folder) == {'res.png': b'an earlier result'}


def test_a_failed_write_removes_the_folders_it_made(tmp_path, trained_model, photo):
    done = _run_with_file_size_limit('eval.py', ['--model_file', trained_model, '--image_file', photo,
                                                 '--output', 'new/deeper/res.png'], 200, tmp_path)
    assert done.returncode == 2, done.stderr
    assert not os.path.exists(tmp_path / 'new')


def test_output_equal_to_an_input_is_refused(tmp_path, trained_model, photo, capsys):
    shutil.copy(photo, tmp_path / 'a.png')
    os.symlink(tmp_path / 'a.png', tmp_path / 'link.png')
    before = _tree(tmp_path)
    for argv in (['--image_file', str(tmp_path / 'a.png'), '--output', str(tmp_path / 'a.png')],
                 ['--image_file', str(tmp_path / 'a.png'), '--output', str(tmp_path / 'link.png')],
                 ['--image_file', str(tmp_path), '--output', str(tmp_path)]):
        err = usage_error(eval_py.main, ['--model_file', trained_model, *argv], capsys)
        assert 'is the input' in err and 'writing it would replace that' in err
    assert _tree(tmp_path) == before


def test_a_video_output_equal_to_its_input_is_refused(tmp_path, trained_model, capsys):
    video = tmp_path / 'clip.mp4'
    make_video(video, seconds=1)
    before = _tree(tmp_path)
    err = usage_error(eval_py.main, ['--model_file', trained_model, '--video', str(video), '--output', str(video)],
                      capsys)
    assert 'is the input' in err
    assert _tree(tmp_path) == before


def test_a_failed_video_write_leaves_the_old_video(tmp_path, trained_model):
    make_video(tmp_path / 'clip.mp4', seconds=1)
    eval_py.main(['--model_file', trained_model, '--video', str(tmp_path / 'clip.mp4'),
                  '--output', str(tmp_path / 'whole.mp4')])
    (tmp_path / 'out.mp4').write_bytes(b'an earlier video')
    before = _tree(tmp_path)
    done = _run_with_file_size_limit('eval.py', ['--model_file', trained_model, '--video', 'clip.mp4', '--overwrite',
                                                 '--output', 'out.mp4'], os.path.getsize(tmp_path / 'whole.mp4') // 2,
                                     tmp_path)
    assert done.returncode == 2, done.stderr
    assert 'error: cannot write out.mp4: the video encoder stopped after' in done.stderr
    assert _tree(tmp_path) == before


def test_inputs_with_the_same_output_name_are_refused_before_any_work(tmp_path, trained_model, capsys):
    for folder, seed in (('a', 1), ('b', 2)):
        write_image_file(str(tmp_path / folder / 'x.jpg'), 16, 16, seed=seed)
    write_image_file(str(tmp_path / 'a' / 'x.png'), 16, 16, seed=3)
    cases = [(['a/x.jpg', 'b/x.jpg'], [], 'a/x.jpg and b/x.jpg would both be written to out/x.jpg'),
             (['a', 'b'], [], 'would both be written to out/x.jpg'),
             (['a'], ['--format', 'png'], 'a/x.jpg and a/x.png would both be written to out/x.png')]
    os.chdir(tmp_path)
    for inputs, extra, message in cases:
        err = usage_error(eval_py.main, ['--model_file', trained_model, '--image_file', *inputs, '--output', 'out',
                                         *extra], capsys)
        assert message in err
        assert not os.path.exists('out')


def test_the_count_reported_is_the_files_written(tmp_path, trained_model, caplog, monkeypatch):
    caplog.set_level('INFO')
    monkeypatch.chdir(tmp_path)
    for name in ('a/x.jpg', 'a/y.png', 'a/sub/x.jpg'):
        write_image_file(name, 16, 16)
    eval_py.main(['--model_file', trained_model, '--image_file', 'a', 'a/x.jpg', 'a/*.png', '--output', 'out',
                  '--format', 'webp'])
    assert sorted(_tree('out')) == ['sub/x.webp', 'x.webp', 'y.webp']  # the file named twice runs once
    assert '3 of 3 images stylized' in caplog.text


def test_a_file_output_for_several_inputs_and_format_for_one(tmp_path, trained_model, photo, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_image_file('a/x.jpg', 16, 16)
    err = usage_error(eval_py.main, ['--model_file', trained_model, '--image_file', 'a', '--output', 'x.jpg'], capsys)
    assert '--output x.jpg names a file, but 1 images' in err and 'pass --output x/' in err
    open('notes.txt', 'w').close()
    err = usage_error(eval_py.main, ['--model_file', trained_model, '--image_file', 'a', photo,
                                     '--output', 'notes.txt'], capsys)
    assert '--output notes.txt is a file, but 2 images need a folder' in err
    err = usage_error(eval_py.main, ['--model_file', trained_model, '--image_file', photo, '--output', 'r.jpg',
                                     '--format', 'png'], capsys)
    assert '--format png contradicts --output r.jpg' in err
    assert sorted(os.listdir('.')) == ['a', 'notes.txt']
    eval_py.main(['--model_file', trained_model, '--image_file', photo, '--format', 'png'])
    assert Image.open('generated/res.png').format == 'PNG'
    eval_py.main(['--model_file', trained_model, '--image_file', photo, '--output', 'r.jpeg', '--format', 'jpg'])
    assert Image.open('r.jpeg').format == 'JPEG'


# ------------------------------------------------------------------------------------------------------------------
# Models that are not what they claim: one line each
# ------------------------------------------------------------------------------------------------------------------

def test_models_of_the_wrong_kind_get_their_own_message(tmp_path, trained_model, exports, photo, capsys):
    incomplete = tmp_path / 'no_variables'
    shutil.copytree(exports / 'm_savedmodel', incomplete)
    shutil.rmtree(incomplete / 'variables')
    truncated = tmp_path / 'truncated'
    shutil.copytree(exports / 'm_savedmodel', truncated)
    data = truncated / 'variables' / 'variables.data-00000-of-00001'
    data.write_bytes(data.read_bytes()[:1000])
    text = tmp_path / 'notes.ckpt'
    text.write_text('not a checkpoint')
    cases = [(eval_py.main, incomplete, 'is an incomplete SavedModel: it has no variables/variables.index'),
             (eval_py.main, truncated, 'is damaged: conv1/conv/weight cannot be read'),
             (eval_py.main, photo, 'is an image, not a model'),
             (eval_py.main, text, 'notes.ckpt is not a TensorFlow checkpoint'),
             (export.main, exports / 'm.pb', 'm.pb is a frozen graph, not a checkpoint (this command needs the '
                                            'checkpoint or model folder it was exported from)'),
             (export.main, exports / 'm.tflite', 'is a TFLite model, not a checkpoint'),
             (export.main, exports / 'm_savedmodel', 'is a SavedModel, not a checkpoint'),
             (export.main, photo, 'is an image, not a model')]
    for main, model_file, message in cases:
        argv = ['--model_file', str(model_file)]
        argv += ['--image_file', photo, '--output', str(tmp_path / 'o.png')] if main is eval_py.main else \
            ['--output', str(tmp_path / 'o.pb')]
        assert message in usage_error(main, argv, capsys)


# ------------------------------------------------------------------------------------------------------------------
# stylize.py checks everything before it decodes or allocates
# ------------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('extra', [['--max_size', '100000'], ['--width', '30000', '--height', '30000'],
                                   ['--style_scale', '1000']])
def test_stylize_refuses_sizes_over_the_memory_budget_before_allocating(tmp_path, extra):
    photo = write_image_file(str(tmp_path / 'p.jpg'), 48, 64)
    weights = str(tmp_path / 'vgg_16.ckpt')
    for suffix in ('.index', '.data-00000-of-00001'):
        (tmp_path / ('vgg_16.ckpt' + suffix)).write_bytes(b'')  # present: the size check comes before reading it

    # A run that did allocate would fail with MemoryError (a traceback) instead of exit 2.
    done = run_command('stylize.py', '--content', photo, '--style', photo, '--loss_model_file', weights,
                       '--output', str(tmp_path / 'o.jpg'), *extra, cwd=tmp_path,
                       limits={resource.RLIMIT_DATA: 6 << 30})
    assert done.returncode == 2, done.stderr
    line = done.stderr.strip()
    assert len(line.splitlines()) == 1 and 'GB, over --max_memory 16' in line and 'needs about' in line


def test_stylize_memory_estimate_grows_with_the_result_and_the_style():
    small = stylize.estimate_memory(100 * 100, 100 * 100, 0)
    assert stylize.estimate_memory(1000 * 1000, 100 * 100, 0) - small == pytest.approx(
        stylize.BYTES_PER_RESULT_PIXEL * (1000 * 1000 - 100 * 100))
    assert stylize.estimate_memory(100 * 100, 4000 * 4000, 0) > stylize.estimate_memory(100 * 100, 100 * 100, 0)


def test_stylize_reports_every_missing_input_at_once(tmp_path, capsys):
    err = usage_error(stylize.main, ['--content', 'nope.jpg', '--style', 'gone.png', '--loss_model_file',
                                     str(tmp_path / 'none.ckpt')], capsys)
    assert 'content image not found: nope.jpg' in err and 'style image not found: gone.png' in err
    assert 'VGG weights not found' in err


def test_stylize_output_equal_to_an_input_is_refused(tmp_path, vgg_checkpoint, capsys):
    photo = write_image_file(str(tmp_path / 'p.jpg'), 48, 64)
    before = _tree(tmp_path)
    err = usage_error(stylize.main, ['--content', photo, '--style', photo, '--loss_model_file', vgg_checkpoint,
                                     '--output', photo], capsys)
    assert 'is the input' in err
    assert _tree(tmp_path) == before


def test_image_size_from_the_header_applies_exif_orientation(tmp_path):
    from images import image_size, load_image
    path = str(tmp_path / 'rotated.jpg')
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    Image.fromarray(np.zeros((20, 50, 3), np.uint8)).save(path, exif=exif)
    assert image_size(path) == (50, 20) == load_image(path)[0].shape[:2]


def test_images_past_pillows_limits(tmp_path):
    """Above Pillow's warning (89 MP) an image reads without its 'decompression bomb' warning (our commands bound
    memory themselves); above its refusal (179 MP) it is a one-line error naming the file, from the header alone."""
    warning_size, refused_size = (9500, 9500), (13400, 13400)  # 90 MP and 180 MP of black, small PNGs
    for size, name in ((warning_size, 'big.png'), (refused_size, 'bomb.png')):
        Image.new('1', size).save(tmp_path / name)
    child = subprocess.run([sys.executable, '-c', 'import images; print(images.image_size(%r))'
                            % str(tmp_path / 'big.png')], cwd=ROOT, capture_output=True, text=True)
    assert (child.stdout, child.stderr) == ('%s\n' % (warning_size,), '')  # pytest would show the warning
    for read in (image_size, load_image):
        with pytest.raises(UsageError, match=r'^content image .*bomb\.png is too large: over the limit of %d pixels '
                                             r'\(shrink it first\)$' % (2 * Image.MAX_IMAGE_PIXELS)):
            read(str(tmp_path / 'bomb.png'), 'content image')
