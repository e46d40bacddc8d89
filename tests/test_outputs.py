"""The one write path (files.Outputs): inputs through any link, collisions, existing files, and the limits of the
encoders, each checked before any work; and every command's path options walked to prove that all their writes go
through it."""
import os
import subprocess

import numpy as np
import pytest
from PIL import Image

import eval as eval_py
import export
import files
import stylize
from helpers import usage_error, write_image_file
from utils import UsageError


def _tree(folder):
    """{relative path: bytes} of every file below folder, to compare before and after."""
    found = {}
    for root, _, names in os.walk(folder):
        for name in names:
            with open(os.path.join(root, name), 'rb') as f:
                found[os.path.relpath(os.path.join(root, name), folder)] = f.read()
    return found


# ------------------------------------------------------------------------------------------------------------------
# Outputs on its own
# ------------------------------------------------------------------------------------------------------------------

def test_an_input_is_refused_through_symlinks_hard_links_and_dots(tmp_path):
    photo = write_image_file(str(tmp_path / 'photo.png'), 8, 8)
    os.symlink(photo, tmp_path / 'link.png')
    os.link(photo, tmp_path / 'hard.png')
    (tmp_path / 'sub').mkdir()
    outputs = files.Outputs([photo])
    for path in (photo, tmp_path / 'link.png', tmp_path / 'hard.png', tmp_path / 'sub' / '..' / 'photo.png'):
        with pytest.raises(UsageError, match='is the input .*photo.png: writing it would replace that'):
            outputs.claim(str(path))


def test_two_outputs_that_are_one_file_through_a_link_collide(tmp_path):
    (tmp_path / 'out').mkdir()
    os.symlink('b.jpg', tmp_path / 'out' / 'a.jpg')  # a dangling link: b.jpg is not written yet
    outputs = files.Outputs()
    outputs.claim(str(tmp_path / 'out' / 'b.jpg'), source='b.png')
    with pytest.raises(UsageError, match='b.png and a.png would both be written to'):
        outputs.claim(str(tmp_path / 'out' / 'a.jpg'), source='a.png')


def test_an_existing_file_is_replaced_only_when_told_and_a_folder_never(tmp_path):
    (tmp_path / 'old.jpg').write_bytes(b'mine')
    (tmp_path / 'folder.jpg').mkdir()
    with pytest.raises(UsageError, match='old.jpg exists; pass --overwrite to replace it'):
        files.Outputs().claim(str(tmp_path / 'old.jpg'))
    with pytest.raises(UsageError, match='folder.jpg exists and is not a file; refusing to replace it, even with'):
        files.Outputs(overwrite=True).claim(str(tmp_path / 'folder.jpg'))
    outputs = files.Outputs(overwrite=True)
    outputs.image(str(tmp_path / 'old.jpg'), np.zeros((4, 4, 3), np.uint8))
    outputs.image(str(tmp_path / 'old.jpg'), np.zeros((4, 4, 3), np.uint8))  # the run's own file: written again
    assert Image.open(tmp_path / 'old.jpg').size == (4, 4)


def test_a_folder_output_holding_an_input_or_the_working_directory_is_refused(tmp_path, monkeypatch):
    photo = write_image_file(str(tmp_path / 'in' / 'photo.png'), 8, 8)
    monkeypatch.chdir(tmp_path / 'in')
    for folder, what in ((tmp_path, 'holds the input'), (tmp_path / 'in', 'holds the input')):
        with pytest.raises(UsageError, match=what):
            files.Outputs([photo], overwrite=True).claim(str(folder), folder=True)
    with pytest.raises(UsageError, match='is or holds the working directory'):
        files.Outputs(overwrite=True).claim(str(tmp_path), folder=True)


def test_a_result_too_large_for_its_encoder_is_refused_before_it_is_encoded(tmp_path):
    outputs = files.Outputs()
    with pytest.raises(UsageError, match=r'a 16384x2 result is larger than WEBP can hold \(16383 pixels a side\)'):
        outputs.image(str(tmp_path / 'wide.webp'), np.zeros((2, 16384, 3), np.uint8))
    with pytest.raises(UsageError, match=r'a 1x65501 result is larger than JPEG can hold \(65500'):
        outputs.image(str(tmp_path / 'tall.jpg'), np.zeros((65501, 1, 3), np.uint8))
    assert os.listdir(tmp_path) == []


# ------------------------------------------------------------------------------------------------------------------
# The cases that lost data, through the commands
# ------------------------------------------------------------------------------------------------------------------

@pytest.fixture(scope='module')
def gatys_images(tmp_path_factory):
    folder = tmp_path_factory.mktemp('gatys')
    return {'content': write_image_file(str(folder / 'content.jpg'), 24, 32, seed=1),
            'style': write_image_file(str(folder / 'style.jpg'), 32, 32, seed=2)}


def test_stylize_frames_never_replace_an_input_or_an_existing_frame(tmp_path, gatys_images, vgg_checkpoint, capsys):
    frames = tmp_path / 'frames'
    frames.mkdir()
    photo = frames / 'res_2.jpg'  # the content photo where frame 2 would go
    photo.write_bytes(open(gatys_images['content'], 'rb').read())
    common = ['--style', gatys_images['style'], '--loss_model_file', vgg_checkpoint, '--max_size', '32',
              '--optimizer', 'adam', '--iterations', '3', '--save_every', '1', '--frames_dir', str(frames),
              '--output', str(tmp_path / 'out.jpg')]
    before = _tree(tmp_path)
    err = usage_error(stylize.main, ['--content', str(photo), *common], capsys)
    assert '--frames_dir %s is the input %s' % (photo, photo) in err
    err = usage_error(stylize.main, ['--content', gatys_images['content'], *common], capsys)
    assert err == ('error: --frames_dir %s exists; pass --overwrite to replace it, or choose another --frames_dir'
                   % photo)
    assert _tree(tmp_path) == before  # refused before any work


def test_stylize_refuses_a_result_its_format_cannot_hold_before_any_work(tmp_path, gatys_images, vgg_checkpoint,
                                                                         capsys):
    err = usage_error(stylize.main, ['--content', gatys_images['content'], '--style', gatys_images['style'],
                                     '--loss_model_file', vgg_checkpoint, '--width', '16400', '--height', '16',
                                     '--style_scale', '0.002',
                                     '--output', str(tmp_path / 'wide.webp')], capsys)
    assert 'a 16400x16 result is larger than WEBP can hold' in err and os.listdir(tmp_path) == []


@pytest.mark.parametrize('blend', ['nan,1', 'inf,1', '1,-inf'])
def test_stylize_refuses_non_finite_blend_weights(gatys_images, vgg_checkpoint, capsys, blend):
    err = usage_error(stylize.main, ['--content', gatys_images['content'], '--style', gatys_images['style'],
                                     '--style', gatys_images['style'], '--style_blend', blend], capsys)
    assert 'expected comma-separated finite numbers' in err


@pytest.fixture(scope='module')
def two_models(tmp_path_factory, trained_model):
    """models/wave.ckpt and models/scream.ckpt: weights-only exports of one and of two styles."""
    import checkpoints
    folder = tmp_path_factory.mktemp('shipped') / 'models'
    two_styles = checkpoints.save_random_model(str(folder.parent / 'two' / 'fast-style-model.ckpt-done'), styles=2)
    for model, name in ((trained_model, 'wave.ckpt'), (two_styles, 'scream.ckpt')):
        export.main(['--model_file', model, '--format', 'ckpt', '--output', str(folder / name)])
    return folder


def test_export_never_replaces_another_model_or_the_model_itself(two_models, capsys, monkeypatch):
    monkeypatch.chdir(two_models.parent)
    before = _tree(two_models)
    err = usage_error(export.main, ['--model_file', 'models/wave.ckpt', '--format', 'ckpt', '--output',
                                    'models/scream.ckpt'], capsys)
    assert err == ('error: --output models/scream.ckpt exists; pass --overwrite to replace it, or choose another '
                   '--output')
    for model in ('models/wave.ckpt', 'models/scream.ckpt'):
        err = usage_error(export.main, ['--model_file', model, '--format', 'ckpt', '--output', model,
                                        '--overwrite'], capsys)
        assert 'is the input' in err
    assert _tree(two_models) == before


def test_a_two_style_export_replaces_its_own_earlier_export_when_told(two_models, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for _ in range(2):
        export.main(['--model_file', str(two_models / 'scream.ckpt'), '--format', 'ckpt', '--output', 'again.ckpt',
                     '--overwrite'])
    assert export.is_earlier_export('again.ckpt', 'ckpt')
    assert sorted(os.listdir(tmp_path)) == ['again.ckpt.data-00000-of-00001', 'again.ckpt.index']


def test_export_writes_beside_a_weights_only_model_by_default(two_models, monkeypatch):
    monkeypatch.chdir(two_models.parent)
    assert export.default_output('models/wave.ckpt', None, 'pb') == os.path.join('models', 'wave.pb')
    assert export.default_output('models/wave.ckpt', None, 'tflite', fp16=True) == os.path.join(
        'models', 'wave_fp16.tflite')
    assert export.default_output('models/candy/fast-style-model.ckpt-done', None, 'pb') == os.path.join(
        'models', 'candy.pb')
    export.main(['--model_file', 'models/wave.ckpt'])
    assert os.path.isfile('models/wave.pb') and not os.path.exists('models.pb')


def test_eval_folder_runs_refuse_existing_results_and_oversized_ones_before_any_work(tmp_path, trained_model,
                                                                                    capsys):
    photos = tmp_path / 'photos'
    write_image_file(str(photos / 'a.png'), 16, 16)
    Image.new('RGB', (16400, 8)).save(photos / 'wide.png')
    before = _tree(tmp_path)
    err = usage_error(eval_py.main, ['--model_file', trained_model, '--image_file', str(photos), '--output',
                                     str(tmp_path / 'out') + '/', '--format', 'webp'], capsys)
    assert 'a 16400x8 result is larger than WEBP can hold' in err
    (tmp_path / 'out').mkdir()
    (tmp_path / 'out' / 'a.png').write_bytes(b'mine')
    err = usage_error(eval_py.main, ['--model_file', trained_model, '--image_file', str(photos / 'a.png'),
                                     str(photos / 'wide.png'), '--output', str(tmp_path / 'out')], capsys)
    assert err == ('error: --output %s exists; pass --overwrite to replace it, or choose another --output'
                   % (tmp_path / 'out' / 'a.png'))
    assert _tree(tmp_path) == {**before, 'out/a.png': b'mine'}


def test_results_inside_the_folder_searched_are_not_taken_for_photos(tmp_path, trained_model, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    caplog.set_level('INFO')
    write_image_file('photos/a.png', 16, 16)
    write_image_file('photos/sub/b.jpg', 16, 12)
    for output in ('photos/out/', None):  # a folder inside the photos', and the default generated/ (of '.')
        eval_py.main(['--model_file', trained_model, '--image_file', 'photos' if output else '.']
                     + (['--output', output] if output else []))
        eval_py.main(['--model_file', trained_model, '--image_file', 'photos' if output else '.', '--overwrite']
                     + (['--output', output] if output else []))  # the second run: the same two photos
    assert sorted(os.path.relpath(os.path.join(root, name)) for root, _, names in os.walk('.') for name in names) \
        == ['generated/photos/a.png', 'generated/photos/out/a.png', 'generated/photos/out/sub/b.jpg',
            'generated/photos/sub/b.jpg', 'photos/a.png', 'photos/out/a.png', 'photos/out/sub/b.jpg',
            'photos/sub/b.jpg']
    assert 'left out of .: ./generated, where results go' in caplog.messages


# ------------------------------------------------------------------------------------------------------------------
# Video: odd sizes and thin frames
# ------------------------------------------------------------------------------------------------------------------

def _video(path, size, pixel_format):
    import imageio_ffmpeg
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), '-v', 'error', '-y', '-f', 'lavfi', '-i',
                    'testsrc=duration=1:size=%dx%d:rate=10' % size, '-pix_fmt', pixel_format, '-c:v', 'libx264',
                    str(path)], check=True, timeout=120)
    return str(path)


def test_a_video_of_odd_size_is_padded_by_one_pixel_and_says_so(tmp_path, trained_model, caplog):
    import imageio_ffmpeg
    caplog.set_level('INFO')
    source = _video(tmp_path / 'odd.mp4', (47, 33), 'yuv444p')  # 4:4:4 holds odd sizes; our 4:2:0 output cannot
    eval_py.main(['--model_file', trained_model, '--video', source, '--output', str(tmp_path / 'out.mp4')])
    reader = imageio_ffmpeg.read_frames(str(tmp_path / 'out.mp4'))
    assert next(reader)['size'] == (48, 34)
    assert any('the result is 48x34 (the last column and row repeated)' in message for message in caplog.messages)


def test_flow_consistency_runs_on_frames_too_thin_for_opencvs_flow(tmp_path, trained_model):
    import imageio_ffmpeg
    source = _video(tmp_path / 'thin.mp4', (48, 8), 'yuv420p')  # DIS crashes on 13x48 and less without padding
    eval_py.main(['--model_file', trained_model, '--video', source, '--output', str(tmp_path / 'out.mp4'),
                  '--smooth', '0.5', '--consistency', 'flow'])
    assert imageio_ffmpeg.count_frames_and_secs(str(tmp_path / 'out.mp4'))[0] == 10


def test_an_output_that_could_never_be_written_is_refused_before_any_work(tmp_path):
    (tmp_path / 'a_file').write_bytes(b'mine')
    with pytest.raises(UsageError, match='a_file is a file, so no folder can be made there; choose another '
                                         '--frames_dir'):
        files.Outputs().claim(str(tmp_path / 'a_file' / 'deeper' / 'res_1.jpg'), option='--frames_dir')
    with pytest.raises(UsageError, match='the name is 256 bytes, over the 255 a file name may have'):
        files.Outputs().claim(str(tmp_path / ('x' * 252 + '.jpg')))
    long_name = str(tmp_path / ('y' * 247 + '.jpg'))  # fits, though its staging file's name would not in full
    files.Outputs().image(long_name, np.zeros((4, 4, 3), np.uint8))
    assert sorted(os.listdir(tmp_path)) == sorted(['a_file', os.path.basename(long_name)])
