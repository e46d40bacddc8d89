"""Optimization-based style transfer (Gatys et al. 2015): the output image itself is optimized so that its
VGG-16 features match the content image's and its Gram matrices match the style image's.

  python stylize.py --content img/test.jpg --style img/wave.jpg --output wave-test.jpg

No training: each image takes a few minutes on a CPU at 512 pixels (seconds on a GPU).
"""
import argparse
import glob
import os
import resource
import time

import numpy as np
from PIL import Image
from tqdm import tqdm

from config import CONFIG_SCHEMA
from files import Outputs
import gatys
import style_names
from images import check_encodable, image_size, output_format, read_image
from inference import color, masks
from inference.options import add_mask_option
from nets import pretrained
from nets.loss_network import LossNetwork
from utils import (ArgumentParser, UsageError, add_colour_options, add_precision_option, cli_main, float_list,
                   int_list, log, run_and_exit, setup_logging, tf)

LOSS_MODEL = 'vgg_16'
VGG_URL = CONFIG_SCHEMA['loss_model_url'][1]  # slim's archive, as train.py downloads it
DEFAULT_CONTENT_LAYERS = 'vgg_16/conv4/conv4_2'
DEFAULT_STYLE_LAYERS = 'vgg_16/conv1/conv1_2,vgg_16/conv2/conv2_2,vgg_16/conv3/conv3_3,vgg_16/conv4/conv4_3,' \
                       'vgg_16/conv5/conv5_3'


def parse_args(argv):
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    io = parser.add_argument_group('images')
    io.add_argument('--content', required=True, help='the photo to restyle')
    io.add_argument('--style', required=True, action='append',
                    help='a style image; repeat the option to blend several styles')
    io.add_argument('--style_blend', type=float_list,
                    help='blend weights of the style images, e.g. 0.7,0.3 (default: equal)')
    io.add_argument('--output', default='generated/stylized.jpg', help='the result (default: %(default)s)')
    io.add_argument('--overwrite', action='store_true',
                    help='replace a result or frames that already exist (default: refuse, naming them)')
    io.add_argument('--max_size', type=int,
                    help='long side of the result in pixels, keeping the aspect ratio (default: 512)')
    io.add_argument('--sizes', type=int_list, metavar='S1,S2,...',
                    help='coarse to fine, for print sizes: the long side at each stage, growing, e.g. 512,1024,2048 '
                         '(the last is the result\'s); each stage starts from the one before, upscaled, with its '
                         'style image at --style_scale of its size (docs/GATYS.md)')
    io.add_argument('--stage_dir', default='generated/stages',
                    help='where --sizes keeps each finished stage, from which a stopped run resumes '
                         '(default: %(default)s)')
    io.add_argument('--width', type=int, help='width of the result (with --height, or alone keeping the aspect)')
    io.add_argument('--height', type=int, help='height of the result')
    io.add_argument('--style_scale', type=float, default=1.0,
                    help="style image size relative to the result's long side (default: %(default)s)")
    io.add_argument('--max_memory', type=float, default=DEFAULT_MAX_MEMORY_GB,
                    help='refuse sizes whose estimated peak memory is above this many GB; the estimate is about '
                         '0.85 GB plus 3.7 KB per result pixel (default: %(default)s, about 4 megapixels)')
    add_colour_options(io, strength=False)
    add_mask_option(io, "a --style's file name (without extension) or index")
    net = parser.add_argument_group('losses')
    net.add_argument('--loss_model_file', default='pretrained/vgg_16.ckpt',
                     help='slim vgg_16.ckpt (V1 or V2) or a vgg16.npy dict (default: %(default)s, downloaded there '
                          'on first use)')
    net.add_argument('--loss_model_url', default=VGG_URL,
                     help="where the default VGG weights are downloaded from (default: slim's archive)")
    net.add_argument('--no_download', action='store_true',
                     help='fail instead of downloading missing VGG weights to the default path')
    net.add_argument('--content_layers', default=DEFAULT_CONTENT_LAYERS,
                     help='comma-separated slim end points (default: %(default)s)')
    net.add_argument('--style_layers', default=DEFAULT_STYLE_LAYERS,
                     help='comma-separated slim end points (default: conv1_2, conv2_2, conv3_3, conv4_3, conv5_3)')
    net.add_argument('--style_layer_weights', type=float_list,
                     help='one weight per style layer, e.g. 1,1,1,0.5,0.5 (default: all 1)')
    net.add_argument('--content_weight', type=float, default=1.0, help='(default: %(default)s)')
    net.add_argument('--style_weight', type=float, default=10.0, help='(default: %(default)s)')
    net.add_argument('--tv_weight', type=float, default=0.0, help='total variation (default: %(default)s)')
    opt = parser.add_argument_group('optimization')
    opt.add_argument('--init', choices=('noise', 'content', 'style'), default='content',
                     help='start image: noise (truncated normal, mean 127.5, stddev 20), the content, or the '
                          'style resized to the result (default: %(default)s)')
    add_precision_option(opt)
    opt.add_argument('--seed', type=int, default=0, help='seed of the noise start image (default: %(default)s)')
    opt.add_argument('--optimizer', choices=('adam', 'lbfgs'), default='lbfgs',
                     help='lbfgs reaches a lower loss per second here, see README (default: %(default)s)')
    opt.add_argument('--learning_rate', type=float, default=10.0, help='Adam only (default: %(default)s)')
    opt.add_argument('--iterations', type=int_list, metavar='N',
                     help='optimizer iterations (default: 100 for adam, 50 for lbfgs); with --sizes, one count for '
                          'every stage or one per stage, e.g. 100,50,20')
    opt.add_argument('--save_every', type=int, default=0,
                     help='write res_<step>.jpg into --frames_dir every N steps; 1 is the classic '
                          'behaviour (default: 0, off)')
    opt.add_argument('--frames_dir', default='generated/frames', help='(default: %(default)s)')
    args = parser.parse_args(argv)
    args.content_layers = args.content_layers.split(',')
    args.style_layers = args.style_layers.split(',')
    args.iterations = args.iterations or [100 if args.optimizer == 'adam' else 50]
    _check_values(parser, args)
    _check_stages(parser, args)
    return args


def _check_stages(parser, args):
    """Reject --sizes that do not grow or do not go with the other options; sets args.stages (gatys.Stage list) and,
    for a run of one size, args.iterations and args.max_size to numbers."""
    if args.sizes is None:
        if len(args.iterations) != 1:
            parser.error('--iterations takes one count (several are for the stages of --sizes), got %s'
                         % ','.join(map(str, args.iterations)))
        args.iterations, args.max_size = args.iterations[0], args.max_size or 512
        args.stages = gatys.schedule(None, [args.iterations])
        return
    if min(args.sizes) <= 0 or any(later <= earlier for earlier, later in zip(args.sizes, args.sizes[1:])):
        parser.error('--sizes must grow from stage to stage, coarse to fine, e.g. 512,1024,2048; got %s'
                     % ','.join(map(str, args.sizes)))
    if args.max_size is not None or args.width is not None or args.height is not None:
        parser.error("--sizes gives the long side of every stage, the last the result's: leave out --max_size, "
                     "--width and --height")
    if len(args.iterations) not in (1, len(args.sizes)):
        parser.error('--iterations takes one count for every stage or one per stage of --sizes (%d), got %s'
                     % (len(args.sizes), ','.join(map(str, args.iterations))))
    if args.save_every:
        parser.error('--save_every writes the frames of a run of one size; with --sizes, each finished stage is '
                     'kept in --stage_dir')
    args.stages = gatys.schedule(args.sizes, args.iterations)


_POSITIVE = ('learning_rate', 'style_scale', 'max_memory')


def _check_values(parser, args):
    """Reject nonsense option values with one clear line each."""
    for name in ('max_size', 'width', 'height'):
        value = getattr(args, name)
        if value is not None and value <= 0:
            parser.error('--%s must be positive, got %d' % (name, value))
    if min(args.iterations) <= 0:
        parser.error('--iterations must be positive, got %s' % ','.join(map(str, args.iterations)))
    for name in ('content_weight', 'style_weight', 'tv_weight', 'learning_rate', 'style_scale', 'max_memory'):
        value = getattr(args, name)
        if not np.isfinite(value) or value < 0 or (value == 0 and name in _POSITIVE):
            parser.error('--%s must be a %s number, got %s'
                         % (name, 'positive' if name in _POSITIVE else 'non-negative', value))
    if args.save_every < 0:
        parser.error('--save_every must be 0 (off) or positive, got %d' % args.save_every)
    if args.style_blend is not None and (len(args.style_blend) != len(args.style) or min(args.style_blend) < 0
                                         or sum(args.style_blend) <= 0):
        parser.error('--style_blend needs %d non-negative weight%s, not all zero (one per --style), got %s'
                     % (len(args.style), 's' * (len(args.style) > 1), args.style_blend))
    if args.style_layer_weights is not None and (len(args.style_layer_weights) != len(args.style_layers)
                                                 or min(args.style_layer_weights) < 0):
        parser.error('--style_layer_weights needs %d non-negative weights (one per style layer), got %s'
                     % (len(args.style_layers), args.style_layer_weights))
    try:
        masks.check_masks(args.mask or (), [args.style_blend], ['--style_blend'])
        args.mask_styles = mask_styles(args.mask or (), args.style)
    except UsageError as error:
        parser.error(str(error))


def mask_styles(given, styles):
    """{mask name: the index of its --style image (by file name without extension, or index)}, for the masks
    that name a style."""
    names = [os.path.splitext(os.path.basename(path))[0] for path in styles]
    names = names if len(set(names)) == len(names) else None
    return {mask.name: style_names.index_of(mask.name, names, len(styles), 'the style images', '--mask')
            for mask in given if mask.name not in (None, masks.PHOTO)}


def result_size(height, width, max_size, result_width=None, result_height=None):
    """(height, width) of the result from max_size (its long side) or a given width and/or height, keeping the
    aspect ratio of the content's (height, width) where only one side is given."""
    if result_width and result_height:
        return result_height, result_width
    if result_width:
        return max(1, round(height * result_width / width)), result_width
    if result_height:
        return result_height, max(1, round(width * result_height / height))
    return scaled_size(height, width, max_size)


def scaled_size(height, width, long_side):
    """(height, width) scaled so that the long side is `long_side`."""
    scale = long_side / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


# Peak memory of a run (benchmarks/stylize_memory.py, VGG-16 to conv5_3; L-BFGS, Adam takes a little less): a fixed
# part, then per pixel either the optimization's (activations, their gradients and L-BFGS's history, per pixel of
# the result) or the style targets' pass before it (a forward pass, per pixel of the largest resized style image),
# whichever is larger, and the decoded inputs. Per result pixel: 2.9 KB fitted the runs of 64 to 1200 pixels, but a
# 2048 x 1366 run of the real VGG-16 peaked at 11.2 GB, 3.7 KB a pixel (docs/GATYS.md, print size): the larger.
BASE_BYTES = 0.85e9
BYTES_PER_RESULT_PIXEL = 3.7e3
BYTES_PER_STYLE_PIXEL = 0.95e3
BYTES_PER_INPUT_PIXEL = 6  # the decoded RGB and its resized copy
DEFAULT_MAX_MEMORY_GB = 16.0


def estimate_memory(result_pixels, style_pixels, input_pixels):
    """Estimated peak bytes of a run: see BASE_BYTES."""
    return (BASE_BYTES + max(BYTES_PER_RESULT_PIXEL * result_pixels, BYTES_PER_STYLE_PIXEL * style_pixels)
            + BYTES_PER_INPUT_PIXEL * input_pixels)


def resize(pixels, height, width):
    """A uint8 RGB image resized with Lanczos filtering (a no-op at the same size)."""
    if pixels.shape[:2] == (height, width):
        return pixels
    return np.asarray(Image.fromarray(pixels).resize((width, height), Image.LANCZOS))


def resize_long_side(pixels, long_side):
    return resize(pixels, *scaled_size(*pixels.shape[:2], long_side))


def check_size(features, height, width, what):
    """Raise UsageError when an image of height x width is too small for the deepest layer of the LossNetwork
    `features`."""
    if min(height, width) < features.min_side():
        raise UsageError('the %s (%dx%d) is too small for %s: it needs at least %d pixels per side (enlarge it '
                         'with --max_size/--width/--height or --style_scale, or use shallower layers)'
                         % (what, width, height, features.final_endpoint, features.min_side()))


def recipe_of(args):
    """The Recipe that the command line asks for."""
    return gatys.Recipe(args.content_layers, args.style_layers, args.content_weight, args.style_weight, args.tv_weight,
                  args.style_layer_weights, args.style_blend)


def initial_image(kind, content, style, seed):
    """The start image, float32 (H, W, 3) in RGB 0..255."""
    if kind == 'content':
        return content.astype(np.float32)
    if kind == 'style':
        return resize(style, *content.shape[:2]).astype(np.float32)
    with tf.Graph().as_default():
        tf.set_random_seed(seed)
        noise = tf.truncated_normal(content.shape, mean=127.5, stddev=20.0)
        with tf.Session() as sess:
            return sess.run(noise)


def to_uint8(pixels):
    return np.clip(np.round(pixels), 0, 255).astype(np.uint8)


def frame_paths(frames_dir, save_every, iterations):
    """{step: the frame res_<step>.jpg in frames_dir} of every step that writes one."""
    steps = range(save_every, iterations + 1, save_every) if save_every else []
    return {step: os.path.join(frames_dir, 'res_%d.jpg' % step) for step in steps}


class Progress:
    """A progress bar over the iterations showing the losses, and the frames of frame_paths, written by `outputs`
    (files.Outputs)."""

    def __init__(self, iterations, frames, outputs, what='stylizing'):
        self.bar = tqdm(total=iterations, unit='it', desc=what)
        self.frames, self.outputs = frames, outputs

    def wants_frame(self, step):
        return step in self.frames

    def update(self, step, values, pixels=None):
        self.bar.set_postfix_str('total %.4g = content %.4g + style %.4g + tv %.4g'
                                 % (values['total'], values['content'], values['style'], values['tv']))
        self.bar.update(step - self.bar.n)
        if pixels is not None:
            self.outputs.image(self.frames[step], to_uint8(pixels))

    def close(self):
        self.bar.close()


def check_inputs(content, styles, weights_file, weights_url, download):
    """Raise one UsageError naming every missing input file at once (the VGG weights only where they will not be
    downloaded)."""
    missing = ['%s not found: %s (check the path)' % (what, path)
               for path, what in [(content, 'content image')] + [(style, 'style image') for style in styles]
               if not os.path.isfile(path)]
    missing += [problem for problem in [pretrained.missing_vgg(weights_file, weights_url, LOSS_MODEL, download)]
                if problem]
    if missing:
        raise UsageError('; '.join(missing))


def plan_outputs(args, height, width):
    """The run's files.Outputs, with the result and every frame of --save_every claimed and checked to fit
    their formats at height x width, before any work."""
    found = [masks.mask_file(mask, os.path.basename(args.content)) for mask in args.mask or ()]
    outputs = Outputs([args.content, *args.style, args.loss_model_file, *[path for path in found if path]],
                      args.overwrite)
    outputs.claim(args.output)
    check_encodable(args.output, height, width)
    for path in frame_paths(args.frames_dir, args.save_every, args.stages[-1].iterations).values():
        outputs.claim(path, option='--frames_dir')
        check_encodable(path, height, width, '--frames_dir')
    return outputs


# The options that change no pixel of a stage's result: a kept stage is taken up whatever they are.
_NOT_IN_A_STAGE = ('output', 'overwrite', 'save_every', 'frames_dir', 'stage_dir', 'sizes', 'iterations', 'stages',
                   'max_memory', 'no_download', 'loss_model_url', 'preserve_colors', 'mask_styles')


def stage_files(args, outputs):
    """Where each stage but the last keeps its result (gatys.stage_file), those not kept yet claimed through
    `outputs`: the digest covers every option that changes a pixel and the inputs' sizes and modification times."""
    if len(args.stages) == 1:
        return []
    inputs = [args.content, *args.style, *(masks.mask_file(mask, os.path.basename(args.content)) or mask.path
                                           for mask in args.mask or ())]
    inputs += sorted(glob.glob(glob.escape(args.loss_model_file) + '*'))
    settings = {key: value for key, value in sorted(vars(args).items()) if key not in _NOT_IN_A_STAGE}
    settings['mask'] = [[mask.name, mask.path] for mask in args.mask or ()]
    settings['inputs'] = [[os.path.realpath(path), os.path.getsize(path), os.stat(path).st_mtime_ns]
                          for path in inputs if os.path.isfile(path)]
    paths = [gatys.stage_file(args.stage_dir, args.content, args.stages, index, settings)
             for index in range(len(args.stages) - 1)]
    for path in paths:
        if not os.path.isfile(path):
            outputs.claim(path, option='--stage_dir')
    return paths


def plan_sizes(content_path, style_paths, max_size, width, height, style_scale, max_bytes):
    """The result's (height, width) and the styles' long side, from the images' headers (nothing is decoded yet).

    Args:
      content_path, style_paths: the images.
      max_size, width, height: the result's size as --max_size, --width and --height give it (see result_size).
      style_scale: the styles' long side relative to the result's.
      max_bytes: the memory budget.

    Raises:
      UsageError: an image is unreadable, or the run would need more than max_bytes of memory.
    """
    content = image_size(content_path, 'content image')
    styles = [image_size(path, 'style image') for path in style_paths]
    height, width = result_size(*content, max_size, width, height)
    style_side = max(1, round(style_scale * max(height, width)))
    style_pixels = max(np.prod(scaled_size(*size, style_side)) for size in styles)
    inputs = sum(np.prod(size) for size in [content, *styles])
    need = estimate_memory(height * width, style_pixels, inputs)
    if need > max_bytes:
        raise UsageError('a %dx%d result with style images of %d pixels on the long side needs about %.1f GB, over '
                         '--max_memory %.3g%s: lower --max_size/--sizes/--width/--height or --style_scale, or raise '
                         '--max_memory if the machine has the memory'
                         % (width, height, style_side, need / 1e9, max_bytes / 1e9,
                            _fitting(max_bytes, inputs, height, width, max(style_scale, 1))))
    return (height, width), style_side


def _fitting(max_bytes, input_pixels, height, width, style_scale):
    """'; a long side of at most N pixels fits' for a result of this aspect, or '' when none does."""
    pixels = (max_bytes - BASE_BYTES - BYTES_PER_INPUT_PIXEL * input_pixels) / (
        max(BYTES_PER_RESULT_PIXEL, BYTES_PER_STYLE_PIXEL * style_scale ** 2))
    side = int((pixels * max(height, width) / min(height, width)) ** 0.5) if pixels > 0 else 0
    return '; a long side of at most %d pixels fits' % side if side >= 32 else ''


def stylize(args):
    """Run the whole method as the command line asks, stage by stage; returns (result uint8 RGB, final loss values,
    the files.Outputs to write the result with)."""
    download = not args.no_download and pretrained.downloadable(args.loss_model_file, LOSS_MODEL)
    check_inputs(args.content, args.style, args.loss_model_file, args.loss_model_url, download)
    output_format(args.output)
    (height, width), _ = plan_sizes(args.content, args.style, args.stages[-1].side or args.max_size, args.width,
                                    args.height, args.style_scale, args.max_memory * 1e9)
    outputs = plan_outputs(args, height, width)
    content_size = image_size(args.content, 'content image')
    masks.check_files(args.mask or (), [(args.content, os.path.basename(args.content), content_size)])
    features = LossNetwork(LOSS_MODEL, args.content_layers + args.style_layers, args.loss_model_file, 'vgg_16/fc')
    sizes = [result_size(*content_size, stage.side or args.max_size, args.width, args.height) for stage in args.stages]
    for size in sizes:  # from the headers, before the weights may be downloaded
        check_size(features, *size, 'result')
        for path in args.style:
            check_size(features, *scaled_size(*image_size(path, 'style image'), _style_side(args, size)),
                       'resized style image')
    kept = stage_files(args, outputs)
    pretrained.ensure_vgg_checkpoint(args.loss_model_file, args.loss_model_url, LOSS_MODEL, download)
    photo = read_image(args.content, 'content image')
    style_images = [read_image(path, 'style image') for path in args.style]
    features.load_weights()
    return run_stages(args, features, photo, style_images, sizes, kept, outputs) + (outputs,)


def run_stages(args, features, photo, style_images, sizes, kept, outputs):
    """(the result, its final loss values) of args.stages at `sizes` (height, width), resumed after the last stage
    kept in `kept` (stage_files), each other stage but the last kept there through `outputs`."""
    first = next((index + 1 for index in reversed(range(len(kept))) if os.path.isfile(kept[index])), 0)
    previous = _kept_stage(kept[first - 1]) if first else None
    if first:
        log.info('resuming after stage %d of %d from %s', first, len(args.stages), kept[first - 1])
    for index in range(first, len(args.stages)):
        regions = masks.photo_regions(args.mask, os.path.basename(args.content), *sizes[index],
                                      photo.shape[:2]) if args.mask else None
        content = resize(photo, *sizes[index])
        previous, final = run_stage(args, index, features, content, style_images, regions, previous, outputs)
        if index < len(kept):
            outputs.image(kept[index], previous)
            log.info('stage %d of %d kept in %s', index + 1, len(args.stages), kept[index])
    strength = 1.0 if regions is None else 1 - regions.photo  # the regions that keep the photo
    return color.finish(previous, content, args.preserve_colors, strength), final


def _kept_stage(path):
    """The result of a stage an earlier run kept; UsageError, with the fix, where it no longer reads."""
    try:
        return read_image(path, 'kept stage')
    except UsageError as error:
        raise UsageError('%s; delete it, and the run does that stage again' % error) from None


def _style_side(args, size):
    """The style images' long side for a result of `size` (height, width)."""
    return max(1, round(args.style_scale * max(size)))


def run_stage(args, index, features, content, style_images, regions, previous, outputs):
    """Optimize stage `index` of args.stages at the content's size, from `previous` (the stage before's result,
    uint8, upscaled; None: the --init image), writing its frames through `outputs`; returns (its result uint8, its
    final loss values)."""
    stage, started = args.stages[index], time.time()
    styles = [resize_long_side(pixels, _style_side(args, content.shape[:2])) for pixels in style_images]
    recipe = recipe_of(args)
    targets = gatys.compute_targets(features, content, styles, recipe, regions, args.mask_styles)
    start = (initial_image(args.init, content, styles[0], args.seed) if previous is None
             else resize(previous, *content.shape[:2]).astype(np.float32))
    progress = Progress(stage.iterations, frame_paths(args.frames_dir, args.save_every, stage.iterations), outputs,
                        'stage %d/%d' % (index + 1, len(args.stages)) if len(args.stages) > 1 else 'stylizing')
    result, final = gatys.optimize(features, start, targets, recipe, progress, args.optimizer, stage.iterations,
                                   args.learning_rate, args.precision)
    if len(args.stages) > 1:
        log.info('stage %d of %d: %dx%d, %d %s iterations in %.1f s, peak memory so far %.2f GB', index + 1,
                 len(args.stages), content.shape[1], content.shape[0], stage.iterations, args.optimizer,
                 time.time() - started, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6)  # KB on Linux
    return to_uint8(result), final


@cli_main
def main(argv=None):
    setup_logging()
    args = parse_args(argv)
    start = time.time()
    result, final, outputs = stylize(args)
    outputs.image(args.output, result)
    log.info('result (%dx%d) written to %s after %s %s iterations in %.1f s; loss %.4g = content %.4g + style %.4g '
             '+ tv %.4g (weighted)', result.shape[1], result.shape[0], args.output,
             '+'.join(str(stage.iterations) for stage in args.stages), args.optimizer,
             time.time() - start, final['total'], final['content'], final['style'], final['tv'])


if __name__ == '__main__':
    run_and_exit(main)
