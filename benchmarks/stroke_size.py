"""Stroke size, measured: the texture wavelength of results at each setting of each model type's stroke knob.

  python benchmarks/stroke_size.py --photos img/test.jpg,img/rocket.jpg [--model_file models/wave_strokes.ckpt]
      [--strokes 0.5,0.71,1,1.41,2] [--arbitrary pretrained/arbitrary_style_transfer/model.ckpt
      --style_sizes 512,256,128] [--loss_model_file pretrained/vgg_16.ckpt --style img/wave.jpg
      --style_scales 0.5,1,2 --gatys_size 384 --iterations 40] [--save_dir generated/strokes]

The measure (texture_wavelength) is the power-weighted mean wavelength of a result's luma after a high-pass, in
pixels: the photo's shading is taken out by subtracting a Gaussian blur, and what remains is the texture, whose
power moves to longer wavelengths when the strokes grow. Each photo's own value is printed beside its results, so
that the table says how much of the texture is the style's. A network trained with style_scales is measured at each
--stroke; Magenta's arbitrary-style network at each --style_sizes with --style as its style image, where
--arbitrary is given; Gatys (stylize.py) at each --style_scale, where --loss_model_file is given. --save_dir keeps the results,
for docs/figure.py to put side by side.
"""
import argparse
import os
import sys
import tempfile

import numpy as np
from scipy import ndimage

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from utils import ArgumentParser, float_list  # noqa: E402 (after the path it lives on)

SHORTEST, LONGEST = 3.0, 64.0  # the band of wavelengths, in pixels, that the measure averages over
BLUR_SIGMA = 24.0  # the high-pass: what varies over more than about this many pixels is the photo's shading


def texture_wavelength(pixels):
    """The power-weighted mean wavelength in pixels of the texture of uint8 RGB pixels (H, W, 3), within
    SHORTEST..LONGEST (see the module's docstring)."""
    luma = pixels.astype(np.float64) @ [0.299, 0.587, 0.114]
    texture = luma - ndimage.gaussian_filter(luma, BLUR_SIGMA, mode='reflect')
    window = np.outer(np.hanning(luma.shape[0]), np.hanning(luma.shape[1]))
    power = np.abs(np.fft.fft2(texture * window)) ** 2
    frequency = np.hypot(*np.meshgrid(np.fft.fftfreq(luma.shape[0]), np.fft.fftfreq(luma.shape[1]), indexing='ij'))
    band = (frequency >= 1 / LONGEST) & (frequency <= 1 / SHORTEST)
    return 1 / (np.sum(frequency[band] * power[band]) / np.sum(power[band]))


def load(path, side):
    from images import read_image
    from stylize import resize_long_side
    return resize_long_side(read_image(path, 'photo'), side)


def network_results(model_file, photos, strokes):
    """{stroke: [the network's result for each photo]} at each stroke size."""
    from inference import stroke
    from inference.stylizer import Stylizer
    stylizer = Stylizer(model_file)
    scales = stroke.scales_of(stylizer.style_names)
    for value in strokes:
        stroke.check_stroke(value, scales, model_file)
    return {value: [stylizer(photo, progress=False, style=stroke.stroke_weights(value, scales)) for photo in photos]
            for value in strokes}


def arbitrary_results(checkpoint, style, photos, sides):
    """{style_size: [Magenta's network's result for each photo]} with the style image resized to each side."""
    from images import read_image
    from inference.stylizer import Stylizer
    stylizer = Stylizer(checkpoint)
    pixels = read_image(style, 'style image')
    return {side: [stylizer(photo, progress=False, style=stylizer.embed(pixels, side)) for photo in photos]
            for side in sides}


def gatys_results(args, paths, scales):
    """{style_scale: [stylize.py's result for each photo]} at each --style_scale."""
    import stylize
    from images import read_image
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        for scale in scales:
            results[scale] = []
            for index, path in enumerate(paths):
                output = os.path.join(folder, '%g-%d.png' % (scale, index))
                stylize.main(['--content', path, '--style', args.style, '--loss_model_file', args.loss_model_file,
                              '--max_size', str(args.gatys_size), '--style_scale', str(scale), '--iterations',
                              str(args.iterations), '--output', output, '--no_download'])
                results[scale].append(read_image(output, 'result'))
    return results


def table(title, knob, results, photos):
    """Print one markdown table: a row per setting, a column per photo, the photo's own value first."""
    names = [os.path.basename(path) for path in photos]
    print('\n%s\n\n| %s | %s | mean |' % (title, knob, ' | '.join(names)))
    print('|---|%s---|' % ('---|' * len(names)))
    for setting, images in results.items():
        values = [texture_wavelength(image) for image in images]
        print('| %s | %s | %.2f |' % (setting, ' | '.join('%.2f' % value for value in values), np.mean(values)))


def save(folder, results, paths, knob):
    """Write every result as <folder>/<photo>-<knob><setting>.png, for docs/figure.py to put side by side."""
    from files import Outputs
    outputs = Outputs(paths, own=[folder])
    written = {os.path.join(folder, '%s-%s%s.png' % (os.path.splitext(os.path.basename(path))[0], knob, setting)):
               image for setting, images in results.items() for path, image in zip(paths, images)}
    for name in written:
        outputs.claim(name, option='--save_dir')
    for name, image in written.items():
        outputs.image(name, image)


def main():
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--photos', required=True, help='comma-separated photos not trained on')
    parser.add_argument('--side', type=int, default=512, help="the photos' long side for the networks")
    parser.add_argument('--model_file', help='a network trained with style_scales')
    parser.add_argument('--strokes', type=float_list, default=[0.5, 2 ** -0.5, 1, 2 ** 0.5, 2])
    parser.add_argument('--arbitrary', help="Magenta's arbitrary-style checkpoint: measure it at each --style_sizes")
    parser.add_argument('--style_sizes', type=float_list, default=[512, 256, 128])
    parser.add_argument('--loss_model_file', help='VGG-16 weights: measure Gatys at each --style_scales too')
    parser.add_argument('--style', default=os.path.join(ROOT, 'img', 'wave.jpg'))
    parser.add_argument('--style_scales', type=float_list, default=[0.5, 1, 2])
    parser.add_argument('--gatys_size', type=int, default=384)
    parser.add_argument('--iterations', type=int, default=40)
    parser.add_argument('--save_dir', help='write each result here as <photo>-<knob><setting>.png')
    args = parser.parse_args()
    paths = args.photos.split(',')
    from benchmarks.performance import machine_description
    print('machine: %s' % machine_description())
    if args.model_file:
        photos = [load(path, args.side) for path in paths]
        results = {'%.3g' % key: value for key, value in network_results(args.model_file, photos, args.strokes).items()}
        table('%s, --stroke, photos at %d px' % (os.path.basename(args.model_file), args.side), '--stroke',
              {'photo': photos, **results}, paths)
        if args.save_dir:
            save(args.save_dir, results, paths, 'stroke')
    if args.arbitrary:
        photos = [load(path, args.side) for path in paths]
        results = {'%d' % key: value for key, value in arbitrary_results(
            args.arbitrary, args.style, photos, [int(side) for side in args.style_sizes]).items()}
        table("Magenta's network, --style_size (--style_image %s), photos at %d px" % (args.style, args.side),
              '--style_size', {'photo': photos, **results}, paths)
        if args.save_dir:
            save(args.save_dir, results, paths, 'style_size')
    if args.loss_model_file:
        results = {'%g' % key: value for key, value in gatys_results(args, paths, args.style_scales).items()}
        photos = [load(path, args.gatys_size) for path in paths]
        table('Gatys (stylize.py), --style_scale, %d px, %d L-BFGS iterations' % (args.gatys_size, args.iterations),
              '--style_scale', {'photo': photos, **results}, paths)
        if args.save_dir:
            save(args.save_dir, results, paths, 'style_scale')


if __name__ == '__main__':
    main()
