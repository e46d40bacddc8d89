"""Freeze a trained model into a standalone TensorFlow graph (.pb) that needs none of this project's code.

  python export.py --model_file models/candy [--output models/candy.pb]

Interface (as the original's exported graphs): int32 inputs `input_image` (the RGB image flattened, H*W*3),
`height` and `width` (scalars); int32 output `output_image` (flattened H*W*3, values 0..255).
"""
import argparse
import os

import model
from preprocessing import vgg_preprocessing
from utils import ArgumentParser, UsageError, cli_main, log, setup_logging, tf

# The original export's means; the first instance normalization removes any constant shift of the input,
# so these and the training means give the same pixels up to float rounding.
EXPORT_MEANS = (123.68, 116.779, 103.939)


def build_export_graph():
    """The frozen graph's interface around the transform network; returns the output tensor."""
    flat = tf.placeholder(tf.int32, [None], name='input_image')
    height = tf.placeholder(tf.int32, [], name='height')
    width = tf.placeholder(tf.int32, [], name='width')
    image = tf.reshape(flat, tf.stack([1, height, width, 3]))
    generated = model.net(vgg_preprocessing.mean_image_subtraction(image, EXPORT_MEANS))
    return tf.reshape(tf.cast(tf.clip_by_value(generated, 0, 255), tf.int32), [-1], name='output_image')


def freeze(prefix):
    """A GraphDef with the checkpoint's weights folded in as constants."""
    with tf.Graph().as_default() as graph:
        output = build_export_graph()
        with tf.Session() as sess:
            model.transform_saver().restore(sess, prefix)
            return tf.graph_util.convert_variables_to_constants(sess, graph.as_graph_def(), [output.op.name])


def default_output(prefix, name):
    """<model folder's parent>/<name>.pb, the name defaulting to the model folder's name."""
    model_dir = os.path.dirname(os.path.abspath(prefix))
    path = os.path.join(os.path.dirname(model_dir), (name or os.path.basename(model_dir)) + '.pb')
    return os.path.relpath(path)


def write_atomically(path, data):
    """Write bytes to path through a temporary file, so a failed write leaves any old file intact."""
    folder = os.path.dirname(path)
    try:
        if folder:
            os.makedirs(folder, exist_ok=True)
        with open(path + '.tmp', 'wb') as f:
            f.write(data)
        os.replace(path + '.tmp', path)
    except OSError as error:
        raise UsageError('cannot write %s (%s); pass a writable --output' % (path, error.strerror)) from None


def parse_args(argv):
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--model_file', required=True, help='checkpoint prefix or model folder (latest checkpoint)')
    parser.add_argument('--output', help='the .pb to write (default: <model folder>/../<NAME>.pb)')
    parser.add_argument('-n', '--name', help="the model's name for the default output (default: the model "
                                             "folder's name, e.g. candy)")
    return parser.parse_args(argv)


@cli_main
def main(argv=None):
    setup_logging()
    args = parse_args(argv)
    prefix = model.find_checkpoint(args.model_file)
    model.check_transform_checkpoint(prefix)
    output = args.output or default_output(prefix, args.name)
    graph_def = freeze(prefix)
    write_atomically(output, graph_def.SerializeToString())
    log.info('frozen graph of %s written to %s (%.1f MB; inputs input_image, height, width; output output_image)',
             prefix, output, os.path.getsize(output) / 1e6)


if __name__ == '__main__':
    main()
