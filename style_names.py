"""The names of the styles of a network of several: `scream` rather than style 1.

They come from the config's style images (their file names), and travel with the weights: a string variable
`style_names` in checkpoints and SavedModels, a constant of that name in frozen graphs, a metadata entry of that
name (a JSON list) in a .tflite. A model without them, or with names that cannot serve (another count,
duplicates, empty or overlong), is used by index as before.
"""
import json
import os

import numpy as np

from utils import UsageError, log, shorten, tensorflow_module, tf

NAME = 'style_names'
MAX_LENGTH = 64


SCALE_MARK = '@'  # wave@0.5: the style of wave.jpg at half its size, a style of a network of several style scales


def from_images(images, scales=None):
    """Unique names for the styles of these style images: the file names without extension; a name that repeats
    gets its position appended (wave, wave_1). With scales (one per image, config.style_scale_list), a network of one
    style image at several sizes: each name ends in its scale (wave@0.5, wave@1, wave@2; see inference/stroke.py)."""
    if scales is not None and len(set(scales)) > 1:
        return ['%s%s%g' % (from_images(images[:1])[0][:MAX_LENGTH - 12], SCALE_MARK, scale) for scale in scales]
    names = []
    for index, image in enumerate(images):
        name = os.path.splitext(os.path.basename(image))[0][:MAX_LENGTH] or 'style'
        names.append(name if name not in names else '%s_%d' % (name, index))
    return names


def usable(values, styles, source):
    """The names read from a model as a list of str, or None when they cannot name its `styles` styles."""
    if values is None or styles < 2:
        return None
    try:
        names = [value.decode('utf-8') for value in values]  # strings are bytes; anything else names nothing
    except (AttributeError, TypeError, UnicodeDecodeError):
        names = []
    if (len(names) != styles or len(set(names)) != styles
            or not all(0 < len(name) <= MAX_LENGTH and name.isprintable() for name in names)):
        log.info('%s: its style names cannot name its %d styles; they go by index', source, styles)
        return None
    return names


def variable(names):
    """The names as a non-trainable string variable of the current graph, saved with the weights."""
    return tf.Variable(names, trainable=False, name=NAME, dtype=tf.string)


def from_checkpoint(prefix, styles):
    """The usable names a checkpoint holds, or None."""
    reader = tf.train.load_checkpoint(prefix)
    values = reader.get_tensor(NAME) if reader.has_tensor(NAME) else None
    return usable(values, styles, prefix)


def from_graph_def(graph_def, styles, source):
    """The usable names a frozen graph holds as its `style_names` constant, or None."""
    node = next((node for node in graph_def.node if node.name == NAME and node.op == 'Const'), None)
    return usable(tf.make_ndarray(node.attr['value'].tensor) if node is not None else None, styles, source)


_TFLITE_SCHEMA = 'tensorflow.lite.python.schema_py_generated'


def tflite_with_names(model, names):
    """A .tflite model's bytes with the names as its metadata entry `style_names`, replacing any earlier one (the
    interpreter passes over metadata it does not know)."""
    flatbuffers = tensorflow_module('tensorflow.lite.tools.flatbuffer_utils')
    schema = tensorflow_module(_TFLITE_SCHEMA)
    tree = flatbuffers.read_model_from_bytearray(bytearray(model))
    buffer, entry = schema.BufferT(), schema.MetadataT()
    buffer.data = np.frombuffer(json.dumps(names).encode('utf-8'), np.uint8)
    tree.buffers.append(buffer)
    entry.name, entry.buffer = NAME.encode(), len(tree.buffers) - 1
    tree.metadata = [old for old in tree.metadata or [] if old.name != entry.name] + [entry]  # one entry of ours
    return bytes(flatbuffers.convert_object_to_bytearray(tree))


def from_tflite(path, styles):
    """The usable names a .tflite holds in its metadata, or None (also for a file whose metadata cannot be read:
    the interpreter has already accepted the model itself)."""
    schema = tensorflow_module(_TFLITE_SCHEMA)
    with open(path, 'rb') as f:
        data = f.read()
    try:
        tree = schema.Model.GetRootAsModel(data, 0)
        entries = [tree.Metadata(i) for i in range(tree.MetadataLength())]
        entry = next((entry for entry in entries if entry.Name() == NAME.encode()), None)
        values = json.loads(tree.Buffers(entry.Buffer()).DataAsNumpy().tobytes()) if entry else None
    except Exception:  # a crafted file's offsets, bytes or JSON: flatbuffers and json raise assorted errors
        values = None
    if isinstance(values, list):
        values = [value.encode('utf-8') if isinstance(value, str) else value for value in values]
    return usable(values, styles, path)


def describe(names, styles):
    """'0 wave, 1 scream' for named styles, '0..2' otherwise."""
    return ', '.join('%d %s' % pair for pair in enumerate(names)) if names else '0..%d' % (styles - 1)


def index_of(choice, names, styles, source, option):
    """The index of the style a user chose by name or by index (a name first: a style may be called 2019).

    Raises:
      UsageError: neither a name of the model nor an index in range.
    """
    choice = str(choice).strip()
    if names and choice in names:
        return names.index(choice)
    try:
        index = int(choice)
    except ValueError:
        index = None
    if index is None or not 0 <= index < styles:
        raise UsageError('%s %s is not a style of %s: it holds %d styles (%s)'
                         % (option, shorten(choice) if not choice else shorten(choice)[1:-1], source, styles,
                            describe(names, styles)))
    return index
