"""A trained transform network, loaded once from any of its forms, stylizing images of any size.

Forms: a checkpoint prefix (V1 or V2), a model folder (its latest checkpoint), or from export.py a frozen GraphDef
(.pb), a SavedModel folder or a TFLite model (.tflite, run by TensorFlow's TFLite interpreter); or a checkpoint of
Magenta's arbitrary-style network, which stylizes in the style of an embedding it predicts from any style image
(inference/arbitrary.py). Images above a pixel budget are stylized in tiles with the whole image's normalization
statistics (inference/tiling.py), using the model's weights in our own graph (which a .tflite does not give).

Exported models are checked before they are loaded (inference/model_files.py).
"""
import functools
import math
import os
import threading

import numpy as np

import checkpoints
import model
import style_names
from inference import arbitrary, tiling
from inference.model_files import (FROZEN_INPUTS, FROZEN_OUTPUT, SIGNATURE_INPUT, SIGNATURE_OUTPUT, STYLE_INPUT,
                                   check_saved_model, read_frozen_graph)
from nets import arbitrary as arbitrary_net
from utils import UsageError, computing_precision, log, native_logs_muted, require_file, session_config, tf

# About 0.3 to 0.5 KB of memory per pixel for a whole image on top of 0.6 GB, by CPU and whether the process has run
# that size before (benchmarks/tiled_inference.py, scaling.py): 2.5 megapixels take 1.4 to 1.9 GB, and tiles within
# that budget about 2.2 GB (the statistics passes hold a whole-resolution map of the tile too). 6 megapixels would
# take 2.4 GB whole but 3.7 GB tiled.
DEFAULT_MAX_PIXELS = 2500000


def _saved_model_weights(path):
    """The transform weights a SavedModel from export.py holds, read and checked before TensorFlow loads them
    (a damaged variables file is then a one-line error, not the loader's stack)."""
    try:
        return checkpoints.check_transform_checkpoint(os.path.join(path, 'variables', 'variables'))
    except UsageError as error:
        raise UsageError('%s is not a usable SavedModel from export.py: %s' % (path, error)) from None


def frozen_styles(graph_def):
    """How many styles the network of a frozen graph from export.py holds (its style_weights input's size)."""
    style_input = next((node for node in graph_def.node if node.name == STYLE_INPUT), None)
    return style_input.attr['shape'].shape.dim[0].size if style_input is not None else 1


def _frozen_weights(graph_def, path, styles, needs='tiled inference needs; pass the checkpoint, or raise '
                                                  '--max_pixels'):
    """The transform weights folded into a frozen graph as constants of the same names."""
    expected = model.expected_transform_variables(styles)
    weights = {node.name: tf.make_ndarray(node.attr['value'].tensor) for node in graph_def.node
               if node.op == 'Const' and node.name in expected}
    if len(weights) != len(expected):
        raise UsageError('%s does not hold the transform network\'s weights, which %s' % (path, needs))
    return weights


def model_weights(model_file):
    """The transform network's weights (variable name -> array) of a model in any form that holds them: a
    checkpoint (prefix or folder), a frozen .pb or a SavedModel from export.py.

    Raises:
      UsageError: a .tflite (its weights are not readable by name), or a model that is missing or broken.
    """
    if model_file.endswith('.tflite'):
        raise UsageError('%s is a TFLite model, whose weights cannot be read back; pass its checkpoint, .pb or '
                         'SavedModel' % model_file)
    if model_file.endswith('.pb'):
        graph_def = read_frozen_graph(model_file)
        return _frozen_weights(graph_def, model_file, frozen_styles(graph_def), 'training from it needs')
    if os.path.isfile(os.path.join(model_file, 'saved_model.pb')):
        check_saved_model(model_file)
        return _saved_model_weights(model_file)
    return checkpoints.check_transform_checkpoint(checkpoints.find_checkpoint(model_file))


def style_choice(styles, choice, mix, source, options=('--style', '--style_mix'), names=None):
    """The style weights, float32 (styles,), that a chosen style or a mix asks of a model of `styles` styles; None
    for a model of one style, which takes neither.

    Args:
      styles: how many styles the model holds; choice: a style's name or index (str or int), or None; mix: a list
      of non-negative weights, one per style in order, or None.
      source: the model, for messages; options: what the choice and the mix are called where the user gives them;
      names: the model's style names (style_names), or None.

    Raises:
      UsageError: a choice the model cannot take, or none for a model of several styles.
    """
    if styles == 1:
        if choice is not None or mix is not None:
            raise UsageError('%s holds one style: %s and %s apply to models of several styles' % (source, *options))
        return None
    listed = style_names.describe(names, styles)
    if choice is None and mix is None:
        weights = 'w1,w2' if styles == 2 else 'w1,...,w%d' % styles
        raise UsageError('%s holds %d styles (%s): choose one with %s %s, or blend them with %s %s'
                         % (source, styles, listed, options[0], 'NAME' if names else 'INDEX', options[1], weights))
    if choice is not None and mix is not None:
        raise UsageError('give %s or %s, not both' % options)
    if choice is not None:
        return np.eye(styles, dtype=np.float32)[style_names.index_of(choice, names, styles, source, options[0])]
    if len(mix) != styles:
        raise UsageError('%s gives %d weights, but %s holds %d styles (%s, in that order)'
                         % (options[1], len(mix), source, styles, listed))
    weights = np.asarray(mix, np.float64)
    with np.errstate(over='ignore'):
        total = weights.sum()  # inf for weights near the float limit, which would divide to zeros
    if not ((weights >= 0).all() and 0 < total < np.inf):
        raise UsageError('%s takes non-negative weights with a positive, finite sum, got %s' % (options[1], list(mix)))
    return (weights / total).astype(np.float32)


def tile_side(max_pixels, margin=tiling.MARGIN):
    """The owned side of square tiles whose context stays within max_pixels, a multiple of 4."""
    return max(64, int(math.sqrt(max_pixels) - 2 * margin) // 4 * 4)


class Stylizer:
    """A trained model, loaded once; call it on uint8 RGB arrays (H, W, 3) of any size."""

    def __init__(self, model_file, max_pixels=DEFAULT_MAX_PIXELS, precision='fp32'):
        """precision 'bf16' runs convolutions in 16-bit floats (utils.session_config): faster where the
        hardware has them, pixels within a few grey levels. self.precision says what runs: 'float32',
        'bfloat16' or 'float16' (a TFLite model computes in the float types it was exported with)."""
        self.source, self.max_pixels = model_file, max_pixels
        self.styles = 1  # how many styles the model holds; the loaders say
        self.style_names = None  # their names, where the model carries them (style_names)
        self.arbitrary = None  # for Magenta's arbitrary-style network, its inference.arbitrary.ArbitraryNetwork
        self.can_tile = not model_file.endswith('.tflite')  # tiling needs the weights, which a .tflite hides
        self.precision = computing_precision(precision == 'bf16' and self.can_tile)
        self._tiled = {}  # per_pixel -> tiling.TiledTransform, made at first use
        self._whole_per_pixel = None  # tiling.WholeTransform for styles by region, made at first use
        self._building = threading.Lock()  # serve.py's workers may ask for either at once: each is made once
        if model_file.endswith('.pb'):
            self.kind, (self._run, self._weights) = 'frozen graph', self._load_frozen(model_file)
        elif model_file.endswith('.tflite'):
            self.kind, (self._run, self._weights) = 'TFLite model', self._load_tflite(model_file)
        elif os.path.isfile(os.path.join(model_file, 'saved_model.pb')):
            self.kind, (self._run, self._weights) = 'SavedModel', self._load_saved_model(model_file)
        else:
            prefix = checkpoints.find_checkpoint(model_file)
            shapes = checkpoints.read_checkpoint_shapes(prefix, 'checkpoint')
            if arbitrary_net.is_arbitrary(shapes):
                self.kind, (self._run, self._weights) = 'arbitrary-style checkpoint', self._load_arbitrary(prefix,
                                                                                                          shapes)
            else:
                self.kind, (self._run, self._weights) = 'checkpoint', self._load_checkpoint(prefix)
        self.graph.finalize()

    # The graph and the session options are made at their first use, after the loaders have checked the model
    # file: a missing one is reported before TensorFlow's import.
    @functools.cached_property
    def graph(self):
        return tf.Graph()

    @functools.cached_property
    def session_config(self):
        return session_config(self.precision != 'float32', inference=True)

    def _load_checkpoint(self, prefix):
        weights = checkpoints.check_transform_checkpoint(prefix)
        self.styles = model.styles_in({name: value.shape for name, value in weights.items()})
        self.style_names = style_names.from_checkpoint(prefix, self.styles)
        with self.graph.as_default():
            images = tf.placeholder(tf.uint8, [None, None, None, 3], name='images')
            mix = tf.placeholder(tf.float32, [self.styles], name=STYLE_INPUT) if self.styles > 1 else None
            scope, placeholders = model.fed_weights()
            with scope:
                output = model.stylize_uint8(images, style_weights=mix)
            self.session = tf.Session(config=self.session_config)
        log.info('model loaded from %s%s', prefix, self._styles_note())
        feed = {placeholders[name]: value for name, value in weights.items()}

        def run(batch, style):
            return self.session.run(output, {images: batch, **feed, **({mix: style} if mix is not None else {})})
        return run, lambda: weights

    def _load_arbitrary(self, prefix, shapes):
        self.arbitrary = arbitrary.from_checkpoint(prefix, shapes, self.graph)
        with self.graph.as_default():
            self.session = tf.Session(config=self.session_config)
        log.info("Magenta's arbitrary-style network loaded from %s", prefix)
        return self._run_arbitrary, lambda: self.arbitrary.weights

    def embed(self, pixels, side=arbitrary_net.STYLE_SIZE, what='style image'):
        """For an arbitrary-style network: the style embedding, float32 (EMBEDDING,), of a uint8 RGB image (h, w, 3)
        whose smaller side is resized to `side`; `what` names the image in errors."""
        if self.arbitrary is None:
            raise UsageError('%s is not an arbitrary-style network: it takes no style image' % self.source)
        return self.arbitrary.embed(self.session, np.ascontiguousarray(pixels, dtype=np.uint8), side, what)

    def _styles_note(self):
        if self.styles == 1:
            return ''
        return ' (%d styles%s)' % (self.styles, ': ' + ', '.join(self.style_names) if self.style_names else '')

    def _load_frozen(self, path):
        graph_def = read_frozen_graph(path)
        is_arbitrary = any(node.name == 'style_image' for node in graph_def.node)
        self.styles = 1 if is_arbitrary else frozen_styles(graph_def)
        self.style_names = None if is_arbitrary else style_names.from_graph_def(graph_def, self.styles, path)
        with self.graph.as_default():
            try:
                tf.import_graph_def(graph_def, name='')
            except (ValueError, tf.errors.OpError) as error:  # a dangling input, an unknown op, wrong types
                raise UsageError('%s is a broken graph (%s); pass a .pb written by export.py'
                                 % (path, str(error).strip().splitlines()[0][:200])) from None
            self.session = tf.Session(config=self.session_config)
        if is_arbitrary:
            self.arbitrary = arbitrary.from_frozen_graph(self.graph)
            log.info("frozen arbitrary-style network (Magenta's) loaded from %s", path)
            return self._run_arbitrary, lambda: {node.name: tf.make_ndarray(node.attr['value'].tensor)
                                                 for node in graph_def.node if node.op == 'Const'}
        log.info('frozen model loaded from %s%s', path, self._styles_note())

        def run(batch, style):
            height, width = batch.shape[1:3]
            mix = {STYLE_INPUT + ':0': style} if style is not None else {}
            return np.stack([self.session.run(FROZEN_OUTPUT, dict(zip(FROZEN_INPUTS, (image.reshape(-1), height,
                                                                                      width)), **mix))
                             .reshape(height, width, 3).astype(np.uint8) for image in batch])
        return run, lambda: _frozen_weights(graph_def, path, self.styles)

    def _load_arbitrary_saved_model(self, path):
        with self.graph.as_default():
            self.session = tf.Session(config=self.session_config)
            try:
                meta = tf.saved_model.loader.load(self.session, [tf.saved_model.tag_constants.SERVING], path)
            except (KeyError, RuntimeError, OSError, tf.errors.OpError) as error:
                raise UsageError('%s is not a SavedModel from export.py (%s: %s)'
                                 % (path, type(error).__name__, error)) from None
        self.arbitrary = arbitrary.from_saved_model(self.graph, meta.signature_def, path)
        log.info("arbitrary-style SavedModel (Magenta's network) loaded from %s", path)
        return self._run_arbitrary, lambda: self.arbitrary.weights

    def _run_arbitrary(self, batch, embedding):
        return self.arbitrary.stylize(self.session, batch, embedding)

    def _load_saved_model(self, path):
        if 'style_image' in check_saved_model(path).signature_def['serving_default'].inputs:
            return self._load_arbitrary_saved_model(path)
        weights = _saved_model_weights(path)
        with self.graph.as_default():
            self.session = tf.Session(config=self.session_config)
            try:
                meta = tf.saved_model.loader.load(self.session, [tf.saved_model.tag_constants.SERVING], path)
                signature = meta.signature_def['serving_default']
                input_name = signature.inputs[SIGNATURE_INPUT].name
                output_name = signature.outputs[SIGNATURE_OUTPUT].name
            except (KeyError, RuntimeError, OSError, tf.errors.OpError) as error:
                raise UsageError('%s is not a SavedModel from export.py (%s: %s)'
                                 % (path, type(error).__name__, error)) from None
        self.styles = model.styles_in({name: value.shape for name, value in weights.items()})
        style_name = signature.inputs[STYLE_INPUT].name if self.styles > 1 else None
        self.style_names = style_names.from_checkpoint(os.path.join(path, 'variables', 'variables'), self.styles)
        log.info('SavedModel loaded from %s%s', path, self._styles_note())

        def run(batch, style):
            return self.session.run(output_name, {input_name: batch, **({style_name: style} if style_name else {})})
        return run, lambda: weights

    def _load_tflite(self, path):
        require_file(path, 'model file', 'pass a .tflite written by export.py')
        try:
            interpreter = tf.lite.Interpreter(model_path=path, num_threads=os.cpu_count())
            entry, result = interpreter.get_input_details(), interpreter.get_output_details()
        except ValueError:  # the interpreter's error for a file that is not a TFLite flatbuffer
            raise UsageError('model file is not a TFLite model: %s (pass a .tflite written by export.py)'
                             % path) from None
        if {arbitrary.PREDICT_SIGNATURE, arbitrary.TRANSFER_SIGNATURE} <= set(interpreter.get_signature_list()):
            with native_logs_muted():
                self.arbitrary = arbitrary.TFLiteNetwork(interpreter)
            self.session = None
            log.info("TFLite arbitrary-style network (Magenta's) loaded from %s", path)
            return self._run_arbitrary, self._no_tflite_weights
        image_input = next((item for item in entry if len(item['shape']) == 4), None)
        style_input = next((item for item in entry if len(item['shape']) == 1), None)
        if (len(result) != 1 or image_input is None or list(image_input['shape'][[0, 3]]) != [1, 3]
                or len(entry) != 1 + (style_input is not None)):
            raise UsageError('%s is a TFLite model without the stylizer interface (one (1, H, W, 3) image in, one '
                             'out); pass a .tflite written by export.py' % path)
        if style_input is not None:
            self.styles = int(style_input['shape'][0])
            self.style_names = style_names.from_tflite(path, self.styles)
        with native_logs_muted():  # the first allocation announces the XNNPACK delegate
            interpreter.allocate_tensors()
        log.info('TFLite model loaded from %s%s', path, self._styles_note())
        self.session = None

        one_at_a_time = threading.Lock()  # the interpreter holds one input: serve.py's workers take turns

        def run(batch, style):
            stylized = []
            for image in batch:  # resized to each image's size
                with one_at_a_time:
                    interpreter.resize_tensor_input(image_input['index'], [1, *image.shape])
                    interpreter.allocate_tensors()
                    interpreter.set_tensor(image_input['index'], image[None].astype(np.float32))
                    if style is not None:
                        interpreter.set_tensor(style_input['index'], style)
                    interpreter.invoke()
                    output = interpreter.get_tensor(result[0]['index'])[0]
                stylized.append(np.clip(output, 0, 255).astype(np.uint8))
            return np.stack(stylized)

        return run, self._no_tflite_weights

    def _no_tflite_weights(self):
        raise UsageError('%s is a TFLite model, whose weights tiled inference cannot use; pass the checkpoint it was '
                         'exported from, or raise --max_pixels' % self.source)

    def check_style(self, style, size=None):
        """Raise UsageError unless `style` (float32 (N,) from style_choice, or None; an embedding (EMBEDDING,) for
        an arbitrary-style network; or a model.StyleMap of those, basis (K, N), and shares (H, W, K) for an image of
        `size`, (H, W)) fits the model."""
        if isinstance(style, model.StyleMap):
            return self._check_style_map(style, size)
        if self.arbitrary is not None:
            if np.shape(style) != (arbitrary_net.EMBEDDING,) or not np.isfinite(style).all():
                raise UsageError('%s is an arbitrary-style network: it takes a style embedding of %d finite values '
                                 '(Stylizer.embed), got %s' % (self.source, arbitrary_net.EMBEDDING,
                                                                np.shape(style)))
            return
        if (style is None) != (self.styles == 1) or (style is not None and np.shape(style) != (self.styles,)):
            raise UsageError('%s holds %d style%s; style weights %s do not fit it (see style_choice)'
                             % (self.source, self.styles, 's' if self.styles > 1 else '', style))

    def _check_style_map(self, style, size):
        width = arbitrary_net.EMBEDDING if self.arbitrary is not None else self.styles
        count = np.shape(style.basis)[0] if np.ndim(style.basis) == 2 else 0
        if width == 1 or np.shape(style.basis) != (count, width) or np.shape(style.shares) != (*size, count):
            raise UsageError('%s cannot take a style by region of basis %s and shares %s for a %s image (see '
                             'inference/masks.py)' % (self.source, np.shape(style.basis), np.shape(style.shares),
                                                      'x'.join(map(str, size))))
        if not (np.isfinite(style.basis).all() and np.isfinite(style.shares).all()):
            raise UsageError('a style by region needs finite values')
        if not self.can_tile:
            raise UsageError('%s cannot be run with a style by region (--mask), which needs the network\'s weights; '
                             'pass its checkpoint or SavedModel' % self.source)

    def stylize_batch(self, batch, style=None):
        """Stylize same-sized images: uint8 (N, H, W, 3) in and out; in one run when within max_pixels. style:
        for a model of several styles, each style's share, float32 (N,) (see style_choice); for an arbitrary-style
        network, the style's embedding (see embed)."""
        batch = np.ascontiguousarray(batch, dtype=np.uint8)
        self.check_style(style, batch.shape[1:3])
        if batch.shape[0] * batch.shape[1] * batch.shape[2] > self.max_pixels or isinstance(style, model.StyleMap):
            return np.stack([self(image, style=style) for image in batch])
        return self._run(batch, style)

    def __call__(self, pixels, progress=True, should_stop=None, style=None):
        """Stylize one image: uint8 (H, W, 3) in, uint8 (H, W, 3) out; tiled above max_pixels.

        Args:
          pixels: the image.
          progress: show tiled inference's progress bar.
          should_stop: for tiled inference, a function asked after every tile run; when it returns True,
            tiling.Cancelled is raised.
          style: for a model of several styles, each style's share, float32 (N,) (see style_choice); for an
            arbitrary-style network, the style's embedding (see embed); for either, a model.StyleMap of arrays,
            whose style changes from pixel to pixel (inference/masks.py).
        """
        pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
        self.check_style(style, pixels.shape[:2])
        per_pixel = isinstance(style, model.StyleMap)
        if pixels.shape[0] * pixels.shape[1] <= self.max_pixels:
            if not per_pixel:
                return self._run(pixels[None], style)[0]
            with self._building:
                if self._whole_per_pixel is None:
                    self._whole_per_pixel = tiling.WholeTransform(self._weights(), self.session_config,
                                                                  self._network(per_pixel, model.INFERENCE))
            return self._whole_per_pixel(pixels, style)
        with self._building:
            if per_pixel not in self._tiled:
                self._tiled[per_pixel] = tiling.TiledTransform(self._weights(), tile_side(self.max_pixels),
                                                               self.session_config, network=self._network(per_pixel))
        return self._tiled[per_pixel](pixels, progress, should_stop, style)

    def _network(self, per_pixel, formulation=model.TILED):
        """The network as tiling builds it (tiling.Network), its style per pixel or not; ours in `formulation`."""
        if self.arbitrary is not None:
            return arbitrary.network(per_pixel)
        return tiling.transform_network(self.styles, per_pixel, formulation)

    def close(self):
        if self.session is not None:
            self.session.close()
        for transform in [*self._tiled.values(), self._whole_per_pixel]:
            if transform is not None:
                transform.close()
