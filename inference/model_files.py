"""The model files export.py writes, read and checked before TensorFlow runs anything of theirs.

A .pb or SavedModel can hold any TensorFlow op. Graphs whose inference part reads or writes files or calls
Python (ReadFile, WriteFile, Save, Restore, PyFunc and the like) are refused, and so are graphs without the
interface export.py gives them.
"""
import os

from config import MAX_STYLES
from inference import arbitrary
from utils import UsageError, require_file, tensorflow_module, tf

FROZEN_INPUTS = ('input_image:0', 'height:0', 'width:0')
FROZEN_OUTPUT = 'output_image:0'
SIGNATURE_INPUT, SIGNATURE_OUTPUT = 'image', 'stylized'
# Styles by region in the .pb and the SavedModel: float `mask` (1, H, W, styles), each style's mask (docs/MASKS.md),
# feeds output_image_by_region (the .pb; `mask` flattened as input_image is) or the signature by_region.
MASK_INPUT, BY_REGION_OUTPUT, BY_REGION_SIGNATURE = 'mask', 'output_image_by_region', 'by_region'
STYLE_INPUT = 'style_weights'  # the exports of a model of several styles take each style's share here
# The exports of a network of several style scales (inference/stroke.py) also take a float32 scalar `stroke`, which
# feeds output_image_by_stroke (the .pb) or the signature by_stroke.
STROKE_INPUT, BY_STROKE_OUTPUT, BY_STROKE_SIGNATURE = 'stroke', 'output_image_by_stroke', 'by_stroke'
UNSAFE_OPS = {'ReadFile', 'WriteFile', 'MatchingFiles', 'Save', 'SaveV2', 'SaveSlices', 'Restore', 'RestoreV2',
              'RestoreSlice', 'MergeV2Checkpoints', 'PyFunc', 'PyFuncStateless', 'EagerPyFunc', 'ImmutableConst',
              'LoadAndRemapMatrix', 'WholeFileReader', 'WholeFileReaderV2', 'TextLineReader', 'TextLineReaderV2',
              'FixedLengthRecordReader', 'FixedLengthRecordReaderV2', 'TFRecordReader', 'TFRecordReaderV2',
              'TextLineDataset', 'TFRecordDataset', 'FixedLengthRecordDataset', 'WriteSummary',
              'CreateSummaryFileWriter', 'DebugIdentity', 'PrintV2', 'SaveDataset', 'LoadDataset', 'SnapshotDataset',
              'ExperimentalSaveDataset'}


def check_safe_graph(graph_def, outputs, path):
    """Refuse a graph whose ops feeding `outputs` read or write files or run Python."""
    names = {node.name for node in graph_def.node}
    dangling = sorted({name.lstrip('^').split(':')[0] for node in graph_def.node for name in node.input}
                      - names)
    if dangling:
        raise UsageError('%s is a broken graph (its ops read %s, which it does not hold); pass a model written by '
                         'export.py' % (path, ', '.join(dangling[:3])))
    needed = tf.graph_util.extract_sub_graph(graph_def, [name.split(':')[0] for name in outputs])
    unsafe = sorted({node.op for node in needed.node if node.op in UNSAFE_OPS})
    if unsafe:
        raise UsageError('refusing %s: its graph uses %s, which can read or write files or run code (export the '
                         'model again with export.py from a checkpoint you trust)' % (path, ', '.join(unsafe)))


def read_frozen_graph(path):
    require_file(path, 'model file', 'pass a .pb written by export.py')
    graph_def = tf.GraphDef()
    try:
        with open(path, 'rb') as f:
            graph_def.ParseFromString(f.read())
    except Exception:  # protobuf's DecodeError and friends: the file is not a GraphDef
        raise UsageError('model file is not a frozen TensorFlow graph: %s (pass a .pb written by export.py)'
                         % path) from None
    names = {node.name for node in graph_def.node}
    if 'style_image' in names:
        _check_arbitrary_interface(graph_def, path)
        return graph_def
    missing = [t.split(':')[0] for t in FROZEN_INPUTS + (FROZEN_OUTPUT,) if t.split(':')[0] not in names]
    if missing:
        raise UsageError('%s is a graph without the stylizer interface (no %s); pass a .pb written by export.py'
                         % (path, ', '.join(missing)))
    check_safe_graph(graph_def, [FROZEN_OUTPUT], path)
    _check_frozen_interface(graph_def, path)
    return graph_def


def _check_frozen_interface(graph_def, path):
    """Raise UsageError unless the graph's inputs are the placeholders export.py writes: int32 input_image,
    height and width, and for several styles a float32 style_weights of one known dimension of 2 to MAX_STYLES."""
    nodes = {node.name: node for node in graph_def.node}
    wanted = [(name.split(':')[0], tf.int32) for name in FROZEN_INPUTS]
    if STYLE_INPUT in nodes:
        wanted.append((STYLE_INPUT, tf.float32))
        shape = nodes[STYLE_INPUT].attr['shape'].shape
        if shape.unknown_rank or len(shape.dim) != 1 or not 2 <= shape.dim[0].size <= MAX_STYLES:
            raise UsageError('%s has a %s input of shape %s, not (styles,) with 2 to %d styles; pass a .pb written '
                             'by export.py' % (path, STYLE_INPUT, 'unknown' if shape.unknown_rank else
                                               [d.size for d in shape.dim], MAX_STYLES))
    for name, dtype in wanted:
        node = nodes[name]
        if node.op != 'Placeholder' or node.attr['dtype'].type != dtype.as_datatype_enum:
            raise UsageError('%s has an input %s that is not a %s placeholder; pass a .pb written by export.py'
                             % (path, name, dtype.name))


def _check_arbitrary_interface(graph_def, path):
    """Raise UsageError unless the graph has the interface export.py gives Magenta's arbitrary-style network (uint8
    image and style_image placeholders, an int32 style_size with a default, style_embedding and stylized) and is
    safe."""
    nodes = {node.name: node for node in graph_def.node}
    missing = [name for name in arbitrary.EXPORT_TENSORS if name not in nodes]
    if missing:
        raise UsageError('%s is a graph without the arbitrary-style interface (no %s); pass a .pb written by '
                         'export.py' % (path, ', '.join(missing)))
    for name, op, dtype in (('image', 'Placeholder', tf.uint8), ('style_image', 'Placeholder', tf.uint8),
                            ('style_size', 'PlaceholderWithDefault', tf.int32)):
        if nodes[name].op != op or nodes[name].attr['dtype'].type != dtype.as_datatype_enum:
            raise UsageError('%s has an input %s that is not a %s %s; pass a .pb written by export.py'
                             % (path, name, dtype.name, op))
    check_safe_graph(graph_def, ['stylized', 'style_embedding'], path)


def check_saved_model(path):
    """Refuse a SavedModel that runs ops at load time or whose serving graph is unsafe, before loading it; return
    its serving MetaGraphDef."""
    proto = tensorflow_module('tensorflow.core.protobuf.saved_model_pb2').SavedModel()
    try:
        with open(os.path.join(path, 'saved_model.pb'), 'rb') as f:
            proto.ParseFromString(f.read())
        meta = next(m for m in proto.meta_graphs if 'serve' in m.meta_info_def.tags)
        output = meta.signature_def['serving_default'].outputs[SIGNATURE_OUTPUT].name
    except Exception as error:  # a broken proto, no serving graph, or not our signature
        raise UsageError('%s is not a SavedModel from export.py (%s)' % (path, type(error).__name__)) from None
    if {'saved_model_main_op', 'legacy_init_op'} & set(meta.collection_def):
        raise UsageError('refusing %s: it runs its own ops when loaded (export the model again with export.py)'
                         % path)
    check_safe_graph(meta.graph_def, [output], path)
    if not os.path.isfile(os.path.join(path, 'variables', 'variables.index')):
        raise UsageError('%s is an incomplete SavedModel: it has no variables/variables.index (export it again with '
                         'export.py)' % path)
    return meta
