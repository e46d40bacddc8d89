"""Cut random square crops of a folder of photos: a training set for when COCO is out of reach.

  python models/recipe/crops.py --photos ../shared/photos --output crops/ [--per_photo 40] [--size 320]

train.py reads one central crop of each training image, so a few dozen photos would give a few dozen different
images. This cuts --per_photo crops of each photo, of random sides between --min_scale and 1 times the photo's
shorter side, at random places, half of them mirrored, each resized to --size pixels (above train.py's image_size,
so that its own random crop still varies). The same --seed gives the same crops. The output folder must be new or
empty: nothing is ever overwritten.
"""
import argparse
import os
import sys

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from files import Outputs  # noqa: E402 (after the path the project lives on)
from reader import list_images  # noqa: E402
from images import load_image
from utils import ArgumentParser, UsageError, cli_main, log, run_and_exit, setup_logging  # noqa: E402


def random_crops(pixels, count, size, min_scale, rng):
    """`count` square crops of uint8 (H, W, 3) pixels, each resized to size x size; a list of uint8 arrays."""
    height, width = pixels.shape[:2]
    image, crops = Image.fromarray(pixels), []
    for _ in range(count):
        side = max(1, int(min(height, width) * rng.uniform(min_scale, 1.0)))
        left, top = int(rng.integers(0, width - side + 1)), int(rng.integers(0, height - side + 1))
        crop = image.crop((left, top, left + side, top + side)).resize((size, size), Image.LANCZOS)
        if rng.random() < 0.5:
            crop = crop.transpose(Image.FLIP_LEFT_RIGHT)
        crops.append(np.asarray(crop))
    return crops


def parse_args(argv):
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--photos', required=True, help='folder of photos (JPEG or PNG, searched recursively)')
    parser.add_argument('--output', required=True, help='a new or empty folder for the crops')
    parser.add_argument('--per_photo', type=int, default=40, help='crops of each photo (default: %(default)s)')
    parser.add_argument('--size', type=int, default=320, help='side of each crop in pixels (default: %(default)s)')
    parser.add_argument('--min_scale', type=float, default=0.35,
                        help="smallest crop side, as a share of the photo's shorter side (default: %(default)s)")
    parser.add_argument('--seed', type=int, default=0, help='(default: %(default)s)')
    args = parser.parse_args(argv)
    for name in ('per_photo', 'size'):
        if getattr(args, name) <= 0:
            parser.error('--%s must be positive, got %d' % (name, getattr(args, name)))
    if not 0 < args.min_scale <= 1:
        parser.error('--min_scale must be above 0 and at most 1, got %g' % args.min_scale)
    return args


@cli_main
def main(argv=None):
    setup_logging()
    args = parse_args(argv)
    photos = list_images(args.photos)
    rng, done, outputs = np.random.default_rng(args.seed), 0, Outputs(photos)
    outputs.claim(args.output, folder=True, resumable=lambda path: os.path.isdir(path) and not os.listdir(path),
                  kind='an empty folder')  # nothing is overwritten
    for path in photos:
        try:
            pixels = load_image(path, 'photo')[0]
        except UsageError as error:
            log.info('skipped: %s', error)
            continue
        name = os.path.splitext(os.path.relpath(path, args.photos))[0].replace(os.sep, '_')
        for index, crop in enumerate(random_crops(pixels, args.per_photo, args.size, args.min_scale, rng)):
            outputs.image(os.path.join(args.output, '%s_%02d.jpg' % (name, index)), crop, quality=92)
        done += 1
    log.info('%d crops of %d photos written to %s', done * args.per_photo, done, args.output)


if __name__ == '__main__':
    run_and_exit(main)
