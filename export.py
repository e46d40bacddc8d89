"""Export a trained model in a form that runs without this project's code.

  python export.py --model_file models/wave.ckpt                      # models/wave.pb, frozen GraphDef
  python export.py --model_file models/wave.ckpt --format savedmodel  # models/wave_savedmodel/
  python export.py --model_file models/wave.ckpt --format tflite [--fp16]   # models/wave.tflite (_fp16.tflite)
  python export.py --model_file models/udnie --format ckpt    # a model folder of train.py: models/udnie.ckpt.*

pb: the original's interface: int32 `input_image` (RGB flattened, H*W*3), int32 scalars `height` and `width`,
int32 `output_image` (flattened H*W*3, 0..255).
savedmodel: signature 'serving_default', input 'image' uint8 (N, H, W, 3) of any size, output 'stylized' uint8.
tflite: input float32 (1, H, W, 3) RGB 0..255 of any size (resize the input tensor), output float32 (1, H, W, 3),
whole numbers 0..255; --fp16 stores the weights in float16 (half the size).
A network of several styles takes float32 `style_weights` (one share per style) too, and one of several stroke sizes
(a config's style_scales) also float32 `stroke`, which feeds `output_image_by_stroke` (pb) or the signature
`by_stroke` (savedmodel): docs/EXPORTS.md, docs/STROKE.md.
ckpt: a checkpoint of the transform network's weights alone, without the training state (Adam's slots, the global
step): a third of the size, and it loads wherever a checkpoint does (eval.py, serve.py, export.py).

Magenta's arbitrary-style network (docs/ARBITRARY.md) exports as pb, savedmodel or tflite: uint8 `image`
(N, H, W, 3) and `style_image` (1, h, w, 3), int32 `style_size` (default 256) -> uint8 `stylized`; the predicted
`style_embedding` (100,) can be fed instead of a style image. The SavedModel has the signatures serving_default,
predict_style and transfer (its two halves); the .tflite has predict_style and transfer.
"""
import argparse
import functools
import glob
import os
import re

import checkpoints
import model
import style_names
from files import Outputs
from inference import arbitrary, model_files, stroke, stylizer
from nets import arbitrary as arbitrary_net
from preprocessing import vgg_preprocessing
from utils import (ArgumentParser, UsageError, cli_main, log, run_and_exit, setup_logging, shorten, tensorflow_module,
                   tf)

# The original export's means; the first instance normalization removes any constant shift of the input,
# so these and the training means give the same pixels up to float rounding.
EXPORT_MEANS = (123.68, 116.779, 103.939)
ARBITRARY_FORMATS = ('pb', 'savedmodel', 'tflite')
NAME = re.compile(r'[A-Za-z0-9][A-Za-z0-9_.-]*')  # --name: a file name beside the model, no path
SUFFIXES = {'pb': '.pb', 'savedmodel': '_savedmodel', 'tflite': '.tflite', 'ckpt': '.ckpt'}
KINDS = {'pb': 'frozen graph', 'savedmodel': 'SavedModel', 'tflite': 'TFLite model', 'ckpt': 'weights-only checkpoint'}


def styles_of(prefix):
    """How many styles the checkpoint's network holds."""
    return model.styles_in(tf.train.load_checkpoint(prefix).get_variable_to_shape_map())


def style_input(styles):
    """For a network of several styles, the float input `style_weights` (styles,): each style's share; else None."""
    return tf.placeholder(tf.float32, [styles], name=stylizer.STYLE_INPUT) if styles > 1 else None


def build_frozen_interface(styles=1, formulation=model.INFERENCE, scales=None):
    """The frozen graph's interface around the transform network, built as `formulation` says (model.py); returns
    the output tensors: output_image, output_image_by_region, which takes `mask` instead of the style, and for a
    network of several style scales (their `scales`, inference/stroke.py) output_image_by_stroke, which takes
    `stroke`."""
    flat = tf.placeholder(tf.int32, [None], name='input_image')
    height = tf.placeholder(tf.int32, [], name='height')
    width = tf.placeholder(tf.int32, [], name='width')
    image = tf.reshape(flat, tf.stack([1, height, width, 3]))
    generated = model.net(vgg_preprocessing.mean_image_subtraction(image, EXPORT_MEANS), formulation,
                          style_weights=style_input(styles))
    output = tf.reshape(tf.cast(tf.clip_by_value(generated, 0, 255), tf.int32), [-1], name='output_image')
    masks = tf.reshape(tf.placeholder(tf.float32, [None], name=model_files.MASK_INPUT),
                       tf.stack([1, height, width, styles]))
    with tf.variable_scope(tf.get_variable_scope(), reuse=True):
        by_region = stylize_by_region(image, masks, styles, lambda image, style: model.net(
            vgg_preprocessing.mean_image_subtraction(image, EXPORT_MEANS), formulation, style_weights=style))
        by_stroke = [] if scales is None else [model.net(
            vgg_preprocessing.mean_image_subtraction(image, EXPORT_MEANS), formulation,
            style_weights=stroke_input(scales)[1])]
    return [output, tf.reshape(tf.cast(by_region, tf.int32), [-1], name=model_files.BY_REGION_OUTPUT)] + [
        tf.reshape(tf.cast(tf.clip_by_value(generated, 0, 255), tf.int32), [-1], name=model_files.BY_STROKE_OUTPUT)
        for generated in by_stroke]


def stroke_input(scales):
    """(a new float32 scalar input `stroke`, the style weights it gives a network of several style scales)."""
    at = tf.placeholder(tf.float32, [], name=model_files.STROKE_INPUT)
    return at, stroke.weights_in_graph(at, scales)


def stylize_by_region(images, masks, styles, net):
    """The style by region that eval.py's --mask NAME=PATH gives, for masks of every style in order (no photo mask),
    in the graph: net(images, style) run on the masks' shares of the styles (inference.masks.regions), then blended
    with the photo where the masks leave it uncovered.

    Args:
      images: (N, H, W, 3) RGB, 0..255 (any type); masks: float (1, H, W, styles) in [0, 1].
      net: net(images, style_weights) -> float (N, H, W, 3) in 0..255, as model.net.

    Returns:
      float32 (N, H, W, 3) of whole numbers 0..255.
    """
    masks = tf.clip_by_value(model.finite_or_zero(masks), 0, 1)
    covered = tf.reduce_sum(masks, -1, keepdims=True)
    total = tf.maximum(covered, 1.0)  # where they add up to more than 1, they are scaled to 1
    shares, photo = masks / total, tf.nn.relu(1 - covered) / total
    style = None
    if styles > 1:  # their shares among themselves; pixels that keep the photo whole take their mean over it
        among = tf.reduce_sum(shares, -1, keepdims=True)
        mean = tf.reduce_sum(shares, [0, 1, 2]) / tf.maximum(tf.reduce_sum(shares), 1e-30)
        styled = tf.cast(among > 0, tf.float32)
        style = model.StyleMap(tf.eye(styles), styled * shares / tf.maximum(among, 1e-30) + (1 - styled) * mean)
    stylized = tf.cast(tf.cast(tf.clip_by_value(net(images, style), 0, 255), tf.uint8), tf.float32)
    strength = 1 - photo
    return tf.round(strength * stylized + (1 - strength) * tf.cast(images, tf.float32))


def build_tflite_interface(styles=1, formulation=model.INFERENCE):
    """float32 (1, H, W, 3) in, float32 whole numbers out: what TFLite's interpreter feeds most easily."""
    image = tf.placeholder(tf.float32, [1, None, None, 3], name='image')
    generated = model.net(vgg_preprocessing.mean_image_subtraction(image), formulation,
                          style_weights=style_input(styles))
    return tf.floor(tf.clip_by_value(generated, 0, 255), name='stylized')


def names_of(prefix):
    """The names of the checkpoint's styles (style_names), or None."""
    return style_names.from_checkpoint(prefix, styles_of(prefix))


def names_variable(prefix):
    """[the style_names variable, made in the current graph] for a checkpoint with style names, else []."""
    names = names_of(prefix)
    return [style_names.variable(names)] if names else []


def freeze(prefix, build):
    """A GraphDef of build(styles)'s graph (which returns its output tensor, or a list of them) with the checkpoint's
    weights folded in as constants, and its style names, if it has them, as the constant style_names."""
    names = names_of(prefix)
    with tf.Graph().as_default() as graph:
        kept = [output.op.name for output in tf.nest.flatten(build(styles_of(prefix)))]
        if names:
            kept.append(tf.constant(names, name=style_names.NAME).op.name)
        with tf.Session() as sess:
            checkpoints.transform_saver().restore(sess, prefix)
            return tf.graph_util.convert_variables_to_constants(sess, graph.as_graph_def(), kept)


# Each export_* writes the model at checkpoint `prefix` to `output` through `outputs` (files.Outputs), which
# refuses to replace anything but an earlier export of the same format (replaceable_export).

def export_frozen(prefix, output, outputs, formulation=model.INFERENCE):
    graph_def = freeze(prefix, functools.partial(build_frozen_interface, formulation=formulation,
                                                 scales=stroke.scales_of(names_of(prefix))))
    outputs.data(output, graph_def.SerializeToString(), **replaceable_export('pb'))


def export_saved_model(prefix, output, outputs, formulation=model.INFERENCE):
    """A SavedModel built in a staging folder beside `output` and moved into place, so a failure leaves any old
    one intact."""
    with outputs.folder(output, **replaceable_export('savedmodel')) as staging, tf.Graph().as_default():
        images = tf.placeholder(tf.uint8, [None, None, None, 3], name='image')
        mix = style_input(styles_of(prefix))
        stylized = tf.identity(model.stylize_uint8(images, formulation, mix), name='stylized')
        styles = max(1, styles_of(prefix))
        masks = tf.placeholder(tf.float32, [1, None, None, styles], name=model_files.MASK_INPUT)
        with tf.variable_scope(tf.get_variable_scope(), reuse=True):
            by_region = tf.cast(stylize_by_region(images, masks, styles, lambda image, style: model.net(
                vgg_preprocessing.mean_image_subtraction(image), formulation, style_weights=style)), tf.uint8)
        signatures = {model_files.BY_REGION_SIGNATURE: predict({'image': images, model_files.MASK_INPUT: masks},
                                                               by_region)}
        scales = stroke.scales_of(names_of(prefix))
        if scales is not None:
            at, weights = stroke_input(scales)
            with tf.variable_scope(tf.get_variable_scope(), reuse=True):
                signatures[model_files.BY_STROKE_SIGNATURE] = predict(
                    {'image': images, model_files.STROKE_INPUT: at}, model.stylize_uint8(images, formulation, weights))
        names = names_variable(prefix)
        with tf.Session() as sess:
            sess.run(tf.variables_initializer(names))
            checkpoints.transform_saver().restore(sess, prefix)
            builder = tf.saved_model.builder.SavedModelBuilder(staging)
            inputs = {'image': images, **({stylizer.STYLE_INPUT: mix} if mix is not None else {})}
            builder.add_meta_graph_and_variables(sess, [tf.saved_model.tag_constants.SERVING], signature_def_map={
                'serving_default': predict(inputs, stylized), **signatures})
            builder.save()


def predict(inputs, stylized):
    """A prediction signature of these inputs (name -> tensor) and the output 'stylized'."""
    return tf.saved_model.signature_def_utils.predict_signature_def(inputs=inputs, outputs={'stylized': stylized})


def export_tflite(prefix, output, outputs, fp16=False, formulation=model.INFERENCE):
    graph_def = freeze(prefix, functools.partial(build_tflite_interface, formulation=formulation))
    inputs = ['image:0'] + ([stylizer.STYLE_INPUT + ':0'] if styles_of(prefix) > 1 else [])
    with tf.Graph().as_default() as graph:
        tf.import_graph_def(graph_def, name='')
        with tf.Session() as sess:
            converter = tf.lite.TFLiteConverter.from_session(
                sess, [graph.get_tensor_by_name(name) for name in inputs], [graph.get_tensor_by_name('stylized:0')])
            if fp16:
                converter.optimizations = [tf.lite.Optimize.DEFAULT]
                converter.target_spec.supported_types = [tf.float16]
            converted, names = converter.convert(), names_of(prefix)
            if names:
                converted = style_names.tflite_with_names(converted, names)
            outputs.data(output, converted, **replaceable_export('tflite'))


def export_checkpoint(prefix, output, outputs):
    """The transform network's variables alone, restored from `prefix` and saved as the checkpoint `output`."""
    with tf.Graph().as_default():
        model.net(tf.placeholder(tf.float32, [1, None, None, 3]), style_weights=style_input(styles_of(prefix)))
        names = names_variable(prefix)
        restorer, saver = checkpoints.transform_saver(), checkpoints.transform_saver(names)
        with tf.Session() as sess:
            sess.run(tf.variables_initializer(names))
            restorer.restore(sess, prefix)
            with outputs.checkpoint(output, **replaceable_export('ckpt')) as staged:
                saver.save(sess, staged, write_meta_graph=False, write_state=False)


# Magenta's arbitrary-style network: the same formats, around arbitrary.build_export's interface.

def _restored_arbitrary(sess, prefix):
    """Restore the network's variables (all of the current graph's) from Magenta's checkpoint, which may hold more."""
    tf.train.Saver().restore(sess, prefix)


def export_arbitrary_frozen(prefix, output, outputs):
    with tf.Graph().as_default() as graph:
        arbitrary.build_export()
        with tf.Session() as sess:
            _restored_arbitrary(sess, prefix)
            graph_def = tf.graph_util.convert_variables_to_constants(
                sess, graph.as_graph_def(), ['stylized', 'style_embedding', arbitrary.BY_REGION_OUTPUT])
    outputs.data(output, graph_def.SerializeToString(), **replaceable_export('pb'))


def export_arbitrary_saved_model(prefix, output, outputs):
    with outputs.folder(output, **replaceable_export('savedmodel')) as staging:
        _write_arbitrary_saved_model(prefix, staging)


def export_arbitrary_tflite(prefix, output, outputs, fp16=False):
    """One .tflite holding the SavedModel's predict_style and transfer signatures (two subgraphs sharing nothing):
    Magenta's mobile split into a style predictor and a transformer, in one file. An app predicts a style once and
    runs transfer on every photo or frame; one model with both inputs would run Inception on every call."""
    with outputs.scratch() as scratch:
        saved_model = os.path.join(scratch, 'savedmodel')
        _write_arbitrary_saved_model(prefix, saved_model)
        # TensorFlow 2's converter, which alone takes several signatures, and only while executing eagerly.
        with tensorflow_module('tensorflow.python.eager.context').eager_mode():
            converter = tensorflow_module('tensorflow').lite.TFLiteConverter.from_saved_model(
                saved_model, signature_keys=[arbitrary.PREDICT_SIGNATURE, arbitrary.TRANSFER_SIGNATURE],
                tags=['serve'])
            if fp16:
                converter.optimizations = [tf.lite.Optimize.DEFAULT]
                converter.target_spec.supported_types = [tf.float16]
            converted = converter.convert()
    outputs.data(output, converted, **replaceable_export('tflite'))


def _write_arbitrary_saved_model(prefix, folder):
    """Signatures: serving_default (image, style_image -> stylized), and its two halves, predict_style (style_image,
    style_size -> style_embedding) and transfer (image, style_embedding -> stylized), so that a client predicts a
    style once and applies it to many images; and by_region (image, style_image, mask -> stylized: the style where
    the mask is white, the photo's own where it is black)."""
    with tf.Graph().as_default() as graph:
        stylized = arbitrary.build_export()
        image, style_image, side, embedding, mask, by_region = (graph.get_tensor_by_name(name + ':0') for name in (
            'image', 'style_image', 'style_size', 'style_embedding', model_files.MASK_INPUT, arbitrary.BY_REGION_OUTPUT))
        predict = tf.saved_model.signature_def_utils.predict_signature_def
        signatures = {
            model_files.BY_REGION_SIGNATURE: predict({'image': image, 'style_image': style_image, 'mask': mask},
                                                     {'stylized': by_region}),
            'serving_default': predict({'image': image, 'style_image': style_image}, {'stylized': stylized}),
            arbitrary.PREDICT_SIGNATURE: predict({'style_image': style_image, 'style_size': side},
                                                 {'style_embedding': embedding}),
            arbitrary.TRANSFER_SIGNATURE: predict({'image': image, 'style_embedding': embedding},
                                                  {'stylized': stylized})}
        with tf.Session() as sess:
            _restored_arbitrary(sess, prefix)
            builder = tf.saved_model.builder.SavedModelBuilder(folder)
            builder.add_meta_graph_and_variables(sess, [tf.saved_model.tag_constants.SERVING],
                                                 signature_def_map=signatures)
            builder.save()


def default_output(prefix, name, fmt, fp16=False):
    """Beside the model: <model folder's parent>/<name><suffix> for a training folder's checkpoint, the name
    defaulting to the folder's (models/udnie -> models/udnie.pb); <folder>/<name><suffix> for a weights-only
    checkpoint, the name defaulting to its own (models/wave.ckpt -> models/wave.pb). A float16 TFLite model gets
    its own name (<name>_fp16.tflite), so that it never replaces the float32 one."""
    folder, base = os.path.split(os.path.abspath(prefix))
    if base.startswith(checkpoints.CHECKPOINT_NAME):
        folder, base = os.path.split(folder)
    else:
        base = base[:-len('.ckpt')] if base.endswith('.ckpt') else base
    suffix = '_fp16.tflite' if fp16 else SUFFIXES[fmt]
    return os.path.relpath(os.path.join(folder, (name or base) + suffix))


# What an earlier export of each kind looks like, so that replacing it can never replace anything else.
_SAVED_MODEL_ENTRIES = {'saved_model.pb', 'fingerprint.pb', 'variables', 'assets'}
TFLITE_IDENTIFIER = b'TFL3'  # a TFLite flatbuffer's file identifier, bytes 4 to 8


def is_earlier_export(path, fmt):
    """True when `path` is what export.py writes in format `fmt` (so replacing it loses nothing else)."""
    try:
        if fmt == 'pb':
            return os.path.isfile(path) and bool(model_files.read_frozen_graph(path))
        if fmt == 'tflite':
            with open(path, 'rb') as f:
                return f.read(8)[4:] == TFLITE_IDENTIFIER
        if fmt == 'ckpt':
            files = {name[len(path):] for name in glob.glob(glob.escape(path) + '.*')}
            names = tf.train.load_checkpoint(path).get_variable_to_shape_map()
            return (not os.path.lexists(path) and files == {'.index', '.data-00000-of-00001'}
                    and set(names) - {style_names.NAME} == set(model.expected_transform_variables(
                        model.styles_in(names))))
        model_files.check_saved_model(path)
        return (set(os.listdir(path)) <= _SAVED_MODEL_ENTRIES
                and all(name.startswith('variables.') for name in os.listdir(os.path.join(path, 'variables'))))
    except (UsageError, OSError, tf.errors.OpError, ValueError):
        return False


def replaceable_export(fmt):
    """Outputs.claim's options for an export in format `fmt`: only an earlier export of that format is replaced
    (with --overwrite)."""
    return {'replaceable': functools.partial(is_earlier_export, fmt=fmt),
            'kind': 'a %s written by export.py' % KINDS[fmt]}


def parse_args(argv):
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--model_file', required=True, help='checkpoint prefix or model folder (latest checkpoint)')
    parser.add_argument('--format', choices=sorted(SUFFIXES), default='pb', help='(default: %(default)s)')
    parser.add_argument('--fp16', action='store_true', help='tflite: store the weights in float16')
    parser.add_argument('--output', help='where to write (default: beside the model, <NAME>.pb, <NAME>_savedmodel/, '
                                         '<NAME>.tflite or, with --fp16, <NAME>_fp16.tflite; for ckpt the prefix '
                                         '<NAME>.ckpt: models/udnie -> models/udnie.pb, models/wave.ckpt -> '
                                         'models/wave.pb)')
    parser.add_argument('-n', '--name', help="the model's name for the default output (default: the model "
                                             "folder's name, e.g. udnie)")
    parser.add_argument('--overwrite', action='store_true',
                        help='replace an earlier export of the same format at the output (never anything else)')
    args = parser.parse_args(argv)
    if args.fp16 and args.format != 'tflite':
        parser.error('--fp16 applies to --format tflite only')
    if args.name is not None and not NAME.fullmatch(args.name):
        parser.error('--name %s must be a file name of letters, digits, _ . or -, starting with a letter or digit '
                     '(it names the export beside the model; --output takes a path)' % shorten(args.name))
    if args.name and args.output:
        parser.error('--name names the default output; with --output, the output is the path given there')
    return args


@cli_main
def main(argv=None):
    setup_logging()
    args = parse_args(argv)
    prefix = checkpoints.find_checkpoint(args.model_file)
    shapes = checkpoints.read_checkpoint_shapes(prefix, 'checkpoint')
    is_arbitrary = arbitrary_net.is_arbitrary(shapes)
    if is_arbitrary and args.format not in ARBITRARY_FORMATS:
        raise UsageError("%s is Magenta's arbitrary-style network: export it as --format %s"
                         % (prefix, ' or '.join(ARBITRARY_FORMATS)))
    if not is_arbitrary:
        checkpoints.check_transform_checkpoint(prefix)
    output = args.output or default_output(prefix, args.name, args.format, args.fp16)
    outputs = Outputs([args.model_file, prefix], args.overwrite)
    outputs.claim(output, **replaceable_export(args.format), folder=args.format == 'savedmodel',
                  checkpoint=args.format == 'ckpt')
    if is_arbitrary:
        with tf.Graph().as_default():  # checked against the network's own variables before any work
            arbitrary.from_checkpoint(prefix, shapes, tf.get_default_graph())
        if args.format == 'tflite':
            export_arbitrary_tflite(prefix, output, outputs, args.fp16)
        else:
            (export_arbitrary_frozen if args.format == 'pb' else export_arbitrary_saved_model)(prefix, output,
                                                                                              outputs)
    elif args.format == 'pb':
        export_frozen(prefix, output, outputs)
    elif args.format == 'savedmodel':
        export_saved_model(prefix, output, outputs)
    elif args.format == 'ckpt':
        export_checkpoint(prefix, output, outputs)
    else:
        export_tflite(prefix, output, outputs, args.fp16)
    log.info('%s%s of %s written to %s', KINDS[args.format], ' (float16 weights)' if args.fp16 else '', prefix, output)


if __name__ == '__main__':
    run_and_exit(main)
