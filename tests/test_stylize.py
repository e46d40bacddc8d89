"""The Gatys method: both weight formats agree, the loss falls, frames, sizes, colours, styles, errors."""
import os

import numpy as np
import pytest
from PIL import Image

import gatys
import stylize
from helpers import BF16_FALLBACK, CPU_HAS_BF16, NO_BF16, usage_error, write_image_file
from images import read_image
from inference import color
from nets.loss_network import LossNetwork
from utils import UsageError, tf


@pytest.fixture(scope='module')
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp('gatys')
    return {'content': write_image_file(str(folder / 'content.jpg'), 30, 40, seed=3),
            'style': write_image_file(str(folder / 'style.png'), 50, 36, seed=4),
            'style2': write_image_file(str(folder / 'style2.jpg'), 20, 20, seed=5)}


def _args(images, weights, *extra):
    return stylize.parse_args(['--content', images['content'], '--style', images['style'],
                               '--loss_model_file', weights, '--max_size', '32', *extra])


def _loss_at_start(args):
    """Features targets and the loss of the start image under the given weights."""
    content = stylize.resize(stylize.read_image(args.content), 24, 32)
    style = stylize.read_image(args.style[0])
    features = LossNetwork('vgg_16', args.content_layers + args.style_layers, args.loss_model_file, 'vgg_16/fc')
    targets = gatys.compute_targets(features, content, [style], stylize.recipe_of(args))
    start = stylize.initial_image('noise', content, style, seed=1)
    with tf.Graph().as_default():
        image = tf.constant(start[None])
        loss_ops = gatys.build_losses(features.end_points(image), image, targets, stylize.recipe_of(args))
        init_fn = features.init_fn()
        with tf.Session() as sess:
            init_fn(sess)
            return targets, sess.run(loss_ops)


def test_npy_and_checkpoint_give_the_same_features_and_loss(images, vgg_checkpoint, vgg16_npy):
    (ckpt_content, [(_, ckpt_grams)]), ckpt_loss = _loss_at_start(_args(images, vgg_checkpoint))
    (npy_content, [(_, npy_grams)]), npy_loss = _loss_at_start(_args(images, vgg16_npy))
    # The formats' means differ in the third decimal (116.78 vs 116.779): equal to float precision, not bits.
    for a, b in zip(ckpt_content + ckpt_grams, npy_content + npy_grams):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-3 * np.abs(a).max())
    for key in ('total', 'content', 'style'):
        np.testing.assert_allclose(ckpt_loss[key], npy_loss[key], rtol=1e-3)


class RecordingProgress(stylize.Progress):
    def __init__(self, *args):
        super().__init__(*args)
        self.totals = []

    def update(self, step, values, pixels=None):
        self.totals.append(float(values['total']))
        # The weighted terms shown add up to the total.
        assert abs(values['content'] + values['style'] + values['tv'] - values['total']) <= 1e-5 * values['total']
        super().update(step, values, pixels)


@pytest.mark.parametrize('optimizer', ['adam', 'lbfgs'])
def test_loss_falls(images, vgg_checkpoint, optimizer, tmp_path):
    args = _args(images, vgg_checkpoint, '--optimizer', optimizer, '--iterations', '6', '--init', 'noise')
    content = stylize.resize(stylize.read_image(args.content), 24, 32)
    features = LossNetwork('vgg_16', args.content_layers + args.style_layers, args.loss_model_file, 'vgg_16/fc')
    targets = gatys.compute_targets(features, content, [stylize.read_image(args.style[0])], stylize.recipe_of(args))
    progress = RecordingProgress(args.iterations, {}, None)
    start = stylize.initial_image('noise', content, content, seed=0)
    result, final = gatys.optimize(features, start, targets, stylize.recipe_of(args), progress, args.optimizer,
                                     args.iterations, args.learning_rate)
    assert len(progress.totals) >= 3
    assert final['total'] < 0.5 * progress.totals[0]
    assert result.shape == (24, 32, 3)


def test_frames_are_written_at_the_requested_steps(images, vgg_checkpoint, tmp_path):
    frames = tmp_path / 'frames'
    stylize.main(['--content', images['content'], '--style', images['style'], '--loss_model_file', vgg_checkpoint,
                  '--max_size', '24', '--optimizer', 'adam', '--iterations', '5', '--save_every', '2',
                  '--frames_dir', str(frames), '--output', str(tmp_path / 'out.png')])
    assert sorted(os.listdir(frames)) == ['res_2.jpg', 'res_4.jpg']
    assert Image.open(frames / 'res_2.jpg').size == (24, 18)


@pytest.mark.parametrize('extra,size', [
    ([], (24, 32)),                                   # --max_size 32 on a 40 x 30 photo
    (['--width', '40', '--height', '20'], (20, 40)),  # any aspect ratio
    (['--width', '36'], (27, 36)),                    # one side keeps the aspect ratio
    (['--height', '20'], (20, 27)),
])
def test_output_has_the_requested_size(images, vgg_checkpoint, tmp_path, extra, size):
    output = str(tmp_path / 'out.png')
    stylize.main(['--content', images['content'], '--style', images['style'], '--loss_model_file', vgg_checkpoint,
                  '--max_size', '32', '--iterations', '2', '--output', output, *extra])
    assert np.asarray(Image.open(output)).shape == size + (3,)


def test_preserve_colors_keeps_the_contents_chroma(images, vgg_checkpoint, tmp_path):
    output = str(tmp_path / 'out.png')
    stylize.main(['--content', images['content'], '--style', images['style'], '--loss_model_file', vgg_checkpoint,
                  '--max_size', '40', '--iterations', '3', '--init', 'style', '--preserve_colors', '--output', output])
    result = color.rgb_to_ycbcr(np.asarray(Image.open(output)))
    content = color.rgb_to_ycbcr(stylize.read_image(images['content']))
    assert np.abs(result[..., 1:] - content[..., 1:]).mean() < 1.5  # only rounding and clipping to 0..255
    assert np.abs(result[..., 0] - content[..., 0]).mean() > 5      # the luminance is the stylized one


def test_luminance_transfer_round_trips_and_matches_pillows_ycbcr():
    rgb = np.random.default_rng(0).integers(0, 256, (8, 8, 3)).astype(np.float64)
    np.testing.assert_allclose(color.ycbcr_to_rgb(color.rgb_to_ycbcr(rgb)), rgb, atol=1e-9)
    np.testing.assert_array_equal(color.transfer_luminance(rgb, rgb), rgb.astype(np.uint8))
    # An independent definition: Pillow's own RGB -> YCbCr (JPEG's full-range ITU-R BT.601), in whole numbers.
    pillows = np.asarray(Image.fromarray(rgb.astype(np.uint8)).convert('YCbCr'), np.float64)
    assert np.abs(color.rgb_to_ycbcr(rgb) - pillows).max() <= 1.0
    # And by hand: pure red is Y = 0.299 * 255, Cb = 128 - 0.168736 * 255, Cr = 128 + 0.5 * 255.
    np.testing.assert_allclose(color.rgb_to_ycbcr(np.array([255.0, 0, 0])), [76.245, 84.972, 255.5], atol=1e-3)


def test_blended_styles_blend_the_gram_matrices(images, vgg_checkpoint):
    args = _args(images, vgg_checkpoint, '--style', images['style2'], '--style_blend', '0.7,0.3')
    features = LossNetwork('vgg_16', args.content_layers + args.style_layers, vgg_checkpoint, 'vgg_16/fc')
    content = stylize.read_image(images['content'])
    styles = [stylize.read_image(p) for p in args.style]
    _, [(_, blended)] = gatys.compute_targets(features, content, styles, stylize.recipe_of(args))
    args.style_blend = None
    _, [(_, first)] = gatys.compute_targets(features, content, styles[:1], stylize.recipe_of(args))
    _, [(_, second)] = gatys.compute_targets(features, content, styles[1:], stylize.recipe_of(args))
    for mix, a, b in zip(blended, first, second):
        np.testing.assert_allclose(mix, 0.7 * a + 0.3 * b, rtol=1e-5, atol=1e-6 * np.abs(mix).max())


def test_noise_start_is_the_classic_truncated_normal():
    noise = stylize.initial_image('noise', np.zeros((64, 64, 3), np.uint8), None, seed=3)
    assert noise.min() >= 127.5 - 40 and noise.max() <= 127.5 + 40
    assert abs(noise.mean() - 127.5) < 1 and 15 < noise.std() < 20


class _Exploit:
    def __reduce__(self):
        return (os.system, ('touch PWNED',))


def test_hostile_npy_is_refused_without_running_code(tmp_path, monkeypatch, images):
    monkeypatch.chdir(tmp_path)
    np.save('evil.npy', np.array({'conv1_1': _Exploit()}, dtype=object), allow_pickle=True)
    with pytest.raises(UsageError, match=r'evil.npy is not a VGG-16 npy dict .*refused to load (posix|os)\.system'):
        LossNetwork('vgg_16', ['vgg_16/conv1/conv1_2'], 'evil.npy').load_weights()
    assert not os.path.exists('PWNED')


def test_errors(images, vgg_checkpoint, trained_model, tmp_path, capsys):
    base = ['--content', images['content'], '--style', images['style'], '--loss_model_file', vgg_checkpoint,
            '--max_size', '32', '--output', str(tmp_path / 'o.jpg')]
    text = tmp_path / 'weights.npy'
    text.write_text('not numpy')
    plain = tmp_path / 'plain.npy'
    np.save(plain, np.zeros(3))
    white = str(tmp_path / 'white.png')
    Image.new('L', (40, 30), 255).save(white)
    cases = [
        (['--content', 'nope.jpg'], 'content image not found: nope.jpg'),
        (['--style', images['content'] + '.missing'], 'style image not found'),
        (['--style', str(text)], 'style image is not a readable image'),
        (['--loss_model_file', str(text)], 'weights.npy is not a VGG-16 npy dict'),
        (['--loss_model_file', str(plain)], 'plain.npy is not a VGG-16 npy dict (layer name -> [weights, biases]) '
                                            'or a slim vgg_16.ckpt: a plain float64 array'),
        (['--loss_model_file', trained_model + '/fast-style-model.ckpt-done'], 'is not a vgg_16 checkpoint'),
        (['--loss_model_file', str(tmp_path / 'none.ckpt')], 'VGG weights not found'),
        (['--style_layers', 'vgg_16/conv1/conv1_2,vgg_16/conv6/conv6_1'],
         "unknown layer 'vgg_16/conv6/conv6_1' for loss model vgg_16 (valid: vgg_16/conv1/conv1_1"),
        (['--content_layers', 'conv4_2'], "unknown layer 'conv4_2'"),
        (['--max_size', '-5'], '--max_size must be positive, got -5'),
        (['--width', '0'], '--width must be positive'),
        (['--iterations', '0'], '--iterations must be positive'),
        (['--style_weight', '-1'], '--style_weight must be a non-negative number'),
        (['--learning_rate', '0'], '--learning_rate must be a positive number'),
        (['--style_blend', '0.5,0.5'], '--style_blend needs 1 non-negative weight, not all zero'),
        (['--max_size', '12'], 'the result (12x9) is too small for vgg_16/conv5/conv5_3: it needs at least 16 pixels'),
        (['--style_scale', '0.3'], 'the resized style image (7x10) is too small'),
        (['--style_blend', 'a,b'], "expected comma-separated finite numbers, got 'a,b'"),
        (['--style_layer_weights', '1,2'], '--style_layer_weights needs 5 non-negative weights'),
        (['--save_every', '-1'], '--save_every must be 0 (off) or positive'),
        (['--output', 'x.docx'], "unknown image extension '.docx'"),
        (['--mask', 'sky=' + images['content']], '--mask sky is not a style of the style images: it holds 1 style'),
        (['--mask', images['style']], 'is 36x50, not the shape of %s (40x30)' % images['content']),
        (['--mask', 'photo=' + white], 'the masks leave no pixel to style'),
    ]
    for extra, message in cases:
        assert message in usage_error(stylize.main, base + extra, capsys), extra


def test_npy_without_all_conv_layers_is_refused(tmp_path, vgg16_npy):
    layers = np.load(vgg16_npy, allow_pickle=True).item()
    del layers['conv5_3']
    np.save(tmp_path / 'partial.npy', layers, allow_pickle=True)
    with pytest.raises(UsageError, match=r'partial.npy is not a VGG-16 npy dict: 2 of its 26 variables are missing, '
                                         r'e.g. vgg_16/conv5/conv5_3/biases'):
        LossNetwork('vgg_16', ['vgg_16/conv1/conv1_2'], str(tmp_path / 'partial.npy')).load_weights()


def test_precision_bf16_runs_vgg_in_bfloat16_where_the_cpu_has_it(images, vgg_checkpoint, monkeypatch, caplog):
    finals = {}
    for precision, told_no_bf16 in (('fp32', False), ('bf16', False), ('bf16', True)):
        if told_no_bf16:
            monkeypatch.setenv(*next(iter(NO_BF16.items())))
        args = _args(images, vgg_checkpoint, '--iterations', '2', '--optimizer', 'adam', '--precision', precision)
        finals[precision, told_no_bf16] = stylize.stylize(args)[1]['total']
    float32, bfloat16 = finals['fp32', False], finals['bf16', False]
    if CPU_HAS_BF16:  # the same run in bfloat16 lands close to float32 but not on it: the reduced graph ran
        assert bfloat16 != float32 and abs(bfloat16 - float32) < 0.05 * abs(float32)
    else:
        assert bfloat16 == float32
    assert finals['bf16', True] == float32 and BF16_FALLBACK in caplog.messages


def test_masks_give_each_region_its_style_and_keep_the_photo(images, vgg_checkpoint, tmp_path):
    left = np.zeros([30, 40], np.uint8)
    left[:, :20] = 255
    for name, values in (('left', left), ('right', 255 - left), ('white', np.full_like(left, 255))):
        Image.fromarray(values).save(tmp_path / (name + '.png'))

    def run(name, *options):
        stylize.main(['--content', images['content'], '--style', images['style'], '--style', images['style2'],
                      '--loss_model_file', vgg_checkpoint, '--iterations', '4', '--init', 'noise', '--max_size', '40',
                      '--content_weight', '0', '--style_weight', '1000', '--output',
                      str(tmp_path / (name + '.png')), *options])
        return read_image(str(tmp_path / (name + '.png'))).astype(int)
    first, second = run('first', '--style_blend', '1,0'), run('second', '--style_blend', '0,1')
    assert np.abs(run('all', '--mask', 'style=' + str(tmp_path / 'white.png')) - first).max() <= 1
    split = run('split', '--mask', 'style=' + str(tmp_path / 'left.png'), '--mask', '1=' + str(tmp_path / 'right.png'))
    assert np.abs(split[:, :16] - first[:, :16]).mean() < np.abs(split[:, :16] - second[:, :16]).mean()
    assert np.abs(split[:, 24:] - second[:, 24:]).mean() < np.abs(split[:, 24:] - first[:, 24:]).mean()
    kept = run('kept', '--style_blend', '1,0', '--mask', 'photo=' + str(tmp_path / 'left.png'))
    np.testing.assert_array_equal(kept[:, :20], read_image(images['content'])[:, :20])


def test_stages_run_coarse_to_fine_and_resume_after_the_last_kept_stage(images, vgg_checkpoint, tmp_path,
                                                                        monkeypatch, caplog, capsys):
    caplog.set_level('INFO')
    run = ['--content', images['content'], '--style', images['style'], '--loss_model_file', vgg_checkpoint,
           '--sizes', '24,32,40', '--iterations', '3,2,2', '--stage_dir', str(tmp_path / 'stages')]
    optimize, started = gatys.optimize, []

    def recorded(features, start, *rest, **options):
        started.append(start.copy())
        return optimize(features, start, *rest, **options)
    monkeypatch.setattr(gatys, 'optimize', recorded)
    stylize.main(run + ['--output', str(tmp_path / 'whole.png')])
    assert [start.shape for start in started] == [(18, 24, 3), (24, 32, 3), (30, 40, 3)]
    kept = sorted(os.listdir(tmp_path / 'stages'))
    assert [name.split('-')[:3] for name in kept] == [['content', 'stage1', '24px'], ['content', 'stage2', '32px']]
    # Each stage starts from the one before, upscaled.
    np.testing.assert_array_equal(started[2], stylize.resize(read_image(str(tmp_path / 'stages' / kept[1])), 30, 40))
    assert 'stage 2 of 3: 32x24, 2 lbfgs iterations in' in caplog.text
    run[-1] = str(tmp_path / 'other_stages')

    def stopped(*_args, **_options):
        raise KeyboardInterrupt
    started.clear()
    monkeypatch.setattr(gatys, 'optimize', lambda *args, **options: (
        recorded(*args, **options) if len(started) < 2 else stopped()))
    with pytest.raises(SystemExit):  # stopped in stage 3: stages 1 and 2 are kept, no result
        stylize.main(run + ['--output', str(tmp_path / 'again.png')])
    assert not (tmp_path / 'again.png').exists() and len(os.listdir(tmp_path / 'other_stages')) == 2
    started.clear()
    monkeypatch.setattr(gatys, 'optimize', recorded)
    stylize.main(run + ['--output', str(tmp_path / 'again.png')])
    assert [start.shape for start in started] == [(30, 40, 3)] and 'resuming after stage 2 of 3' in caplog.text
    np.testing.assert_allclose(read_image(str(tmp_path / 'again.png')), read_image(str(tmp_path / 'whole.png')),
                               atol=1)
    started.clear()  # another setting is another run: nothing is taken up
    stylize.main(run + ['--output', str(tmp_path / 'again.png'), '--overwrite', '--style_weight', '20'])
    assert len(started) == 3
    for kept in (tmp_path / 'other_stages').glob('*stage2*'):  # a kept stage spoilt since: one line, the fix
        kept.write_bytes(kept.read_bytes()[:100])
    capsys.readouterr()  # the progress bars of the runs before
    error = usage_error(stylize.main, run + ['--output', str(tmp_path / 'third.png')], capsys)
    assert 'is not a readable image' in error and 'delete it, and the run does that stage again' in error
    assert not (tmp_path / 'third.png').exists()


def test_bad_stages_are_one_line_before_any_work(images, vgg_checkpoint, tmp_path, capsys):
    base = ['--content', images['content'], '--style', images['style'], '--loss_model_file', vgg_checkpoint,
            '--output', str(tmp_path / 'o.png'), '--stage_dir', str(tmp_path / 'stages')]
    for extra, message in [
            (['--sizes', '32,24'], '--sizes must grow from stage to stage, coarse to fine, e.g. 512,1024,2048; got '
                                   '32,24'),
            (['--sizes', '32,32'], '--sizes must grow'),
            (['--sizes', '0,32'], '--sizes must grow'),
            (['--sizes', ''], 'argument --sizes: an empty value'),
            (['--sizes', '24,x'], "expected comma-separated whole numbers, got '24,x'"),
            (['--sizes', '24,32', '--max_size', '32'], '--sizes gives the long side of every stage'),
            (['--sizes', '24,32', '--iterations', '1,2,3'], 'one per stage of --sizes (2), got 1,2,3'),
            (['--iterations', '1,2'], '--iterations takes one count (several are for the stages of --sizes)'),
            (['--sizes', '24,32', '--iterations', '2,0'], '--iterations must be positive, got 2,0'),
            (['--sizes', '24,32', '--save_every', '1'], '--save_every writes the frames of a run of one size'),
            (['--sizes', '12,32'], 'the result (12x9) is too small for vgg_16/conv5/conv5_3'),
            (['--sizes', '24,20000', '--max_memory', '4'], 'over --max_memory 4; a long side of at most'),
    ]:
        assert message in usage_error(stylize.main, base + extra, capsys), extra
    assert not os.path.exists(tmp_path / 'stages') and not os.path.exists(tmp_path / 'o.png')
    fits = usage_error(stylize.main, base + ['--sizes', '24,20000', '--max_memory', '4'], capsys)
    side = int(fits.split('a long side of at most ')[1].split()[0])
    stylize.plan_sizes(images['content'], [images['style']], side, None, None, 1.0, 4e9)  # the size named fits
    with pytest.raises(UsageError, match='over --max_memory 4'):
        stylize.plan_sizes(images['content'], [images['style']], round(side * 1.02), None, None, 1.0, 4e9)
