"""stylize.py's peak memory against the estimate it refuses sizes by (stylize.estimate_memory).

  python benchmarks/stylize_memory.py [--loss_model_file pretrained/vgg_16.ckpt] [--sizes 64,400,800,1200]

Each row runs stylize.py in a fresh process for two iterations on a 4:3 photo at one result size (--max_size),
with L-BFGS and with Adam (a last row with the style image at three times the result's size), and prints the
measured peak resident memory beside the estimate. Without --loss_model_file a random-weight VGG-16 of the real
shapes is made (the same memory as the real one).
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from utils import ArgumentParser  # noqa: E402 (after the path it lives on)
import stylize  # noqa: E402 (after the path it lives on)
from nets.pretrained import save_random_vgg  # noqa: E402


WORKER = """
import sys
sys.path.insert(0, %r)
from benchmarks.processes import own_peak_gb
import stylize
stylize.main(sys.argv[1:])
print(own_peak_gb())
""" % ROOT


def peak_gb(argv):
    """Peak resident memory in GB of a stylize.py run with argv, in a fresh process."""
    done = subprocess.run([sys.executable, '-c', WORKER, *argv], check=True, capture_output=True, text=True)
    return float(done.stdout.split()[-1])


def main():
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--loss_model_file', help='VGG-16 weights (default: random weights of the real shapes)')
    parser.add_argument('--sizes', default='64,400,800,1200', help='result long sides')
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix='stylize_memory_')
    weights = args.loss_model_file or save_random_vgg(os.path.join(folder, 'vgg_16.ckpt'))
    photo = os.path.join(folder, 'photo.png')
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (48, 64, 3), np.uint8)).save(photo)
    print('| result | style scale | L-BFGS peak | Adam peak | estimate | estimate / L-BFGS |')
    print('|---|---|---|---|---|---|')
    rows = [(int(item), 1.0) for item in args.sizes.split(',')] + [(400, 3.0)]
    for size, style_scale in rows:
        peaks = [peak_gb(['--content', photo, '--style', photo, '--loss_model_file', weights, '--max_size', str(size),
                          '--style_scale', str(style_scale), '--iterations', '2', '--optimizer', optimizer,
                          '--output', os.path.join(folder, 'o.png')]) for optimizer in ('lbfgs', 'adam')]
        height, width = stylize.scaled_size(48, 64, size)
        style_pixels = np.prod(stylize.scaled_size(48, 64, round(style_scale * size)))
        estimate = stylize.estimate_memory(height * width, style_pixels, 2 * 48 * 64) / 1e9
        print('| %dx%d | %g | %.2f GB | %.2f GB | %.2f GB | %.2f |'
              % (width, height, style_scale, *peaks, estimate, estimate / peaks[0]))


if __name__ == '__main__':
    main()
