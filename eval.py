"""Stylize an image with a trained model.

  python eval.py --model_file models/candy/fast-style-model.ckpt-done --image_file img/test.jpg

The model is a checkpoint prefix (V1 or V2 format, the original project's too), a model folder (its latest
checkpoint), or a frozen .pb written by export.py. The output has exactly the input's size.
"""
import argparse
import time

import numpy as np

import model
from preprocessing import vgg_preprocessing
from utils import (ArgumentParser, UsageError, cli_main, log, output_format, read_image, require_file, setup_logging,
                   tf, write_image)

FROZEN_INPUTS = ('input_image:0', 'height:0', 'width:0')
FROZEN_OUTPUT = 'output_image:0'


class Stylizer:
    """A trained model, loaded once; call it on uint8 RGB arrays (H, W, 3) of any size."""

    def __init__(self, model_file):
        self.graph = tf.Graph()
        if model_file.endswith('.pb'):
            self._run = self._load_frozen(model_file)
        else:
            self._run = self._load_checkpoint(model.find_checkpoint(model_file))
        self.graph.finalize()

    def _load_checkpoint(self, prefix):
        model.check_transform_checkpoint(prefix)
        with self.graph.as_default():
            image = tf.placeholder(tf.uint8, [None, None, 3], name='image')
            generated = model.net(tf.expand_dims(vgg_preprocessing.mean_image_subtraction(image), 0))
            # Truncation to integers, as the original's cast did.
            output = tf.cast(tf.clip_by_value(generated[0], 0, 255), tf.uint8)
            self.session = tf.Session()
            model.transform_saver().restore(self.session, prefix)
        log.info('model loaded from %s', prefix)
        return lambda pixels: self.session.run(output, {image: pixels})

    def _load_frozen(self, path):
        require_file(path, 'model file', 'pass a .pb written by export.py')
        graph_def = tf.GraphDef()
        try:
            with open(path, 'rb') as f:
                graph_def.ParseFromString(f.read())
        except Exception:  # protobuf raises its own DecodeError or RuntimeWarning-like errors on junk
            raise UsageError('model file is not a frozen TensorFlow graph: %s (pass a .pb written by export.py)'
                             % path) from None
        names = {node.name for node in graph_def.node}
        missing = [t.split(':')[0] for t in FROZEN_INPUTS + (FROZEN_OUTPUT,) if t.split(':')[0] not in names]
        if missing:
            raise UsageError('%s is a graph without the stylizer interface (no %s); pass a .pb written by '
                             'export.py' % (path, ', '.join(missing)))
        with self.graph.as_default():
            tf.import_graph_def(graph_def, name='')
            self.session = tf.Session()
        log.info('frozen model loaded from %s', path)

        def run(pixels):
            height, width = pixels.shape[:2]
            flat = self.session.run(FROZEN_OUTPUT, dict(zip(FROZEN_INPUTS, (pixels.reshape(-1), height, width))))
            return flat.reshape(height, width, 3).astype(np.uint8)
        return run

    def __call__(self, pixels):
        """Stylize one image: uint8 (H, W, 3) in, uint8 (H, W, 3) out."""
        return self._run(np.ascontiguousarray(pixels, dtype=np.uint8))

    def close(self):
        self.session.close()


def parse_args(argv):
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--model_file', required=True,
                        help='checkpoint prefix, model folder, or frozen .pb from export.py')
    parser.add_argument('--image_file', required=True, help='the image to stylize')
    parser.add_argument('--output', default='generated/res.jpg',
                        help='where to write the result; format from the extension (default: %(default)s)')
    return parser.parse_args(argv)


@cli_main
def main(argv=None):
    setup_logging()
    args = parse_args(argv)
    output_format(args.output)
    pixels = read_image(args.image_file, 'content image')
    stylizer = Stylizer(args.model_file)
    start = time.time()
    result = stylizer(pixels)
    stylizer.close()
    write_image(args.output, result)
    log.info('stylized %s (%dx%d) in %.2f s, written to %s', args.image_file, pixels.shape[1], pixels.shape[0],
             time.time() - start, args.output)


if __name__ == '__main__':
    main()
