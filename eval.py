"""Stylize images or a video with a trained model.

  python eval.py --model_file models/candy --image_file img/test.jpg
  python eval.py --model_file models/candy.pb --image_file photos/ 'more/*.png' --output stylized/
  python eval.py --model_file models/candy --video clip.mp4 --output clip-candy.mp4

The model is a checkpoint prefix (V1 or V2 format, the original project's too), a model folder (its latest
checkpoint), or from export.py a frozen .pb, a SavedModel folder or a .tflite; it is loaded once for the whole run.
Outputs have exactly the inputs' sizes. Images above --max_pixels are stylized in tiles with the whole image's
statistics (not from a .tflite, whose weights tiling cannot use).
"""
import argparse
import glob
import os
import sys
import time

from tqdm import tqdm

from nets.stylizer import DEFAULT_MAX_PIXELS, Stylizer
from preprocessing import color
from utils import (IMAGE_FORMATS, PRECISIONS, ArgumentParser, UsageError, cli_main, load_image, log, output_format,
                   run_and_exit, setup_logging, write_image)

INPUT_EXTENSIONS = tuple(IMAGE_FORMATS)


def parse_args(argv):
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--model_file', required=True,
                        help='checkpoint prefix, model folder, frozen .pb, SavedModel folder or .tflite')
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument('--image_file', nargs='+', metavar='PATH',
                        help='images, folders (searched recursively) or quoted globs')
    source.add_argument('--video', help='a video to stylize frame by frame (needs imageio-ffmpeg)')
    parser.add_argument('--output', help='file for one image (default: generated/res.jpg), folder for several '
                                         '(default: generated/), file for a video')
    parser.add_argument('--format', choices=sorted({ext[1:] for ext in INPUT_EXTENSIONS}),
                        help="output format for a folder of results (default: each input's own)")
    parser.add_argument('--quality', type=int, default=95, help='JPEG and WebP quality, 1..100 (default: %(default)s)')
    parser.add_argument('--strength', type=float, default=1.0,
                        help='blend with the original: 1 is fully stylized, 0 the original (default: %(default)s)')
    parser.add_argument('--preserve_colors', action='store_true',
                        help="keep the input's colours: take only the stylized luminance (YCbCr)")
    parser.add_argument('--max_pixels', type=int, default=DEFAULT_MAX_PIXELS,
                        help='above this many pixels an image is stylized in tiles, keeping memory bounded '
                             '(default: %(default)s, about 1.4 GB, 2.2 GB tiled)')
    parser.add_argument('--precision', choices=PRECISIONS, default='fp32',
                        help='bf16: convolutions in bfloat16 (float16 on GPUs), about 1.7x faster on CPUs with '
                             'AVX512_BF16 or AMX, pixels within a few grey levels (default: %(default)s)')
    parser.add_argument('--batch_size', type=int, default=4, help='video frames per run (default: %(default)s)')
    parser.add_argument('--smooth', type=float, default=0.0,
                        help='video: blend each output frame with this share of the previous one to reduce '
                             'flicker, 0..1 (default: %(default)s)')
    args = parser.parse_args(argv)
    if not 1 <= args.quality <= 100:
        parser.error('--quality must be between 1 and 100, got %d' % args.quality)
    for name in ('strength', 'smooth'):
        if not 0 <= getattr(args, name) <= 1:
            parser.error('--%s must be between 0 and 1, got %s' % (name, getattr(args, name)))
    if args.max_pixels < 4096:
        parser.error('--max_pixels must be at least 4096, got %d' % args.max_pixels)
    if args.batch_size <= 0:
        parser.error('--batch_size must be positive, got %d' % args.batch_size)
    if args.smooth and not args.video:
        parser.error('--smooth applies to --video only')
    return args


def collect_inputs(specs):
    """(path, name relative to its folder) for every image the specs name: files, folders, globs.

    Raises:
      UsageError: a folder or glob matches no image.
    """
    found = []
    for spec in specs:
        if os.path.isdir(spec):
            paths = sorted(os.path.join(root, name) for root, _, names in os.walk(spec) for name in names
                           if name.lower().endswith(INPUT_EXTENSIONS))
            matches = [(path, os.path.relpath(path, spec)) for path in paths]
        elif glob.has_magic(spec):
            matches = [(path, os.path.basename(path)) for path in sorted(glob.glob(spec, recursive=True))
                       if os.path.isfile(path)]
        else:
            matches = [(spec, os.path.basename(spec))]  # a missing file is reported when it is read
        if not matches:
            raise UsageError('no images found for %r (give image files, folders or quoted globs)' % spec)
        found += matches
    return found


def output_paths(inputs, args):
    """Where each input's result goes: --output itself for one file, else a mirror of the names in a folder."""
    single = len(inputs) == 1 and os.path.isfile(args.image_file[0]) and len(args.image_file) == 1
    if single and not (args.output and (args.output.endswith('/') or os.path.isdir(args.output))):
        return [args.output or 'generated/res.jpg']
    folder = args.output or 'generated'
    paths = []
    for _, name in inputs:
        root, ext = os.path.splitext(name)
        paths.append(os.path.join(folder, root + ('.' + args.format if args.format else ext)))
    return paths


def finish(stylized, original, args):
    """Apply --preserve_colors and --strength to a stylized image."""
    return color.finish(stylized, original, args.preserve_colors, args.strength)


def stylize_images(stylizer, inputs, outputs, args):
    """Stylize every input; report and skip the ones that fail. Returns the number of failures."""
    failures = 0
    start = time.time()
    with tqdm(total=len(inputs), unit='img', mininterval=1) as bar:
        for (path, _), output in zip(inputs, outputs):
            try:
                rgb, alpha = load_image(path, 'content image')
                write_image(output, finish(stylizer(rgb), rgb, args), alpha, args.quality)
            except UsageError as error:
                failures += 1
                tqdm.write('skipped: %s' % error, file=sys.stderr)
            bar.update()
    log.info('%d of %d images stylized in %.1f s, written under %s', len(inputs) - failures, len(inputs),
             time.time() - start, os.path.commonpath([os.path.dirname(o) or '.' for o in outputs]))
    return failures


def stylize_one(stylizer, path, rgb, alpha, output, args):
    """One image: its problems are the command's error (exit status 2)."""
    start = time.time()
    write_image(output, finish(stylizer(rgb), rgb, args), alpha, args.quality)
    log.info('stylized %s (%dx%d) in %.2f s, written to %s', path, rgb.shape[1], rgb.shape[0], time.time() - start,
             output)


def load_model(args):
    """The model with the options' pixel budget and precision, the same for every kind of input."""
    return Stylizer(args.model_file, args.max_pixels, args.precision)


@cli_main
def main(argv=None):
    setup_logging()
    args = parse_args(argv)
    if args.video:
        from preprocessing import video
        video.check_available()
        stylizer = load_model(args)
        video.stylize_video(stylizer, args.video, args.output or 'generated/res.mp4', args.batch_size,
                            args.smooth, lambda frames, originals: [finish(f, o, args) for f, o in
                                                                    zip(frames, originals)])
        return
    inputs = collect_inputs(args.image_file)
    outputs = output_paths(inputs, args)
    for output in outputs:
        output_format(output)
    if len(inputs) == 1:
        rgb, alpha = load_image(inputs[0][0], 'content image')  # before the model loads: fail fast
        stylize_one(load_model(args), inputs[0][0], rgb, alpha, outputs[0], args)
        return
    stylizer = load_model(args)
    failures = stylize_images(stylizer, inputs, outputs, args)
    stylizer.close()
    if failures:
        print('error: %d of %d images could not be stylized (see the lines above)' % (failures, len(inputs)),
              file=sys.stderr)
        sys.exit(1)


if __name__ == '__main__':
    run_and_exit(main)
