"""The names of the styles of a network of several: `scream` rather than style 1.

They come from the config's style images (their file names), and travel with the weights: a string variable
`style_names` in checkpoints and SavedModels, a constant of that name in frozen graphs (a .tflite holds numbers
alone, so its styles go by index). A model without them, or with names that cannot serve (another count,
duplicates, empty or overlong), is used by index as before.
"""
import os

from utils import UsageError, log, shorten, tf

NAME = 'style_names'
MAX_LENGTH = 64


def from_images(images):
    """Unique names for the styles of these style images: the file names without extension; a name that repeats
    gets its position appended (wave, wave_1)."""
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
                         % (option, shorten(choice)[1:-1], source, styles, describe(names, styles)))
    return index
