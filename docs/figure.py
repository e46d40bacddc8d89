"""Put images side by side at one height, as the README's pictures are made (photo, style, result).

  python docs/figure.py img/test.jpg img/wave.jpg generated/wave-test.jpg --output docs/images/gatys_wave.jpg
  python docs/figure.py a.jpg a-wave.jpg b.jpg b-wave.jpg --columns 2 --square --output grid.jpg
  python docs/figure.py big.png other.png --crop 0.4,0.3,0.25 --output detail.jpg

Each image is scaled to --height pixels (keeping its aspect ratio, or cut to a central square with --square) and
they are joined left to right with a white gap, in rows of --columns images if given; the result is a JPEG.
--crop X,Y,S first cuts from each image the square whose top-left corner lies at X and Y (shares of its width and
height) and whose side is S times its width: the same detail of results of different sizes.
"""
import argparse
import os
import sys

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from files import Outputs  # noqa: E402 (after the path it lives on)
from images import read_image
from utils import ArgumentParser, cli_main, float_list  # noqa: E402


def side_by_side(images, height, gap):
    """One RGB image of the given uint8 RGB arrays scaled to `height`, left to right, `gap` white pixels apart."""
    scaled = [Image.fromarray(pixels).resize((max(1, round(pixels.shape[1] * height / pixels.shape[0])), height),
                                             Image.LANCZOS) for pixels in images]
    canvas = Image.new('RGB', (sum(image.width for image in scaled) + gap * (len(scaled) - 1), height), 'white')
    left = 0
    for image in scaled:
        canvas.paste(image, (left, 0))
        left += image.width + gap
    return canvas


def central_square(pixels):
    """The largest central square of uint8 (H, W, 3) pixels."""
    side = min(pixels.shape[:2])
    top, left = (pixels.shape[0] - side) // 2, (pixels.shape[1] - side) // 2
    return pixels[top:top + side, left:left + side]


def crop(pixels, left, top, side):
    """The square of uint8 (H, W, 3) pixels at `left`, `top` (shares of its width and height), `side` times its
    width a side, within the image."""
    height, width = pixels.shape[:2]
    size = max(1, min(round(side * width), height, width))
    x, y = min(round(left * width), width - size), min(round(top * height), height - size)
    return pixels[y:y + size, x:x + size]


def grid(images, columns, height, gap):
    """Rows of `columns` images (each row side_by_side), stacked `gap` white pixels apart."""
    rows = [side_by_side(images[first:first + columns], height, gap) for first in range(0, len(images), columns)]
    canvas = Image.new('RGB', (max(row.width for row in rows), len(rows) * (height + gap) - gap), 'white')
    for index, row in enumerate(rows):
        canvas.paste(row, (0, index * (height + gap)))
    return canvas


@cli_main
def main(argv=None):
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('images', nargs='+', help='the images, left to right')
    parser.add_argument('--output', required=True, help='the JPEG to write')
    parser.add_argument('--height', type=int, default=256, help='(default: %(default)s)')
    parser.add_argument('--gap', type=int, default=8, help='(default: %(default)s)')
    parser.add_argument('--columns', type=int, help='images per row (default: all in one row)')
    parser.add_argument('--square', action='store_true', help='cut each image to its central square first')
    parser.add_argument('--crop', type=float_list, metavar='X,Y,S',
                        help='cut the same square from each image first: its corner and side as shares (above)')
    parser.add_argument('--overwrite', action='store_true', help='replace an existing --output')
    args = parser.parse_args(argv)
    if args.crop is not None and (len(args.crop) != 3 or not (0 <= min(args.crop[:2]) and max(args.crop[:2]) < 1
                                                              and 0 < args.crop[2] <= 1)):
        parser.error('--crop takes X,Y,S: a corner of shares 0 to 1 and a side of 0 to 1 of the width, got %s'
                     % args.crop)
    images = [read_image(path) for path in args.images]
    if args.crop:
        images = [crop(pixels, *args.crop) for pixels in images]
    if args.square:
        images = [central_square(pixels) for pixels in images]
    figure = grid(images, args.columns or len(images), args.height, args.gap)
    outputs = Outputs(args.images, args.overwrite)
    outputs.claim(args.output)
    outputs.image(args.output, np.asarray(figure), quality=90)


if __name__ == '__main__':
    main()
