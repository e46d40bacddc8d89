"""Stylize images or a video with a trained model, or in the style of any image with Magenta's arbitrary-style network.

  python eval.py --model_file models/wave.ckpt --image_file img/test.jpg
  python eval.py --model_file models/wave.pb --image_file photos/ 'more/*.png' --output stylized/
  python eval.py --model_file models/wave.ckpt --video clip.mp4 --output clip-wave.mp4 [--smooth 0.5 --consistency flow]
  python eval.py --model_file models/wave_scream.ckpt --image_file img/test.jpg --style scream  # or --style_mix 1,1
  python eval.py --image_file img/test.jpg --style_image img/udnie.jpg [--style_strength 0.7]  # any style
  python eval.py --model_file models/wave_scream.ckpt --image_file img/photos/rocket.jpg \
      --mask wave=img/masks/rocket_sky.png --mask scream=img/masks/rocket_ground.png  # styles by region

The model is a checkpoint prefix (V1 or V2 format, the original project's too), a model folder (its latest
checkpoint), or from export.py a frozen .pb, a SavedModel folder or a .tflite; it is loaded once for the whole run.
With --style_image, it is Magenta's arbitrary-style network (by default its published checkpoint, downloaded on
first use; docs/ARBITRARY.md), in any of these forms.
Outputs have exactly the inputs' sizes. Images above --max_pixels are stylized in tiles with the whole image's
statistics (not from a .tflite, whose weights tiling cannot use).
"""
import argparse
import glob
import os
import sys
import time

import numpy as np
from tqdm import tqdm

from files import Outputs
from images import IMAGE_FORMATS, check_encodable, image_size, load_image, output_format
from inference import consistency, masks, styling
from inference.options import (INPUT_EXTENSIONS, add_image_options, add_model_option, check_image_options,
                               missing_model, recipe_of)
from inference.styling import load_style_image
from nets import pretrained
from reader import walk_without
from utils import ArgumentParser, UsageError, cli_main, log, run_and_exit, setup_logging


def parse_args(argv):
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_option(parser)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument('--image_file', nargs='+', metavar='PATH',
                        help='images, folders (searched recursively) or quoted globs')
    source.add_argument('--video', help='a video to stylize frame by frame (needs imageio-ffmpeg)')
    parser.add_argument('--output', help='for one image file: the result file (default: generated/res.jpg), or a '
                                         'folder if it ends in / or exists; for a folder, a glob or several inputs: '
                                         'a folder (default: generated/); for a video: a .mp4, .m4v, .mov, .mkv, '
                                         '.avi, .webm or .gif file (default: generated/res.mp4). Never one of the '
                                         'inputs')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace results that already exist (default: refuse, naming them)')
    parser.add_argument('--skip_existing', action='store_true',
                        help='leave results that already exist as they are and stylize the other inputs: run an '
                             'interrupted run again with it to finish it')
    add_image_options(parser, "the results' format (default: each input's own; generated/res.jpg for one image); "
                              "with a file --output, its extension must agree")
    parser.add_argument('--batch_size', type=int, default=4, help='video frames per run (default: %(default)s)')
    parser.add_argument('--smooth', type=float, default=0.0,
                        help='video: blend each output frame with this share of the previous one to reduce '
                             'flicker, 0..1 (default: %(default)s)')
    parser.add_argument('--consistency', choices=consistency.MODES, default='blend',
                        help='video, with --smooth: blend the previous output frame in place, or moved along the '
                             'optical flow where it is reliable, which leaves no ghosts behind moving things '
                             '(needs OpenCV; default: %(default)s)')
    args = parser.parse_args(argv)
    if args.overwrite and args.skip_existing:
        parser.error('--overwrite replaces existing results and --skip_existing keeps them: give one')
    check_image_options(parser, args)
    if not 0 <= args.smooth <= 1:
        parser.error('--smooth must be between 0 and 1, got %s' % args.smooth)
    if args.batch_size <= 0:
        parser.error('--batch_size must be positive, got %d' % args.batch_size)
    if args.format and args.video:
        parser.error('--format applies to images only; a video takes its container from --output (e.g. out.mp4)')
    if args.smooth and not args.video:
        parser.error('--smooth applies to --video only')
    if args.consistency == 'flow' and not (args.video and args.smooth):
        parser.error('--consistency flow needs --video and --smooth A (the share of the previous frame, e.g. 0.5)')
    return args


def collect_inputs(specs, left_out=()):
    """(path, name relative to its folder) for every image the specs name: files, folders, globs.

    left_out: folders not searched where they lie inside a folder searched (the one the results go to, so that a
    second run does not take the first one's results for photos).

    Raises:
      UsageError: a folder or glob matches no image.
    """
    found, seen = [], set()
    for spec in specs:
        if os.path.isdir(spec):
            paths = sorted(os.path.join(root, name) for root, _, names in walk_without(spec, left_out)
                           for name in names if name.lower().endswith(INPUT_EXTENSIONS))
            matches = [(path, os.path.relpath(path, spec)) for path in paths]
        elif glob.has_magic(spec):
            matches = [(path, os.path.basename(path)) for path in sorted(glob.glob(spec, recursive=True))
                       if os.path.isfile(path)]
        else:
            matches = [(spec, os.path.basename(spec))]  # a missing file is reported when it is read
        if not matches:
            raise UsageError('no images found for %r (give image files, folders or quoted globs)' % spec)
        for path, name in matches:  # an image named twice (a file and its folder, overlapping globs) runs once
            if (os.path.realpath(path), name) not in seen:
                seen.add((os.path.realpath(path), name))
                found.append((path, name))
    return found


def _wants_folder(output):
    return output.endswith(('/', os.sep)) or os.path.isdir(output)


def _results_folders(output):
    """The folder results go to, in a list: --output as a folder, or without --output generated/ (of res.jpg, or
    of several results); none for a file --output."""
    return ['generated'] if not output else [output] if _wants_folder(output) else []


def output_paths(inputs, specs, output, fmt, outputs, skip_existing=False):
    """Where each input's result goes: `output` itself for one image file, else a folder mirroring the names;
    each is claimed in `outputs` (files.Outputs) before any work, or with skip_existing, where something is there
    already, left out (None).

    Args:
      inputs: (path, relative name) from collect_inputs.
      specs: the --image_file values.
      output: --output, or None for the defaults (generated/res.jpg, generated/).
      fmt: --format (an extension without the dot), or None for each input's own.

    Returns:
      One output path (or None) per input.

    Raises:
      UsageError: a file --output for a folder, glob or several inputs; --format against --output's extension;
        two inputs written to one file, an output that is one of the inputs, or one that exists (without
        --overwrite); a result too large for its format.
    """
    extension = '.' + fmt if fmt else None
    if len(specs) == 1 and len(inputs) == 1 and not os.path.isdir(specs[0]) and not (output and _wants_folder(output)):
        path = output or os.path.join('generated', 'res' + (extension or '.jpg'))
        if extension and IMAGE_FORMATS[extension] != output_format(path):
            raise UsageError('--format %s contradicts --output %s; give the output that extension or drop --format'
                             % (fmt, path))
        paths = [path]
    else:
        if output and not _wants_folder(output) and os.path.splitext(output)[1].lower() in IMAGE_FORMATS:
            raise UsageError('--output %s names a file, but %d images (from a folder, a glob or several inputs) need '
                             'a folder: pass --output %s/' % (output, len(inputs), os.path.splitext(output)[0]))
        folder = output or 'generated'
        if os.path.exists(folder) and not os.path.isdir(folder):
            raise UsageError('--output %s is a file, but %d images need a folder: pass a new folder, e.g. %s_stylized/'
                             % (folder, len(inputs), folder))
        paths = [os.path.join(folder, os.path.splitext(name)[0] + (extension or os.path.splitext(name)[1]))
                 for _, name in inputs]
    for index, ((source, _), path) in enumerate(zip(inputs, paths)):
        if skip_existing and os.path.lexists(path):
            outputs.check_not_input(path)  # an input is never "done"
            paths[index] = None
            continue
        _check_encodable(source, path, len(inputs) == 1)  # an unreadable input first: the user's to fix
        outputs.claim(path, source=source)
    return paths


def _left_as_they_are(inputs, paths):
    """The inputs whose results are to be written, and their paths; says how many --skip_existing left out."""
    todo = [(source, path) for source, path in zip(inputs, paths) if path]
    if len(todo) < len(inputs):
        log.info('%d of %d results exist already and are left as they are (--skip_existing)%s',
                 len(inputs) - len(todo), len(inputs), '; nothing to do' if not todo else '')
    return [source for source, _ in todo], [path for _, path in todo]


def _check_encodable(source, output, alone):
    """The result of `source` (its size read from the header) fits `output`'s format; an unreadable input is
    the command's error when alone, else reported and skipped when its turn comes."""
    output_format(output)
    try:
        height, width = image_size(source, 'content image')
    except UsageError:
        if alone:
            raise
        return
    check_encodable(output, height, width)


def stylize_images(stylize, inputs, paths, quality, outputs):
    """Stylize every input; report and skip the ones that fail. Returns the number of failures.

    Args:
      stylize: stylize(rgb, name) -> the finished result (the model, then colour and strength), of the image of that
        relative name.
      inputs: (path, name) pairs from collect_inputs; paths: the result's path for each.
      quality: JPEG and WebP quality.
      outputs: the files.Outputs that writes them.
    """
    failures = 0
    start = time.time()
    with tqdm(total=len(inputs), unit='img', mininterval=1) as bar:
        for (path, name), output in zip(inputs, paths):
            try:
                rgb, alpha = load_image(path, 'content image')
                outputs.image(output, stylize(rgb, name), alpha, quality)
            except UsageError as error:
                failures += 1
                tqdm.write('skipped: %s' % error, file=sys.stderr)
            bar.update()
    log.info('%d of %d images stylized in %.1f s, written under %s', len(inputs) - failures, len(inputs),
             time.time() - start, os.path.commonpath([os.path.dirname(o) or '.' for o in paths]))
    return failures


def stylize_one(stylize, source, rgb, alpha, output, quality, outputs):
    """One image, source (path, relative name): its problems are the command's error (exit status 2)."""
    start = time.time()
    path, name = source
    outputs.image(output, stylize(rgb, name), alpha, quality)
    log.info('stylized %s (%dx%d) in %.2f s, written to %s', path, rgb.shape[1], rgb.shape[0], time.time() - start,
             output)


def check_prerequisites(model_file, download, inputs):
    """Raise one UsageError naming every missing prerequisite, before the outputs are checked: the model (Magenta's
    network at its default path is downloaded later, unless not to be) and the input files named (a folder or a
    glob that finds nothing is collect_inputs')."""
    missing = [problem for problem in [missing_model(model_file, download)] if problem]
    missing += ['%s not found: %s (check the path)' % (what, path) for path, what in inputs
                if not glob.has_magic(path) and not os.path.exists(path)]
    if missing:
        raise UsageError('; '.join(missing))


@cli_main
def main(argv=None):
    setup_logging()
    args = parse_args(argv)
    if args.video:  # without its libraries, no video can be read: the first thing to fix
        from inference import video
        video.check_available(args.consistency)
    check_prerequisites(args.model_file, not args.no_download,
                        [(path, 'content image') for path in args.image_file or ()] + [(args.video, 'video')] * bool(
                            args.video) + [(path, 'style image') for path in args.style_image or ()])
    recipe = recipe_of(args)  # one construction for every kind of input (batch.py's too): no option dropped
    style_images = [load_style_image(path, recipe.style_size) for path in recipe.style_images]  # fail fast

    def load_model():
        if recipe.style_images:
            pretrained.ensure_arbitrary_checkpoint(recipe.model_file, not args.no_download)
        return styling.open_model(recipe, style_images)
    (_video_command if args.video else _images_command)(args, recipe, load_model)


def _video_command(args, recipe, load_model):
    """--video: its checks, then every frame through load_model()'s stylizer and the recipe's finish."""
    from inference import video
    video.check_source(args.video)
    output = args.output or os.path.join('generated', 'res.mp4')
    video.check_output(output)
    if any(os.path.isdir(mask.path) for mask in recipe.masks):
        raise UsageError('a video takes one mask image per style, not a folder (%s)'
                         % next(mask.path for mask in recipe.masks if os.path.isdir(mask.path)))
    outputs = Outputs([args.video, args.model_file] + (args.style_image or []) + _mask_paths(recipe), args.overwrite)
    if args.skip_existing and os.path.lexists(output):
        outputs.check_not_input(output)
        return log.info('%s exists already and is left as it is (--skip_existing); nothing to do', output)
    outputs.claim(output, source=args.video)
    *size, frames = video.header(args.video)
    moving = _check_video_masks(recipe.masks, args.video, size, frames)
    stylizer, style_for = load_model()
    style_of_frame, shares = _frame_styles(recipe.masks, moving, style_for, size), []

    def stylize_batch(batch):
        styles = [style_of_frame(frame) for frame in batch]
        shares[:] = [share for _, share in styles]
        if not moving:  # one style for every frame: the batch in one run
            return stylizer.stylize_batch(batch, styles[0][0])
        return np.stack([stylizer(frame, progress=False, style=style) for frame, (style, _) in zip(batch, styles)])

    def finish(frames, originals):
        return [styling.finish(recipe, frame, original, share)
                for frame, original, share in zip(frames, originals, shares)]
    video.stylize_video(stylize_batch, args.video, output, outputs, args.batch_size, args.smooth, finish,
                        args.consistency)


def _check_video_masks(given, source, size, frames):
    """A video's masks checked before any work, from their headers: mask images, and mask videos (whose frames
    follow the video's, of which there are about `frames`). Returns the indices of the mask videos."""
    from inference import video
    moving = [index for index, mask in enumerate(given) if video.is_video(mask.path)]
    masks.check_files([mask for index, mask in enumerate(given) if index not in moving],
                      [(source, os.path.basename(source), size)])
    for index in moving:
        *mask_size, mask_frames = video.header(given[index].path)
        masks.check_size(given[index].path, mask_size, size, source)
        if frames and mask_frames and mask_frames < frames:
            raise UsageError('mask video %s has %d frames, fewer than the %d of %s: give it as many'
                             % (given[index].path, mask_frames, frames, source))
    return moving


def _frame_styles(given, moving, style_for, size):
    """style_of_frame(frame) -> (style, photo_share): from the first frame for every frame, or with mask videos
    (the indices `moving` of `given`) from each one's next frame."""
    from inference import video
    first, frames = [], {index: video.mask_frames(given[index].path, *size) for index in moving}

    def style_of_frame(frame):
        if not moving:
            first[:] = first or [style_for(frame)]
            return first[0]
        grey = {index: next(mask_frames, None) for index, mask_frames in frames.items()}
        ended = [given[index].path for index, values in grey.items() if values is None]
        if ended:
            raise UsageError('mask video %s ends before the video: give it as many frames' % ended[0])
        return style_for(frame, None, grey)
    return style_of_frame


def _mask_paths(recipe, inputs=()):
    """The masks' paths, and in folders of masks each input's (path, relative name) mask: inputs of the run, which
    no result may replace."""
    found = [masks.mask_file(mask, name) for mask in recipe.masks if os.path.isdir(mask.path) for _, name in inputs]
    return [mask.path for mask in recipe.masks] + [path for path in found if path]


def _check_masks(recipe, inputs):
    """Every mask each readable input needs, checked from the headers before the model loads (an unreadable input
    is reported in its turn)."""
    photos = []
    for path, name in inputs:
        try:
            photos.append((path, name, image_size(path, 'content image')))
        except UsageError:
            if len(inputs) == 1:
                raise
    masks.check_files(recipe.masks, photos)


def _images_command(args, recipe, load_model):
    """--image_file: the inputs and their outputs checked, then each image through load_model()'s stylizer and the
    recipe's finish; exit status 1 when some of several could not be stylized."""
    inputs = collect_inputs(args.image_file, _results_folders(args.output))
    outputs = Outputs([path for path, _ in inputs] + [args.model_file] + (args.style_image or [])
                      + _mask_paths(recipe, inputs), args.overwrite)
    paths = output_paths(inputs, args.image_file, args.output, args.format, outputs, args.skip_existing)
    alone = len(inputs) == 1  # an image's problems are the command's error; of several, each is reported and skipped
    inputs, paths = _left_as_they_are(inputs, paths)
    if not inputs:
        return
    _check_masks(recipe, inputs)
    if alone:
        rgb, alpha = load_image(inputs[0][0], 'content image')  # before the model loads: fail fast
    stylizer, style_for = load_model()

    def stylize(pixels, name):
        return styling.stylize(recipe, stylizer, style_for, pixels, name)
    if alone:
        return stylize_one(stylize, inputs[0], rgb, alpha, paths[0], args.quality, outputs)
    failures = stylize_images(stylize, inputs, paths, args.quality, outputs)
    stylizer.close()
    if failures:
        print('error: %d of %d images could not be stylized (see the lines above)' % (failures, len(inputs)),
              file=sys.stderr)
        sys.exit(1)

if __name__ == '__main__':
    run_and_exit(main)
