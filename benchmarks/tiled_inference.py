"""Tiled against whole-image inference: time, peak memory and the pixel difference.

  python benchmarks/tiled_inference.py --model_file models/wave.ckpt --image img/test.jpg [--sizes 2000x1500,4000x3000]

Each size runs eval.py's Stylizer in a fresh process (so peak memory is that run's own): whole where the image
fits the default pixel budget or a budget raised to fit, and tiled with a budget of --tile_pixels. Where both ran,
the mean and largest absolute difference of the outputs (grey levels, 0..255) are printed.
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from utils import ArgumentParser  # noqa: E402 (after the path it lives on)
from inference.stylizer import DEFAULT_MAX_PIXELS  # noqa: E402 (after the path it lives on)
WORKER = '''
import sys, time
sys.path.insert(0, %r)
from benchmarks.processes import own_peak_gb
import numpy as np
from PIL import Image
from inference.stylizer import Stylizer
image = np.asarray(Image.open(sys.argv[2]).convert('RGB'))
stylizer = Stylizer(sys.argv[1], max_pixels=int(sys.argv[3]))
start = time.time()
result = stylizer(image)
seconds = time.time() - start
np.save(sys.argv[4], result)
print(seconds, own_peak_gb())
''' % ROOT


def run(model_file, image, max_pixels, output):
    done = subprocess.run([sys.executable, '-c', WORKER, model_file, image, str(max_pixels), output],
                          capture_output=True, text=True, check=True)
    seconds, peak_gb = done.stdout.split()
    return float(seconds), float(peak_gb)


def main():
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--model_file', required=True)
    parser.add_argument('--image', required=True, help='a photo, resized to each size')
    parser.add_argument('--sizes', default='2000x1500,4000x3000', help='WIDTHxHEIGHT list (default: %(default)s)')
    parser.add_argument('--tile_pixels', type=int, default=DEFAULT_MAX_PIXELS,
                        help='pixel budget of the tiled runs (default: %(default)s, eval.py\'s default)')
    parser.add_argument('--whole_up_to', type=int, default=13000000,
                        help='run the whole-image version only up to this many pixels (default: %(default)s)')
    args = parser.parse_args()
    from PIL import Image
    print('| size | mode | seconds | peak memory (GB) | mean abs. difference | max abs. difference |')
    print('|---|---|---|---|---|---|')
    with tempfile.TemporaryDirectory() as scratch:
        for size in args.sizes.split(','):
            width, height = (int(v) for v in size.split('x'))
            photo = os.path.join(scratch, 'photo.png')
            Image.open(args.image).convert('RGB').resize((width, height), Image.BICUBIC).save(photo)
            results = {}
            modes = [('tiled', min(args.tile_pixels, width * height - 1))]
            if width * height <= args.whole_up_to:
                modes.insert(0, ('whole', width * height))
            for mode, budget in modes:
                output = os.path.join(scratch, mode + '.npy')
                seconds, peak = run(args.model_file, photo, budget, output)
                results[mode] = np.load(output).astype(np.int16)
                difference = ('%.4f' % np.abs(results[mode] - results['whole']).mean(),
                              '%d' % np.abs(results[mode] - results['whole']).max()) \
                    if mode == 'tiled' and 'whole' in results else ('-', '-')
                print('| %s | %s | %.1f | %.2f | %s | %s |' % (size, mode, seconds, peak, *difference), flush=True)


if __name__ == '__main__':
    main()
