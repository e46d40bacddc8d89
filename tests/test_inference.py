"""The inference side: batches, any size, tiles, pixels as people have them, exported forms, video."""
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

import checkpoints
import eval as eval_py
import export
import model
from helpers import CPU_HAS_BF16, make_video, usage_error, write_image_file
from images import load_image
from inference import color, tiling
from inference.stylizer import Stylizer
from utils import UsageError, session_config, tf


@pytest.fixture(scope='module')
def stylizer(trained_model):
    loaded = Stylizer(trained_model)
    yield loaded
    loaded.close()


def _pixels(path):
    return np.asarray(Image.open(path))


def _eval(*argv):
    return eval_py.main(list(argv))


def test_folder_of_mixed_sizes_and_formats_with_a_broken_file(tmp_path, trained_model, capsys):
    src = tmp_path / 'in'
    write_image_file(str(src / 'a.jpg'), 37, 53, seed=1)
    write_image_file(str(src / 'sub' / 'b.png'), 20, 31, mode='RGBA', seed=2)
    write_image_file(str(src / 'c.webp'), 16, 16, seed=3)
    write_image_file(str(src / 'd.bmp'), 9, 40, seed=4)
    write_image_file(str(src / 'sub' / 'e.tif'), 33, 12, seed=5)
    (src / 'broken.jpg').write_bytes(b'\xff\xd8\xff\xe0 not really a jpeg')
    (src / 'notes.txt').write_text('ignored: not an image extension')
    with pytest.raises(SystemExit) as exit_info:
        _eval('--model_file', trained_model, '--image_file', str(src), '--output', str(tmp_path / 'out'))
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert 'skipped: content image is not a readable image: %s' % (src / 'broken.jpg') in err
    assert '1 of 6 images could not be stylized' in err
    for name, size in [('a.jpg', (53, 37)), ('sub/b.png', (31, 20)), ('c.webp', (16, 16)), ('d.bmp', (40, 9)),
                       ('sub/e.tif', (12, 33))]:
        assert Image.open(tmp_path / 'out' / name).size == size
    assert not (tmp_path / 'out' / 'broken.jpg').exists()


def test_an_interrupted_folder_run_is_finished_with_skip_existing(tmp_path, trained_model, capsys, caplog):
    caplog.set_level('INFO')
    for i in range(3):
        write_image_file(str(tmp_path / 'in' / ('p%d.png' % i)), 20, 24, seed=i)
    out = tmp_path / 'out'
    _eval('--model_file', trained_model, '--image_file', str(tmp_path / 'in'), '--output', str(out))
    done, first = (out / 'p0.png').read_bytes(), (out / 'p1.png').read_bytes()
    (out / 'p1.png').unlink()  # as if stopped before its turn
    (out / 'p2.png').write_bytes(b'a file of the user, by that name')
    capsys.readouterr()  # the progress bar
    assert 'pass --overwrite to replace it' in usage_error(
        eval_py.main, ['--model_file', trained_model, '--image_file', str(tmp_path / 'in'), '--output', str(out)],
        capsys)
    _eval('--model_file', trained_model, '--image_file', str(tmp_path / 'in'), '--output', str(out),
          '--skip_existing')
    assert '2 of 3 results exist already and are left as they are (--skip_existing)' in caplog.text
    assert (out / 'p0.png').read_bytes() == done and (out / 'p1.png').read_bytes() == first
    assert (out / 'p2.png').read_bytes() == b'a file of the user, by that name'
    caplog.clear()
    _eval('--model_file', trained_model, '--image_file', str(tmp_path / 'in'), '--output', str(out),
          '--skip_existing')  # all there: the model is not even loaded
    assert '3 of 3 results exist already and are left as they are (--skip_existing); nothing to do' in caplog.text
    assert 'model loaded' not in caplog.text
    capsys.readouterr()
    for argv, message in ((['--output', str(tmp_path / 'in')], 'is the input'),  # an input is never a result
                          (['--overwrite'], '--overwrite replaces existing results and --skip_existing keeps them')):
        assert message in usage_error(eval_py.main, ['--model_file', trained_model, '--image_file',
                                                     str(tmp_path / 'in'), '--skip_existing', *argv], capsys)


def test_globs_and_format(tmp_path, trained_model):
    for i in range(3):
        write_image_file(str(tmp_path / ('p%d.jpg' % i)), 20 + i, 24, seed=i)
    _eval('--model_file', trained_model, '--image_file', str(tmp_path / 'p*.jpg'), '--format', 'png',
          '--output', str(tmp_path / 'out'))
    assert sorted(os.listdir(tmp_path / 'out')) == ['p0.png', 'p1.png', 'p2.png']


@pytest.mark.parametrize('height,width', [(1, 1), (1, 300), (250, 2), (7, 13)])
def test_any_size(tmp_path, trained_model, height, width):
    path = str(tmp_path / 'in.png')
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (height, width, 3), np.uint8)).save(path)
    _eval('--model_file', trained_model, '--image_file', path, '--output', str(tmp_path / 'out.png'))
    assert _pixels(tmp_path / 'out.png').shape == (height, width, 3)


def test_tiles_use_whole_image_statistics_and_match_the_whole_image(trained_model, stylizer):
    image = load_image(write_image_file(os.path.join(os.path.dirname(trained_model), 'big.png'), 150, 203, seed=9))[0]
    tiled = Stylizer(trained_model, max_pixels=4096)  # 64-pixel tiles: 12 of them, each with context
    try:
        difference = np.abs(tiled(image).astype(int) - stylizer(image).astype(int))
    finally:
        tiled.close()
    assert difference.max() <= 1 and difference.mean() < 0.01


def test_the_tiled_progress_bar_counts_what_it_says(trained_model, capsys):
    tiled = tiling.TiledTransform(checkpoints.check_transform_checkpoint(checkpoints.find_checkpoint(trained_model)), 64)
    try:
        tiled(np.zeros((100, 150, 3), np.uint8))  # 2 x 3 tiles of 64
    finally:
        tiled.close()
    bar = capsys.readouterr().err
    assert '150x100: 6 tiles, 7 passes each' in bar and '/42 ' in bar  # 6 tiles x 7 passes = 42 tile runs


def test_tile_plan_lines_up_with_the_networks_strides():
    tiles = tiling.split_axis(1000, 256, margin=64)
    assert tiles[0][0] == 0 and tiles[-1][1] == 1000
    for (start, end, context_start, context_end), following in zip(tiles, tiles[1:] + [None]):
        assert context_start % 4 == 0 and context_start <= max(0, start - 60)
        assert context_end >= min(1000, end + 64)
        if following:
            assert following[0] == end and (end + 10) % 4 == 0  # boundaries on multiples of 4 once padded


def test_alpha_is_kept_and_exif_orientation_applied(tmp_path, trained_model):
    rgba = np.random.default_rng(1).integers(0, 256, (21, 30, 4), np.uint8)
    Image.fromarray(rgba, 'RGBA').save(tmp_path / 'a.png')
    _eval('--model_file', trained_model, '--image_file', str(tmp_path / 'a.png'), '--output', str(tmp_path / 'o.png'))
    out = _pixels(tmp_path / 'o.png')
    assert out.shape == (21, 30, 4)
    np.testing.assert_array_equal(out[..., 3], rgba[..., 3])

    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    Image.fromarray(rgba[..., :3]).save(tmp_path / 'r.png', exif=exif)  # lossless, so pixels can be compared
    np.testing.assert_array_equal(load_image(str(tmp_path / 'r.png'))[0], np.rot90(rgba[..., :3], k=-1))
    _eval('--model_file', trained_model, '--image_file', str(tmp_path / 'r.png'), '--output', str(tmp_path / 'o2.png'))
    np.testing.assert_array_equal(_pixels(tmp_path / 'o2.png'),
                                  Stylizer(trained_model)(np.ascontiguousarray(np.rot90(rgba[..., :3], k=-1))))


def test_alpha_in_webp_and_tiff_outputs_and_quality(tmp_path, trained_model):
    rgba = np.random.default_rng(3).integers(0, 256, (21, 30, 4), np.uint8)
    Image.fromarray(rgba, 'RGBA').save(tmp_path / 'a.png')
    for name in ('o.webp', 'o.tif'):
        _eval('--model_file', trained_model, '--image_file', str(tmp_path / 'a.png'), '--output', str(tmp_path / name))
        out = _pixels(tmp_path / name)
        assert out.shape == (21, 30, 4)
        np.testing.assert_array_equal(out[..., 3], rgba[..., 3])
    photo = write_image_file(str(tmp_path / 'photo.png'), 64, 64, seed=8)
    exact = Stylizer(trained_model)(_pixels(photo))
    errors, sizes = [], []
    for quality in ('10', '95'):
        output = str(tmp_path / ('q%s.jpg' % quality))
        _eval('--model_file', trained_model, '--image_file', photo, '--output', output, '--quality', quality)
        errors.append(np.abs(_pixels(output).astype(int) - exact).mean())
        sizes.append(os.path.getsize(output))
    assert sizes[0] < 0.7 * sizes[1] and errors[0] > errors[1]


def test_grayscale_palette_16_bit_and_cmyk_inputs(tmp_path):
    gradient16 = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000)
    Image.fromarray(gradient16).save(tmp_path / 'g16.png')
    rgb, alpha = load_image(str(tmp_path / 'g16.png'))
    np.testing.assert_allclose(rgb[..., 0], np.round(gradient16 / 257.0), atol=1)
    assert alpha is None
    rng = np.random.default_rng(2)
    gray = rng.integers(0, 256, (10, 12), np.uint8)
    Image.fromarray(gray, 'L').save(tmp_path / 'g.png')
    np.testing.assert_array_equal(load_image(str(tmp_path / 'g.png'))[0], np.repeat(gray[..., None], 3, axis=2))
    palette = rng.integers(0, 256, (256, 3), np.uint8)
    indices = rng.integers(0, 256, (10, 12), np.uint8)
    indexed = Image.fromarray(indices, 'P')
    indexed.putpalette(palette.ravel().tolist())
    indexed.save(tmp_path / 'p.png')
    np.testing.assert_array_equal(load_image(str(tmp_path / 'p.png'))[0], palette[indices])
    bits = rng.integers(0, 2, (10, 12)).astype(bool)
    Image.fromarray(bits).save(tmp_path / 'b.bmp')  # mode '1'
    np.testing.assert_array_equal(load_image(str(tmp_path / 'b.bmp'))[0], np.repeat(bits[..., None] * 255, 3, axis=2))
    cmyk = rng.integers(0, 256, (10, 12, 4), np.uint8)
    Image.fromarray(cmyk, 'CMYK').save(tmp_path / 'c.tif')  # lossless
    # Without a colour profile, each of R, G, B is (255 - C) x (255 - K) / 255 for its ink C, M or Y.
    expected = (255 - cmyk[..., :3].astype(int)) * (255 - cmyk[..., 3:].astype(int)) / 255
    assert np.abs(load_image(str(tmp_path / 'c.tif'))[0].astype(int) - expected).max() <= 1


def test_strength_and_preserve_colors(tmp_path, trained_model, stylizer):
    path = write_image_file(str(tmp_path / 'in.png'), 24, 32, seed=6)
    original = _pixels(path)
    _eval('--model_file', trained_model, '--image_file', path, '--output', str(tmp_path / 's0.png'), '--strength', '0')
    np.testing.assert_array_equal(_pixels(tmp_path / 's0.png'), original)
    _eval('--model_file', trained_model, '--image_file', path, '--output', str(tmp_path / 'h.png'),
          '--strength', '0.5')
    expected = np.round(0.5 * stylizer(original).astype(np.float32) + 0.5 * original)
    assert np.abs(_pixels(tmp_path / 'h.png') - expected).max() <= 1
    _eval('--model_file', trained_model, '--image_file', path, '--output', str(tmp_path / 'c.png'),
          '--preserve_colors')
    stylized = stylizer(original)
    np.testing.assert_array_equal(_pixels(tmp_path / 'c.png'), color.transfer_luminance(stylized, original))
    # Where the photo's chroma with the stylized luminance is a valid RGB colour, the chroma is kept exactly
    # (up to rounding to integers); elsewhere clipping to 0..255 has to change it.
    wanted = color.rgb_to_ycbcr(original)
    wanted[..., 0] = color.rgb_to_ycbcr(stylized)[..., 0]
    inside = np.all((color.ycbcr_to_rgb(wanted) >= 0) & (color.ycbcr_to_rgb(wanted) <= 255), axis=-1)
    chroma = np.abs(color.rgb_to_ycbcr(_pixels(tmp_path / 'c.png')) - wanted)[..., 1:][inside]
    assert inside.mean() > 0.2 and chroma.max() < 1.5


def test_finish_in_bands_equals_the_whole_image_at_once():
    rng = np.random.default_rng(0)
    stylized, original = (rng.integers(0, 256, (600, 37, 3), np.uint8) for _ in range(2))  # 3 bands of rows
    whole = color.transfer_luminance(stylized, original)
    np.testing.assert_array_equal(color.finish(stylized, original, preserve_colors=True), whole)
    blended = np.clip(np.round(0.3 * whole.astype(np.float32) + 0.7 * original), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(color.finish(stylized, original, True, 0.3), blended)
    assert color.finish(stylized, original) is stylized


PLAIN_SAVED_MODEL = '''
import sys, numpy as np, tensorflow as tf
from PIL import Image
pixels = np.asarray(Image.open(sys.argv[2]).convert('RGB'))
serve = tf.saved_model.load(sys.argv[1]).signatures['serving_default']
np.save(sys.argv[3], serve(image=tf.constant(pixels[None]))['stylized'].numpy()[0])
'''
PLAIN_TFLITE = '''
import sys, warnings, numpy as np, tensorflow as tf
from PIL import Image
warnings.simplefilter('ignore')
pixels = np.asarray(Image.open(sys.argv[2]).convert('RGB'), np.float32)
interpreter = tf.lite.Interpreter(model_path=sys.argv[1])
entry = interpreter.get_input_details()[0]
interpreter.resize_tensor_input(entry['index'], [1, *pixels.shape])
interpreter.allocate_tensors()
interpreter.set_tensor(entry['index'], pixels[None])
interpreter.invoke()
np.save(sys.argv[3], interpreter.get_tensor(interpreter.get_output_details()[0]['index'])[0].astype(np.uint8))
'''


@pytest.mark.parametrize('fmt,extra,runner,tolerance', [
    ('savedmodel', [], PLAIN_SAVED_MODEL, 0),  # the same graph: the same pixels
    ('tflite', [], PLAIN_TFLITE, 1),           # other kernels: float rounding, at most one grey level
    ('tflite', ['--fp16'], PLAIN_TFLITE, 2),   # float16 weights
])
def test_exported_forms_run_without_our_code_and_give_evals_pixels(
        tmp_path, trained_model, stylizer, fmt, extra, runner, tolerance):
    exported = str(tmp_path / ('model' + export.SUFFIXES[fmt]))
    export.main(['--model_file', trained_model, '--format', fmt, '--output', exported, *extra])
    photo = write_image_file(str(tmp_path / 'photo.png'), 29, 41, seed=7)
    script = tmp_path / 'runner.py'
    script.write_text(runner)
    subprocess.run([sys.executable, str(script), exported, photo, str(tmp_path / 'out.npy')], check=True,
                   cwd=str(tmp_path), env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3'), capture_output=True, timeout=300)
    plain = np.load(tmp_path / 'out.npy').astype(int)
    reference = stylizer(_pixels(photo)).astype(int)
    assert plain.shape == reference.shape
    assert np.abs(plain - reference).max() <= tolerance
    # eval.py and serve.py take the SavedModel and the TFLite model too, with their plain runners' pixels (the
    # interpreter's threads split the work differently, which can round a value the other way).
    loaded = Stylizer(exported)
    assert np.abs(loaded(_pixels(photo)).astype(int) - plain).max() <= (0 if fmt == 'savedmodel' else 1)
    if fmt == 'tflite':
        # serve.py's workers call one Stylizer from several threads; the interpreter, resized per image, takes
        # them in turn.
        images = [_pixels(write_image_file(str(tmp_path / ('%d.png' % i)), 12 + 5 * i, 30 - 4 * i, seed=i))
                  for i in range(4)]
        with ThreadPoolExecutor(4) as pool:
            together = list(pool.map(loaded, images * 3))
        for image, stylized in zip(images * 3, together):
            np.testing.assert_array_equal(stylized, loaded(image))
        # Tiling needs the weights, which a TFLite model does not give: the message names the checkpoint.
        with pytest.raises(UsageError, match='pass the checkpoint it was exported from, or raise --max_pixels'):
            Stylizer(exported, max_pixels=1000)(_pixels(photo))


@pytest.mark.parametrize('op,make', [
    ('ReadFile', lambda: tf.strings.length(tf.io.read_file('/etc/hostname'))),
    ('WriteFile', None),  # built below: it writes into the test's folder
    ('PyFunc', lambda: tf.py_func(lambda: np.int32(0), [], tf.int32)),
])
def test_hostile_graphs_are_refused(tmp_path, capsys, op, make):
    with tf.Graph().as_default() as graph:
        for name in ('input_image', 'height', 'width'):
            tf.placeholder(tf.int32, [None] if name == 'input_image' else [], name=name)
        if op == 'WriteFile':
            written = tf.io.write_file(str(tmp_path / 'written'), 'x')
            with tf.control_dependencies([written]):
                tf.identity(tf.constant(0), name='output_image')
        else:
            tf.identity(make(), name='output_image')
    path = tmp_path / 'evil.pb'
    path.write_bytes(graph.as_graph_def().SerializeToString())
    with pytest.raises(SystemExit):
        _eval('--model_file', str(path), '--image_file', write_image_file(str(tmp_path / 'x.png'), 8, 8))
    err = capsys.readouterr().err
    assert 'refusing' in err and 'uses %s' % op in err
    assert not os.path.exists(tmp_path / 'written')


def test_a_saved_model_that_runs_its_own_ops_when_loaded_is_refused(tmp_path, trained_model, capsys):
    exported = str(tmp_path / 'sm')
    export.main(['--model_file', trained_model, '--format', 'savedmodel', '--output', exported])
    with tf.Graph().as_default():
        images = tf.placeholder(tf.uint8, [None, None, None, 3], name='image')
        stylized = tf.identity(images, name='stylized')
        marker = tf.io.write_file(str(tmp_path / 'ran'), 'x')
        with tf.Session() as sess:
            builder = tf.saved_model.builder.SavedModelBuilder(str(tmp_path / 'evil'))
            signature = tf.saved_model.signature_def_utils.predict_signature_def({'image': images},
                                                                                 {'stylized': stylized})
            builder.add_meta_graph_and_variables(sess, ['serve'], signature_def_map={'serving_default': signature},
                                                 main_op=marker)
            builder.save()
    os.makedirs(tmp_path / 'evil' / 'variables', exist_ok=True)
    for name in os.listdir(os.path.join(exported, 'variables')):  # real weights: only the load-time op is wrong
        shutil.copy(os.path.join(exported, 'variables', name), tmp_path / 'evil' / 'variables' / name)
    with pytest.raises(SystemExit):
        _eval('--model_file', str(tmp_path / 'evil'), '--image_file', write_image_file(str(tmp_path / 'x.png'), 8, 8))
    assert 'runs its own ops when loaded' in capsys.readouterr().err
    assert not os.path.exists(tmp_path / 'ran')


def _probe(path):
    import imageio_ffmpeg
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    return meta, sum(1 for _ in reader)


def test_video_keeps_frame_rate_audio_and_size(tmp_path, trained_model):
    source, output = tmp_path / 'in.mp4', tmp_path / 'out.mp4'
    make_video(source)
    _eval('--model_file', trained_model, '--video', str(source), '--output', str(output), '--batch_size', '3',
          '--smooth', '0.3')
    meta, frames = _probe(output)
    assert frames == 20 and meta['fps'] == 10 and tuple(meta['size']) == (48, 32)
    assert meta.get('audio_codec') == 'aac'


@pytest.mark.parametrize('container,audio', [('.webm', 'opus'), ('.mov', 'aac'), ('.avi', 'mp3'), ('.gif', None)])
def test_every_container_the_extension_names(tmp_path, trained_model, container, audio, caplog):
    caplog.set_level('INFO')
    source, output = tmp_path / 'in.mp4', tmp_path / ('out' + container)
    make_video(source, seconds=1)
    _eval('--model_file', trained_model, '--video', str(source), '--output', str(output))
    import imageio_ffmpeg
    meta = next(imageio_ffmpeg.read_frames(str(output)))  # (reading pads an AVI to its audio's end: frames counted)
    assert imageio_ffmpeg.count_frames_and_secs(str(output))[0] == 10 and tuple(meta['size']) == (48, 32)
    assert (meta.get('audio_codec') or '').rstrip(',') == (audio or '')
    assert ('a GIF has no sound' in caplog.text) == (audio is None)


def test_a_video_container_no_encoder_writes_is_refused_before_any_work(tmp_path, trained_model, capsys, caplog):
    caplog.set_level('INFO')
    make_video(tmp_path / 'in.mp4', seconds=1)
    for name in ('out.txt', 'out'):
        assert '--output %s: a video is written as .mp4, .m4v, .mov, .mkv, .avi, .webm, .gif' % (tmp_path / name) \
            in usage_error(eval_py.main, ['--model_file', trained_model, '--video', str(tmp_path / 'in.mp4'),
                                          '--output', str(tmp_path / name)], capsys)
    assert 'model loaded' not in caplog.text and sorted(os.listdir(tmp_path)) == ['in.mp4']


def test_smooth_calms_the_video_end_to_end(tmp_path, trained_model):
    import imageio_ffmpeg
    make_video(tmp_path / 'in.mp4', seconds=1)
    flicker = []
    for smooth in ('0', '0.7'):
        output = tmp_path / ('out%s.mp4' % smooth)
        _eval('--model_file', trained_model, '--video', str(tmp_path / 'in.mp4'), '--output', str(output),
              '--smooth', smooth)
        reader = imageio_ffmpeg.read_frames(str(output))
        width, height = next(reader)['size']
        frames = [np.frombuffer(data, np.uint8).reshape(height, width, 3).astype(int) for data in reader]
        flicker.append(np.mean([np.abs(b - a).mean() for a, b in zip(frames, frames[1:])]))
    assert flicker[1] < 0.8 * flicker[0]  # measured 0.64 of the unsmoothed frame-to-frame change


def test_flow_consistency_end_to_end(tmp_path, trained_model, capsys):
    """--consistency flow keeps every frame, the frame rate and the audio, and shows the flow's share of the time."""
    source, output = tmp_path / 'in.mp4', tmp_path / 'flow.mp4'
    make_video(source, seconds=1)
    _eval('--model_file', trained_model, '--video', str(source), '--output', str(output), '--smooth', '0.5',
          '--consistency', 'flow')
    meta, frames = _probe(output)
    assert frames == 10 and meta['fps'] == 10 and meta.get('audio_codec') == 'aac'
    err = capsys.readouterr().err
    assert re.search(r'optical flow \d+% of the time', err), err[-300:]


def test_flow_without_opencv_says_how_to_install(tmp_path, trained_model, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, 'cv2', None)  # as if not installed
    make_video(tmp_path / 'in.mp4', seconds=1)
    with pytest.raises(SystemExit) as exit_info:
        _eval('--model_file', trained_model, '--video', str(tmp_path / 'in.mp4'), '--output',
              str(tmp_path / 'out.mp4'), '--smooth', '0.5', '--consistency', 'flow')
    assert exit_info.value.code == 2
    assert '--consistency flow needs OpenCV' in capsys.readouterr().err
    assert not os.path.exists(tmp_path / 'out.mp4')


def test_video_without_imageio_says_how_to_install(tmp_path, trained_model, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, 'imageio_ffmpeg', None)  # as if not installed
    with pytest.raises(SystemExit) as exit_info:
        _eval('--model_file', trained_model, '--video', 'in.mp4')
    assert exit_info.value.code == 2
    assert 'pip install -r requirements-video.txt' in capsys.readouterr().err


def test_a_still_image_or_nothing_as_the_video_is_refused_before_any_work(tmp_path, trained_model, capsys):
    Image.new('RGB', (32, 32)).save(tmp_path / 'photo.jpg')
    frames = [Image.new('RGB', (32, 32), (80 * i, 0, 0)) for i in range(3)]
    frames[0].save(tmp_path / 'moving.gif', save_all=True, append_images=frames[1:])
    for video, message in (('photo.jpg', 'photo.jpg is a still image (JPEG), not a video: pass it to --image_file'),
                           ('gone.mp4', 'video not found:')):
        assert message in usage_error(eval_py.main, ['--model_file', trained_model, '--video', str(tmp_path / video),
                                                     '--output', str(tmp_path / 'out.mp4')], capsys)
    assert sorted(os.listdir(tmp_path)) == ['moving.gif', 'photo.jpg']
    _eval('--model_file', trained_model, '--video', str(tmp_path / 'moving.gif'), '--output', str(tmp_path / 'a.mp4'))
    import imageio_ffmpeg
    assert imageio_ffmpeg.count_frames_and_secs(str(tmp_path / 'a.mp4'))[0] == 3  # an animation is a video
    written = os.stat(tmp_path / 'a.mp4').st_mtime_ns
    _eval('--model_file', trained_model, '--video', str(tmp_path / 'moving.gif'), '--output', str(tmp_path / 'a.mp4'),
          '--skip_existing')
    assert os.stat(tmp_path / 'a.mp4').st_mtime_ns == written


@pytest.mark.parametrize('argv,message', [
    (['--strength', '2'], '--strength must be between 0 and 1'),
    (['--quality', '0'], '--quality must be between 1 and 100'),
    (['--smooth', '0.5'], '--smooth applies to --video only'),
    (['--consistency', 'flow'], '--consistency flow needs --video and --smooth A'),
    (['--consistency', 'optical'], "invalid choice: 'optical'"),
    (['--max_pixels', '10'], '--max_pixels must be at least 4096'),
])
def test_option_errors(trained_model, capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        _eval('--model_file', trained_model, '--image_file', 'x.jpg', *argv)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_empty_folder_is_an_error(tmp_path, trained_model, capsys):
    with pytest.raises(SystemExit):
        _eval('--model_file', trained_model, '--image_file', str(tmp_path))
    assert 'no images found for' in capsys.readouterr().err


@pytest.mark.parametrize('fmt', ['pb', 'savedmodel'])
def test_exported_models_tile_large_images_too(tmp_path, trained_model, stylizer, fmt):
    """Tiles need the weights in our own graph: they are read back from the frozen constants or variables."""
    exported = str(tmp_path / ('model' + export.SUFFIXES[fmt]))
    export.main(['--model_file', trained_model, '--format', fmt, '--output', exported])
    image = load_image(write_image_file(str(tmp_path / 'big.png'), 90, 140, seed=11))[0]
    tiled = Stylizer(exported, max_pixels=4096)
    try:
        assert np.abs(tiled(image).astype(int) - stylizer(image).astype(int)).max() <= 1
    finally:
        tiled.close()


def test_fp16_tflite_is_half_the_size_and_eval_runs_a_tflite(tmp_path, trained_model, stylizer):
    sizes = {}
    for extra in ([], ['--fp16']):
        output = str(tmp_path / ('m%s.tflite' % ''.join(extra)))
        export.main(['--model_file', trained_model, '--format', 'tflite', '--output', output, *extra])
        sizes[tuple(extra)] = os.path.getsize(output)
    assert sizes[('--fp16',)] < 0.55 * sizes[()]
    photo = write_image_file(str(tmp_path / 'photo.png'), 29, 41, seed=7)
    _eval('--model_file', str(tmp_path / 'm.tflite'), '--image_file', photo, '--output', str(tmp_path / 'o.png'))
    assert np.abs(_pixels(tmp_path / 'o.png').astype(int) - stylizer(_pixels(photo))).max() <= 1


def test_a_saved_model_stylizes_a_batch_of_several_images(tmp_path, trained_model, stylizer):
    exported = str(tmp_path / 'sm')
    export.main(['--model_file', trained_model, '--format', 'savedmodel', '--output', exported])
    batch = np.random.default_rng(4).integers(0, 256, (3, 20, 28, 3), np.uint8)
    with tf.Graph().as_default(), tf.Session() as sess:
        signature = tf.saved_model.loader.load(sess, ['serve'], exported).signature_def['serving_default']
        stylized = sess.run(signature.outputs['stylized'].name, {signature.inputs['image'].name: batch})
    assert stylized.shape == batch.shape
    for image, result in zip(batch, stylized):  # a batch convolves in other blocks: float rounding at most
        assert np.abs(result.astype(int) - stylizer(image)).max() <= 1


def _bfloat16_nodes(config):
    """How many nodes compute in bfloat16 in the transform network's graph as Grappler runs it with `config`."""
    return sum(1 for node in _optimized_nodes(config) if node.attr['T'].type == tf.bfloat16.as_datatype_enum)


def test_bf16_precision_stays_close_to_float32_where_the_cpu_has_it(tmp_path, trained_model, stylizer):
    image = load_image(write_image_file(str(tmp_path / 'photo.png'), 61, 83, seed=4))[0]
    reduced = Stylizer(trained_model, precision='bf16')
    try:
        bfloat16_nodes = _bfloat16_nodes(reduced.session_config)
        difference = np.abs(reduced(image).astype(int) - stylizer(image).astype(int))
    finally:
        reduced.close()
    assert _bfloat16_nodes(stylizer.session_config) == 0 and stylizer.precision == 'float32'
    if CPU_HAS_BF16:
        # The reduced-precision graph really runs: its convolutions compute in bfloat16, and the pixels change.
        assert reduced.precision == 'bfloat16' and bfloat16_nodes > 10
        assert 0 < difference.mean() < 3 and np.percentile(difference, 99) <= 16
    else:  # float32, as the start-up line says (tests/test_precision.py)
        assert reduced.precision == 'float32' and bfloat16_nodes == 0 and difference.max() == 0


def _optimized_nodes(config):
    """The nodes of the transform network's graph as Grappler leaves it for a session with `config`."""
    with tf.Graph().as_default():
        images = tf.placeholder(tf.uint8, [None, None, None, 3])
        stylized = model.stylize_uint8(images)
        with tf.Session(config=config) as sess:
            sess.run(tf.global_variables_initializer())
            metadata = tf.RunMetadata()
            sess.run(stylized, {images: np.zeros((1, 24, 24, 3), np.uint8)},
                     options=tf.RunOptions(output_partition_graphs=True), run_metadata=metadata)
    return [node for graph in metadata.partition_graphs for node in graph.node]


def _optimized_op_types(config):
    return sorted(node.op for node in _optimized_nodes(config))


def test_inference_sessions_optimize_the_graph_in_one_round_to_the_same_graph():
    # session_config(inference=True) skips Grappler's second round, which must find nothing more to fuse or fold.
    assert _optimized_op_types(session_config(inference=True)) == _optimized_op_types(session_config())
