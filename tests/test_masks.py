"""Styles by region: masks that say which style goes where, for networks of several styles, of one style and
Magenta's arbitrary-style network, whole and tiled, for a photo, a folder and a video."""
import base64
import io
import json
import os
import re

import numpy as np
import pytest
from PIL import Image

import checkpoints
import eval as eval_py
import export
import model
from helpers import (NEEDS_CHROMIUM, eval_pixels, make_video, multipart, request, service_page, start_server,
                     usage_error, write_image_file)
from images import read_image
from inference import masks
from inference.stylizer import Stylizer

HEIGHT, WIDTH = 40, 52


@pytest.fixture(scope='module')
def models(tmp_path_factory):
    """A random network of two styles (wave, scream) and one of one style."""
    folder = tmp_path_factory.mktemp('models')
    return {'two': checkpoints.save_random_model(str(folder / 'two.ckpt'), seed=4, styles=2, names=['wave', 'scream']),
            'one': checkpoints.save_random_model(str(folder / 'one.ckpt'), seed=2)}


def _grey(path, values):
    Image.fromarray(np.asarray(values, np.uint8)).save(path)
    return str(path)


@pytest.fixture(scope='module')
def files(tmp_path_factory):
    """A photo, masks of its left and right halves, a grey one, and a few style images."""
    folder = tmp_path_factory.mktemp('masks')
    left = np.zeros([HEIGHT, WIDTH], np.uint8)
    left[:, :WIDTH // 2] = 255
    return {'photo': write_image_file(str(folder / 'photo.png'), HEIGHT, WIDTH, seed=5),
            'left': _grey(folder / 'left.png', left), 'right': _grey(folder / 'right.png', 255 - left),
            'grey': _grey(folder / 'grey.png', np.full([HEIGHT, WIDTH], 128)),
            'half_size': _grey(folder / 'half.png', left[::2, ::2]),
            'black': _grey(folder / 'black.png', np.zeros([HEIGHT, WIDTH])),
            'white': _grey(folder / 'white.png', np.full([HEIGHT, WIDTH], 255)),
            'square': _grey(folder / 'square.png', np.full([HEIGHT, HEIGHT], 255)),
            'sky': write_image_file(str(folder / 'sky.png'), 64, 64, seed=7),
            'sea': write_image_file(str(folder / 'sea.png'), 64, 64, seed=8),
            'folder': str(folder)}


def test_a_constant_map_gives_the_style_or_the_mix_of_the_whole_image(models, arbitrary_stylizer, files):
    photo = read_image(files['photo'])
    two = Stylizer(models['two'])
    for shares in ([1, 0], [0.3, 0.7]):
        style_map = model.StyleMap(np.eye(2, dtype=np.float32), np.broadcast_to(np.float32(shares), (HEIGHT, WIDTH, 2)))
        whole = two(photo, style=np.float32(shares)).astype(int)
        assert np.abs(two(photo, style=style_map) - whole).max() <= 1
    two.close()
    sky, sea = (arbitrary_stylizer.embed(read_image(files[name]), 256) for name in ('sky', 'sea'))
    style_map = model.StyleMap(np.stack([sky, sea]), np.broadcast_to(np.float32([0, 1]), (HEIGHT, WIDTH, 2)))
    whole = arbitrary_stylizer(photo, style=sea).astype(int)
    assert np.abs(arbitrary_stylizer(photo, style=style_map) - whole).max() <= 1


def test_each_side_takes_its_style_and_photo_regions_the_photo(models, files, tmp_path):
    wave, scream = (eval_pixels(models['two'], files['photo'], tmp_path / (name + '.png'), '--style', name)
                    for name in ('wave', 'scream'))
    split = eval_pixels(models['two'], files['photo'], tmp_path / 'split.png', '--mask', 'wave=' + files['left'],
                        '--mask', 'scream=' + files['right'])
    left, right = slice(None, WIDTH // 2 - 4), slice(WIDTH // 2 + 4, None)
    assert np.abs(split[:, left] - wave[:, left]).mean() < np.abs(split[:, left] - scream[:, left]).mean()
    assert np.abs(split[:, right] - scream[:, right]).mean() < np.abs(split[:, right] - wave[:, right]).mean()
    # a mask of another size but the same shape is resized to the photo
    resized = eval_pixels(models['two'], files['photo'], tmp_path / 'resized.png', '--mask',
                          'wave=' + files['half_size'], '--mask', 'scream=' + files['right'])
    assert np.abs(resized[:, left] - split[:, left]).mean() < 10
    np.testing.assert_array_equal(eval_pixels(models['two'], files['photo'], tmp_path / 'all.png', '--mask',
                                              '1=' + files['white']), scream)  # by index too
    # photo masks alone: the rest in --style's style, exactly; the photo's region the photo, exactly
    kept = eval_pixels(models['two'], files['photo'], tmp_path / 'kept.png', '--style', 'wave', '--mask',
                       'photo=' + files['left'])
    np.testing.assert_array_equal(kept[:, :WIDTH // 2], read_image(files['photo'])[:, :WIDTH // 2])
    np.testing.assert_array_equal(kept[:, WIDTH // 2:], wave[:, WIDTH // 2:])


def test_one_style_masks_are_a_strength_per_pixel(models, files, tmp_path):
    photo = read_image(files['photo']).astype(int)
    whole = eval_pixels(models['one'], files['photo'], tmp_path / 'whole.png')
    right = eval_pixels(models['one'], files['photo'], tmp_path / 'right.png', '--mask', files['right'])
    np.testing.assert_array_equal(right[:, :WIDTH // 2], photo[:, :WIDTH // 2])
    np.testing.assert_array_equal(right[:, WIDTH // 2:], whole[:, WIDTH // 2:])
    grey = eval_pixels(models['one'], files['photo'], tmp_path / 'grey.png', '--mask', files['grey'])
    assert np.abs(grey - (whole + photo) / 2).max() <= 1


def test_magenta_regions_take_their_style_images_and_the_photo_its_own_style(arbitrary_checkpoint, files, tmp_path):
    def run(name, *options):
        return eval_pixels(arbitrary_checkpoint, files['photo'], tmp_path / (name + '.png'), *options)
    sky, sea = run('sky', '--style_image', files['sky']), run('sea', '--style_image', files['sea'])
    split = run('split', '--style_image', files['sky'], files['sea'], '--mask', 'sky=' + files['left'],
                '--mask', '1=' + files['right'])
    left, right = slice(None, WIDTH // 2 - 4), slice(WIDTH // 2 + 4, None)
    assert np.abs(split[:, left] - sky[:, left]).mean() < np.abs(split[:, left] - sea[:, left]).mean() / 2
    assert np.abs(split[:, right] - sea[:, right]).mean() < np.abs(split[:, right] - sky[:, right]).mean() / 2
    own = run('own', '--style_image', files['sky'], '--style_strength', '0')
    kept = run('kept', '--style_image', files['sky'], '--mask', 'photo=' + files['left'])
    assert np.abs(kept[:, left] - own[:, left]).mean() < np.abs(kept[:, left] - sky[:, left]).mean() / 2


def test_tiled_equals_whole_with_masks(models, arbitrary_checkpoint, tmp_path):
    photo = write_image_file(str(tmp_path / 'big.png'), 84, 100, seed=3)
    ramp = np.tile(np.linspace(0, 255, 100), (84, 1))
    sky, sea = _grey(tmp_path / 'sky.png', ramp), _grey(tmp_path / 'sea.png', 255 - ramp)
    style = write_image_file(str(tmp_path / 'style.png'), 64, 64, seed=8)
    for model_file, options in ((models['two'], ['--mask', 'wave=' + sky, '--mask', 'scream=' + sea]),
                                (arbitrary_checkpoint, ['--style_image', style, '--mask', sky])):
        whole = eval_pixels(model_file, photo, tmp_path / 'whole.png', '--overwrite', *options)
        tiled = eval_pixels(model_file, photo, tmp_path / 'tiled.png', '--overwrite', '--max_pixels', '4096', *options)
        assert np.abs(whole - tiled).max() <= 1


def test_a_folder_of_masks_by_the_photos_names(models, files, tmp_path):
    for name in ('a.png', 'sub/b.jpg'):
        write_image_file(str(tmp_path / 'photos' / name), HEIGHT, WIDTH, seed=len(name))
    os.makedirs(tmp_path / 'masks' / 'sub')
    _grey(tmp_path / 'masks' / 'a.png', np.asarray(Image.open(files['left'])))
    Image.open(files['right']).convert('RGB').save(tmp_path / 'masks' / 'sub' / 'b.jpg')
    eval_py.main(['--model_file', models['one'], '--image_file', str(tmp_path / 'photos'), '--output',
                  str(tmp_path / 'out') + '/', '--mask', str(tmp_path / 'masks')])
    single = eval_pixels(models['one'], str(tmp_path / 'photos' / 'a.png'), tmp_path / 'single.png', '--mask',
                         files['left'])
    np.testing.assert_array_equal(read_image(str(tmp_path / 'out' / 'a.png')), single)
    b = read_image(str(tmp_path / 'out' / 'sub' / 'b.jpg')).astype(int)
    photo_b = read_image(str(tmp_path / 'photos' / 'sub' / 'b.jpg')).astype(int)
    assert np.abs(b[:, :20] - photo_b[:, :20]).mean() < np.abs(b[:, -20:] - photo_b[:, -20:]).mean() / 5


def test_a_missing_mask_in_a_folder_is_named_before_anything_is_written(models, files, tmp_path, capsys):
    for name in ('a.png', 'b.png', 'c.png'):
        write_image_file(str(tmp_path / 'photos' / name), HEIGHT, WIDTH)
    os.makedirs(tmp_path / 'masks')
    _grey(tmp_path / 'masks' / 'b.png', np.asarray(Image.open(files['left'])))
    argv = ['--model_file', models['one'], '--image_file', str(tmp_path / 'photos'), '--output',
            str(tmp_path / 'out') + '/', '--mask', str(tmp_path / 'masks')]
    err = usage_error(eval_py.main, argv, capsys)
    assert 'no mask for %s in %s' % (tmp_path / 'photos' / 'a.png', tmp_path / 'masks') in err
    assert 'c.png' in err and not os.path.exists(tmp_path / 'out')


@pytest.mark.parametrize('options,message', [
    (['--mask', 'wave={square}'], "is 40x40, not the shape of"),
    (['--mask', 'wave={photo}.missing'], 'mask not found'),
    (['--mask', 'wave={broken}'], 'mask is not a readable image'),
    (['--mask', 'wave={bomb}'], 'is too large: 10000x8000 is over the limit of 50000000 pixels'),
    (['--mask', 'sky={left}'], '--mask sky is not a style of'),
    (['--mask', '{left}'], 'choose one with --style NAME'),
    (['--mask', 'wave={black}'], 'covers no pixel of the photo'),
    (['--style', 'wave', '--mask', 'photo={white}'], 'the masks leave no pixel to style'),
    (['--mask', 'wave={left}', '--mask', 'wave={right}'], '--mask wave is given twice'),
    (['--style', 'wave', '--mask', 'scream={left}'], 'every --mask here names its style'),
    (['--mask', 'wave='], 'names no mask image'),
    (['--mask', ''], 'an empty value'),
    (['--mask', 'wave={left}', '--overwrite', '--output', '{left}'], 'is the input'),
])
def test_bad_masks_are_one_line_before_anything_is_written(models, files, tmp_path, capsys, options, message):
    paths = dict(files, broken=str(tmp_path / 'broken.png'), bomb=str(tmp_path / 'bomb.png'))
    with open(paths['broken'], 'wb') as f:
        f.write(b'not an image')
    if '{bomb}' in ''.join(options):
        Image.new('L', (10000, 8000)).save(paths['bomb'])  # 80 KB
    argv = ['--model_file', models['two'], '--image_file', files['photo'], '--output', str(tmp_path / 'out.png')]
    err = usage_error(eval_py.main, argv + [option.format(**paths) for option in options], capsys)
    assert message in err
    assert not os.path.exists(tmp_path / 'out.png')


def _frames(path):
    import imageio_ffmpeg
    return [np.frombuffer(data, np.uint8).reshape(HEIGHT, WIDTH, 3).astype(int)
            for data in list(imageio_ffmpeg.read_frames(str(path)))[1:]]


def test_a_video_takes_one_mask_or_a_mask_video(models, files, tmp_path, capsys):
    imageio_ffmpeg = pytest.importorskip('imageio_ffmpeg')
    clip = str(tmp_path / 'clip.mp4')
    make_video(clip, seconds=1, size=(WIDTH, HEIGHT))
    writer = imageio_ffmpeg.write_frames(str(tmp_path / 'mask.mp4'), (WIDTH, HEIGHT), fps=10, macro_block_size=1,
                                         codec='libx264', quality=10, ffmpeg_log_level='error')
    writer.send(None)
    for _ in range(10):  # the right half, as files['right'], frame after frame
        writer.send(np.repeat(np.asarray(Image.open(files['right']))[..., None], 3, -1).copy())
    writer.close()
    argv = ['--model_file', models['one'], '--video', clip, '--output']
    eval_py.main(argv + [str(tmp_path / 'masked.mp4'), '--mask', files['right']])
    eval_py.main(argv + [str(tmp_path / 'moving.mp4'), '--mask', str(tmp_path / 'mask.mp4')])
    eval_py.main(argv + [str(tmp_path / 'whole.mp4')])
    frames = [_frames(tmp_path / name) for name in ('masked.mp4', 'moving.mp4', 'whole.mp4')]
    for masked, moving, whole, original in zip(*frames, _frames(clip)):
        assert np.abs(masked[:, :20] - original[:, :20]).mean() < np.abs(whole[:, :20] - original[:, :20]).mean() / 3
        assert np.abs(masked[:, -20:] - whole[:, -20:]).mean() < 4
        assert np.abs(moving - masked).mean() < 3
    capsys.readouterr()
    err = usage_error(eval_py.main, argv + [str(tmp_path / 'folder.mp4'), '--mask', files['folder']], capsys)
    assert 'a video takes one mask image per style, not a folder' in err
    short = str(tmp_path / 'short.mp4')
    make_video(short, seconds=1, fps=3, size=(WIDTH, HEIGHT))
    err = usage_error(eval_py.main, argv + [str(tmp_path / 'short_out.mp4'), '--mask', short], capsys)
    assert 'mask video %s has 3 frames, fewer than the 10 of %s' % (short, clip) in err
    assert not os.path.exists(tmp_path / 'short_out.mp4')


def test_regions_normalize_and_keep_the_rest_for_the_photo():
    sky = np.float32([[1, 0.5, 0, 0]])
    ground = np.float32([[1, 0, 0, 0.25]])
    found = masks.regions([masks.Mask('sky', 's'), masks.Mask('ground', 'g')], [sky, ground])
    assert found.keys == ('sky', 'ground')
    np.testing.assert_allclose(found.shares[0, :, 0], [0.5, 0.5, 0, 0])
    np.testing.assert_allclose(found.photo[0], [0, 0.5, 1, 0.75])
    np.testing.assert_allclose(found.shares.sum(-1) + found.photo, 1)
    only_photo = masks.regions([masks.Mask('photo', 'p')], [np.float32([[1, 0.25]])])
    assert only_photo.keys == (None,)
    np.testing.assert_allclose(only_photo.shares[..., 0], [[0, 0.75]])
    assert masks.parse_mask('wave=a=b.png') == ('wave', 'a=b.png')
    assert masks.parse_mask('./x=1.png') == (None, './x=1.png')
    assert masks.parse_mask('sky.png') == (None, 'sky.png')


@pytest.fixture(scope='module')
def server(models, arbitrary_checkpoint):
    process, url = start_server('--model', 'two=' + models['two'], '--model', 'one=' + models['one'], '--model',
                                'any=' + arbitrary_checkpoint, '--max_image_pixels', '40000')
    yield url
    process.terminate()
    process.wait(30)


def _file(path):
    with open(path, 'rb') as f:
        return f.read()


def _answer(status_headers_body):
    status, _, body = status_headers_body
    assert status == 200, body[:300]
    return np.asarray(Image.open(io.BytesIO(body))).astype(int)


def test_the_service_takes_masks_in_multipart_and_json(server, models, arbitrary_checkpoint, files, tmp_path):
    photo = _file(files['photo'])
    split = _answer(request(server + '/v1/stylize/two?format=png', *multipart(**{
        'image': photo, 'mask:wave': _file(files['left']), 'mask:scream': _file(files['right'])})))
    expected = eval_pixels(models['two'], files['photo'], tmp_path / 'split.png', '--mask', 'wave=' + files['left'],
                           '--mask', 'scream=' + files['right'])
    np.testing.assert_array_equal(split, expected)
    payload = {'image': base64.b64encode(photo).decode(), 'format': 'png', 'mask': {
        name: base64.b64encode(_file(files[side])).decode() for name, side in (('wave', 'left'), ('scream', 'right'))}}
    status, _, body = request(server + '/v1/stylize/two/base64', json.dumps(payload).encode(),
                              {'Content-Type': 'application/json'})
    assert status == 200 and base64.b64decode(json.loads(body)['image']) == _file(tmp_path / 'split.png')
    one = _answer(request(server + '/v1/stylize/one?format=png', *multipart(image=photo, mask=_file(files['right']))))
    np.testing.assert_array_equal(one, eval_pixels(models['one'], files['photo'], tmp_path / 'one.png', '--mask',
                                                   files['right']))
    kept = _answer(request(server + '/v1/stylize/any?format=png', *multipart(**{
        'image': photo, 'style_image': _file(files['sky']), 'mask:photo': _file(files['left'])})))
    np.testing.assert_array_equal(kept, eval_pixels(arbitrary_checkpoint, files['photo'], tmp_path / 'kept.png',
                                                    '--style_image', files['sky'], '--mask', 'photo=' + files['left']))


@pytest.mark.parametrize('model,fields,status,message', [
    ('two', {'mask:wave': 'square'}, 400, 'is 40x40, not the shape of the photo'),
    ('two', {'mask:sky': 'left'}, 400, 'mask sky is not a style of model two'),
    ('two', {'mask:wave': 'black'}, 400, 'covers no pixel of the photo'),
    ('two', {'mask:bad name': 'left'}, 400, "mask field 'mask:bad name' does not name a style"),
    ('two', {'mask:wave': 'broken'}, 415, 'mask:wave is not a JPEG, PNG or WebP image'),
    ('two', {'mask:wave': 'big'}, 413, 'mask:wave is too large'),
    ('two', {'mask': 'left'}, 400, 'model two holds 2 styles'),
    ('two', {'mask:wave': 'left', 'mask:0': 'right', 'mask:1': 'grey', 'mask:photo': 'left', 'mask:scream': 'left'},
     400, 'the request holds 5 masks; send at most 4'),
    ('one', {'mask:wave': 'left'}, 400, 'model one holds one style: give its mask without a name'),
    ('any', {'mask:sky': 'left'}, 400, 'model any takes one style image: send its mask as "mask"'),
])
def test_bad_masks_are_json_4xx(server, files, tmp_path, model, fields, status, message):
    Image.new('L', (260, 200), 255).save(tmp_path / 'big.png')
    contents = dict({name: _file(path) for name, path in files.items() if path.endswith('.png')},
                    broken=b'not an image', big=_file(tmp_path / 'big.png'))
    body = {'image': _file(files['photo']), **({'style_image': contents['sky']} if model == 'any' else {}),
            **{field: contents[name] for field, name in fields.items()}}
    answer = request(server + '/v1/stylize/%s?format=png' % model, *multipart(**body))
    assert answer[0] == status and message in json.loads(answer[2])['error'], answer[2][:300]


def test_a_json_mask_must_be_base64_or_an_object_of_them(server, files):
    for mask in (5, ['a'], {'wave': 5}):
        payload = json.dumps({'image': base64.b64encode(_file(files['photo'])).decode(), 'mask': mask}).encode()
        status, _, body = request(server + '/v1/stylize/two/base64', payload, {'Content-Type': 'application/json'})
        assert status == 400 and '"mask" must be a base64 string of a mask image' in json.loads(body)['error']


@NEEDS_CHROMIUM
def test_the_page_uploads_a_mask(server, models, files, tmp_path):
    expected = eval_pixels(models['one'], files['photo'], tmp_path / 'kept.png', '--mask', 'photo=' + files['left'])
    with service_page(server, 3) as (playwright_api, page):
        page.select_option('#model', 'one')
        page.set_input_files('#file', files['photo'])
        page.set_input_files('#mask_file', files['left'])
        page.select_option('#mask_for', 'mask:photo')
        page.click('#go')
        playwright_api.expect(page.locator('#status')).to_have_text(re.compile('^done in'))
        rgba = page.locator('#result').evaluate('''image => {
            const canvas = document.createElement('canvas');
            [canvas.width, canvas.height] = [image.naturalWidth, image.naturalHeight];
            const context = canvas.getContext('2d');
            context.drawImage(image, 0, 0);
            return Array.from(context.getImageData(0, 0, canvas.width, canvas.height).data);
        }''')
    np.testing.assert_array_equal(np.reshape(rgba, (HEIGHT, WIDTH, 4))[..., :3], expected)


def test_the_frozen_graph_and_the_saved_model_take_a_mask_per_style(models, files, tmp_path):
    from utils import tf
    grey = np.stack([np.asarray(Image.open(files[side]), np.float32) / 255 for side in ('left', 'right')], -1)
    photo = read_image(files['photo'])
    for name, options, mask in (('two', ['--mask', 'wave=' + files['left'], '--mask', 'scream=' + files['right']],
                                 grey), ('one', ['--mask', files['right']], grey[..., 1:])):
        expected = eval_pixels(models[name], files['photo'], tmp_path / (name + '.png'), *options)
        export.main(['--model_file', models[name], '--output', str(tmp_path / (name + '.pb'))])
        export.main(['--model_file', models[name], '--format', 'savedmodel', '--output', str(tmp_path / name)])
        with tf.Graph().as_default(), tf.Session() as sess:
            graph_def = tf.GraphDef()
            graph_def.ParseFromString((tmp_path / (name + '.pb')).read_bytes())
            tf.import_graph_def(graph_def, name='')
            feed = {'input_image:0': photo.astype(np.int32).ravel(), 'height:0': HEIGHT, 'width:0': WIDTH}
            frozen = sess.run('output_image_by_region:0', dict(feed, **{'mask:0': mask.ravel()}))
            nan = sess.run('output_image_by_region:0', dict(feed, **{'mask:0': np.full(mask.size, np.nan)}))
        assert np.abs(frozen.reshape(HEIGHT, WIDTH, 3) - expected).max() <= 1
        np.testing.assert_array_equal(nan.reshape(HEIGHT, WIDTH, 3), photo)  # a non-finite share counts as 0
        with tf.Graph().as_default(), tf.Session() as sess:
            signature = tf.saved_model.loader.load(sess, ['serve'], str(tmp_path / name)).signature_def['by_region']
            saved = sess.run(signature.outputs['stylized'].name, {signature.inputs['image'].name: photo[None],
                                                                  signature.inputs['mask'].name: mask[None]})
        assert np.abs(saved[0].astype(int) - expected).max() <= 1



def test_batch_takes_a_mask_or_a_folder_of_them_as_eval_py_does(models, files, tmp_path, capsys):
    pytest.importorskip('apache_beam')
    import batch
    for name in ('a.png', 'sub/b.png', 'c.png'):
        write_image_file(str(tmp_path / 'photos' / name), HEIGHT, WIDTH, seed=len(name))
    os.makedirs(tmp_path / 'masks' / 'sub')
    for name, side in (('a.png', 'left'), ('sub/b.jpg', 'right')):  # none for c.png
        Image.open(files[side]).convert('RGB').save(tmp_path / 'masks' / name)
    with pytest.raises(SystemExit) as exit_info:
        batch.main(['--model_file', models['two'], '--input', str(tmp_path / 'photos'), '--output',
                    str(tmp_path / 'out'), '--style', 'scream', '--mask', 'photo=' + str(tmp_path / 'masks')])
    assert exit_info.value.code == 1  # c.png has no mask: a failure of its own, the others written
    with open(tmp_path / 'out' / 'batch_failures.jsonl') as f:
        assert 'no mask for c.png in %s' % (tmp_path / 'masks') in f.read()
    for name, mask in (('a.png', 'a.png'), ('sub/b.png', 'sub/b.jpg')):
        expected = eval_pixels(models['two'], str(tmp_path / 'photos' / name), tmp_path / 'eval.png', '--overwrite',
                               '--style', 'scream', '--mask', 'photo=' + str(tmp_path / 'masks' / mask))
        np.testing.assert_array_equal(read_image(str(tmp_path / 'out' / name)), expected)
    capsys.readouterr()
    err = usage_error(batch.main, ['--model_file', models['two'], '--input', str(tmp_path / 'photos'), '--output',
                                   str(tmp_path / 'other'), '--mask', 'sky=' + files['left']], capsys)
    assert '--mask sky is not a style of' in err and not os.path.exists(tmp_path / 'other')
    err = usage_error(batch.main, ['--model_file', models['two'], '--input', str(tmp_path / 'photos'), '--output',
                                   str(tmp_path / 'masks' / 'out'), '--mask', 'wave=' + str(tmp_path / 'masks')], capsys)
    assert 'overlap: a result could replace a mask' in err
