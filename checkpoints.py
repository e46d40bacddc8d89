"""Checkpoints: finding, checking, saving, restoring and trimming them, for the transform network and the loss
network alike.

A checkpoint is a prefix: `<prefix>.index` and `<prefix>.data-*` in TensorFlow's V2 format, or one file in the
original's V1 format. Only readable, complete and finite checkpoints are used; every problem is a one-line
UsageError naming the file and what to pass instead.
"""
import glob
import os
import re
import time

import numpy as np

import model
import style_names
from nets import arbitrary
from images import IMAGE_FORMATS
from utils import UsageError, log, slim, tf

CHECKPOINT_NAME = 'fast-style-model.ckpt'  # train.py's checkpoints: <model folder>/<this>-<step or done>
CHECKPOINT_FIX = 'pass a model trained by train.py, e.g. models/wave.ckpt, or a model folder such as models/udnie'
EXPORTED_FIX = 'this command needs the checkpoint or model folder it was exported from'


def checkpoint_exists(prefix):
    """True for a V2 checkpoint prefix (prefix.index) or a V1 single-file checkpoint."""
    return os.path.isfile(prefix + '.index') or os.path.isfile(prefix)


MODEL_FORMS = 'a checkpoint such as models/wave.ckpt, a model folder, or an export: .pb, SavedModel folder or .tflite'


def model_exists(path):
    """Whether anything a model loader could read is at `path`: a file, a folder, or a checkpoint prefix's files
    (what it holds is checked as it is loaded)."""
    return os.path.exists(path) or bool(glob.glob(glob.escape(path) + '.*'))


def expected_variables(build_fn):
    """Names and shapes of the variables that `build_fn()` creates, found in a scratch graph."""
    with tf.Graph().as_default():
        build_fn()
        return {v.op.name: v.shape.as_list() for v in tf.global_variables()}


def read_checkpoint_shapes(prefix, what):
    """Variable name -> shape map of a checkpoint, or a UsageError saying it cannot be read."""
    try:
        return tf.train.load_checkpoint(prefix).get_variable_to_shape_map()
    except (tf.errors.OpError, ValueError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UsageError('%s cannot be read as a TensorFlow checkpoint: %s (%s)' % (what, prefix, reason)) from None


def check_variable_shapes(shapes, expected, source, what, fix):
    """Raise UsageError unless `shapes` (name -> shape, read from `source`) has every expected variable."""
    missing = sorted(name for name in expected if name not in shapes)
    if missing:
        raise UsageError('%s is not a %s: %d of its %d variables are missing, e.g. %s (%s)'
                         % (source, what, len(missing), len(expected), missing[0], fix))
    for name, shape in sorted(expected.items()):
        if list(shapes[name]) != list(shape):
            raise UsageError('%s is not a %s: %s has shape %s, expected %s (%s)'
                             % (source, what, name, list(shapes[name]), shape, fix))


def check_checkpoint_variables(prefix, expected, what, fix):
    """Raise UsageError unless the checkpoint holds every expected variable with the expected shape."""
    check_variable_shapes(read_checkpoint_shapes(prefix, what), expected, prefix, what, fix)


def get_init_fn(checkpoint, exclude_scopes):
    """A function that restores the loss network's weights into a session.

    Args:
      checkpoint: the loss network's checkpoint (e.g. slim's vgg_16.ckpt, V1 or V2 format).
      exclude_scopes: comma-separated variable scopes not to restore (e.g. 'vgg_16/fc').

    Returns:
      init_fn(session), restoring every model variable of the current graph outside those scopes.
    """
    exclusions = [scope.strip() for scope in exclude_scopes.split(',') if scope.strip()]
    variables = [v for v in slim.get_model_variables()
                 if not any(v.op.name.startswith(scope) for scope in exclusions)]
    return slim.assign_from_checkpoint_fn(checkpoint, variables)


def _check_one_model(folder, prefixes):
    """Refuse a folder of checkpoints of several models (models/ holds wave.ckpt and scream.ckpt): the newest is
    a guess. A model folder's checkpoints differ only by their step (fast-style-model.ckpt-1000, ...-done)."""
    names = sorted({re.sub(r'-(\d+|done)$', '', os.path.basename(prefix)) for prefix in prefixes})
    if len(names) > 1:
        raise UsageError('%s holds %d models (%s): pass one of them, e.g. %s' % (
            folder, len(names), ', '.join(names[:6]) + (', ...' if len(names) > 6 else ''),
            os.path.join(folder, names[0])))


def find_checkpoint(model_file):
    """Resolve a checkpoint prefix or a model folder to a checkpoint prefix.

    A folder gives its latest checkpoint (by its `checkpoint` file, else the newest checkpoint in it, where all
    are one model's). A path ending in .index, .meta or .data-* is taken as the checkpoint it belongs to.

    Raises:
      UsageError: nothing there, a folder without checkpoints or with several models', or a file of another kind
        (an export, an image).
    """
    if os.path.isdir(model_file):
        if os.path.isfile(os.path.join(model_file, 'saved_model.pb')):
            raise UsageError('%s is a SavedModel, not a checkpoint (%s)' % (model_file, EXPORTED_FIX))
        state = os.path.isfile(os.path.join(model_file, 'checkpoint'))  # else no TensorFlow needed to say so
        candidates = checkpoint_candidates(model_file)
        if not state:
            _check_one_model(model_file, candidates)
        prefix = (state and tf.train.latest_checkpoint(model_file)) or next(iter(candidates), None)
        if prefix is None:
            raise UsageError('no checkpoint in model folder %s (train one with train.py, or pass a checkpoint '
                             'prefix such as %s/fast-style-model.ckpt-done)' % (model_file, model_file.rstrip('/')))
        return prefix
    for suffix in ('.index', '.meta', '.data-00000-of-00001'):
        if model_file.endswith(suffix) and checkpoint_exists(model_file[:-len(suffix)]):
            return model_file[:-len(suffix)]
    if not checkpoint_exists(model_file):
        raise UsageError('model file not found: %s (%s, or a frozen .pb from export.py)' % (model_file, CHECKPOINT_FIX))
    if not os.path.isfile(model_file + '.index'):
        _check_single_file_checkpoint(model_file)
    return model_file


# The last eight bytes of every table file TensorFlow writes: a V2 checkpoint's .index and a V1 checkpoint.
_TABLE_MAGIC = bytes.fromhex('57fb808b247547db')
_EXPORT_KINDS = {'.pb': 'a frozen graph', '.tflite': 'a TFLite model'}


def _check_single_file_checkpoint(path):
    """Raise UsageError, saying what the file is instead, unless `path` is a V1 (single-file) checkpoint."""
    extension = os.path.splitext(path)[1].lower()
    if extension in _EXPORT_KINDS:
        raise UsageError('%s is %s, not a checkpoint (%s)' % (path, _EXPORT_KINDS[extension], EXPORTED_FIX))
    if extension in IMAGE_FORMATS:
        raise UsageError('%s is an image, not a model (%s)' % (path, CHECKPOINT_FIX))
    with open(path, 'rb') as f:
        f.seek(0, os.SEEK_END)
        f.seek(max(f.tell() - len(_TABLE_MAGIC), 0))
        if f.read() != _TABLE_MAGIC:
            raise UsageError('%s is not a TensorFlow checkpoint (%s)' % (path, CHECKPOINT_FIX))


def check_transform_checkpoint(prefix):
    """Raise UsageError unless `prefix` is a checkpoint of this transform network (of one style or several) with
    finite weights; return the weights, name -> array (model.styles_in tells how many styles they hold)."""
    what = 'transform-network checkpoint'
    shapes = read_checkpoint_shapes(prefix, what)
    if arbitrary.is_arbitrary(shapes):
        raise UsageError("%s is a checkpoint of Magenta's arbitrary-style network, which takes a style image and "
                         "cannot be trained or exported by this command (%s)" % (prefix, CHECKPOINT_FIX))
    expected = model.expected_transform_variables(model.styles_in(shapes))
    check_variable_shapes(shapes, expected, prefix, what, CHECKPOINT_FIX)
    return read_weights(prefix, expected)


def read_weights(prefix, expected):
    """The variables `expected` names (its keys), read from a checkpoint that holds them, name -> array.

    Raises:
      UsageError: a variable's data cannot be read, or is not finite.
    """
    reader = tf.train.load_checkpoint(prefix)
    weights = {}
    for name in sorted(expected):
        try:
            weights[name] = reader.get_tensor(name)
        except Exception as error:  # truncated or corrupt data files raise assorted errors
            raise UsageError('%s is damaged: %s cannot be read (%s); use another checkpoint'
                             % (prefix, name, str(error).strip().splitlines()[0])) from None
        if not np.isfinite(weights[name]).all():
            raise UsageError('%s holds non-finite weights (%s has NaN or Inf values): its training diverged; use an '
                             'earlier checkpoint of the same folder' % (prefix, name))
    return weights


def transform_saver(extra=(), **kwargs):
    """A Saver of the transform network's variables (and `extra` variables) alone, by their checkpoint names."""
    return tf.train.Saver({v.op.name: v for v in [*model.transform_variables(), *extra]}, **kwargs)


def save_random_model(prefix, seed=0, styles=1, names=None):
    """A checkpoint of the untrained network (truncated-normal weights, and for several styles random per-style
    scales and offsets, so that the styles differ), with the style names `names` if given: a test fixture."""
    with tf.Graph().as_default():
        tf.set_random_seed(seed)
        model.net(tf.placeholder(tf.float32, [1, None, None, 3]),
                  style_weights=tf.placeholder(tf.float32, [styles]) if styles > 1 else None)
        extra = [style_names.variable(names)] if names else []
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            rng = np.random.default_rng(seed)
            for variable in model.transform_variables():
                if variable.op.name.rsplit('/', 1)[1] in model.STYLE_VARIABLES:
                    variable.load(sess.run(variable) + rng.normal(0, 0.3, variable.shape.as_list()), sess)
            return transform_saver(extra).save(sess, prefix)


class Checkpoints:
    """Saving every `every_steps` steps and every checkpoint_secs seconds, never a non-finite model.

    tf.train.Saver writes a checkpoint's files before it names the checkpoint in the `checkpoint` state file, so a
    process killed while saving leaves the previous checkpoints listed and intact.
    """

    def __init__(self, sess, saver, prefix, config, transform_vars, is_chief=True, every_steps=1000):
        self.sess, self.saver, self.prefix, self.is_chief = sess, saver, prefix, is_chief
        self.every_steps = every_steps
        self.every_secs = config.checkpoint_secs
        self.last_time = time.time()
        self.last_saved = None
        self.after_save = None  # called with (the checkpoint's prefix, its step) after each save (train.py --preview)
        self.all_finite = tf.reduce_all([tf.reduce_all(tf.is_finite(v)) for v in transform_vars])

    def due(self, step):
        return self.is_chief and (step % self.every_steps == 0 or time.time() - self.last_time >= self.every_secs)

    def save(self, step, name=None):
        """Save the current state as <prefix>-<step> (or <prefix>-<name>); returns its path. Only the chief
        writes; the other workers hold the same weights."""
        if not self.is_chief:
            return '%s-%s (written by the chief)' % (self.prefix, name or step)
        if not self.sess.run(self.all_finite):
            raise UsageError('the model\'s weights became non-finite (NaN or Inf) by step %d; nothing was saved, %s '
                             '(lower the loss weights, or check the training images)' % (step, self.kept_message()))
        try:
            if name:
                path = self.saver.save(self.sess, '%s-%s' % (self.prefix, name))
            else:
                path = self.saver.save(self.sess, self.prefix, global_step=step)
        except (tf.errors.OpError, OSError) as error:
            reason = getattr(error, 'message', None) or str(error)
            raise UsageError('cannot save a checkpoint in %s (%s); free disk space or make the folder writable, '
                             '%s' % (os.path.dirname(self.prefix), reason.strip().splitlines()[0],
                                     self.kept_message())) from None
        self.last_time, self.last_saved = time.time(), path
        if self.after_save:
            self.after_save(path, step)
        return path

    def kept_message(self):
        """Which checkpoint survives a failure, for error messages."""
        if self.last_saved:
            return 'the last checkpoint %s is intact and training resumes from it' % self.last_saved
        return 'no checkpoint of this run was written'


def checkpoint_candidates(training_path):
    """Checkpoint prefixes in the folder, newest first by the time of their files.

    The state file names a checkpoint only after its files are complete, so a process killed in between leaves the
    newest complete checkpoint unlisted: listed or not, the newest that loads is the one to resume from.
    """
    if not os.path.isdir(training_path):  # a worker that does not see the chief's folder
        return []
    has_state = os.path.isfile(os.path.join(training_path, 'checkpoint'))  # else no TensorFlow needed to say so
    state = tf.train.get_checkpoint_state(training_path) if has_state else None  # its paths come joined to the folder
    listed = [state.model_checkpoint_path, *state.all_model_checkpoint_paths] if state else []
    found = [os.path.join(training_path, name[:-len('.index')]) for name in os.listdir(training_path)
             if name.endswith('.index')]
    prefixes = {os.path.normpath(path) for path in listed + found}

    def written(prefix):  # a V2 checkpoint's index, or a V1 checkpoint's single file; then the step, for ties
        path = prefix + '.index' if os.path.exists(prefix + '.index') else prefix
        step = re.search(r'-(\d+)$', prefix)
        return (os.path.getmtime(path) if os.path.exists(path) else float('-inf'),
                int(step.group(1)) if step else float('inf'))
    return sorted(prefixes, key=written, reverse=True)


def restore_newest_complete(sess, saver, training_path, global_step, trim=True, styles=1, restorers=None):
    """Restore the newest checkpoint that loads; returns (global step to go on from, its path or None).
    `trim` deletes old checkpoints beyond `saver`'s max_to_keep (the chief's job); `restorers` (default: `saver`)
    restore, the first that can, when what is saved and what is restored differ: the later ones leave some
    optimizer state out, which then starts afresh.

    Raises:
      UsageError: a checkpoint holds another number of styles than the network being trained, or none loads.
    """
    candidates = checkpoint_candidates(training_path)
    for prefix in candidates:
        try:
            weights = check_transform_checkpoint(prefix)
        except UsageError as error:
            _skipping(prefix, error)
            continue
        found = model.styles_in({name: value.shape for name, value in weights.items()})
        if found != styles:
            raise UsageError('%s holds a network of %d style%s, and the config lists %d: train into a new model folder '
                             '(change naming or model_path)' % (prefix, found, 's' * (found > 1), styles))
        used = _restore_with(sess, restorers or [saver], prefix)
        if isinstance(used, Exception):
            _skipping(prefix, used)
            continue
        if used:
            log.info('%s holds no optimizer state for the weights its run kept frozen: theirs starts afresh', prefix)
        step = int(sess.run(global_step))
        log.info('resumed from %s at step %d', prefix, step)
        if trim:
            _keep_newest(saver, candidates[candidates.index(prefix):])
        return step, prefix
    if candidates:
        raise UsageError('no checkpoint in %s can be restored (see the lines above); move them away to train from '
                         'scratch' % training_path)
    log.info('no checkpoint in %s: training a new model', training_path)
    return 0, None


def _restore_with(sess, restorers, prefix):
    """The index of the first restorer that restored the checkpoint, or the first one's error."""
    errors = []
    for index, restorer in enumerate(restorers):
        try:
            restorer.restore(sess, prefix)
            return index
        except (tf.errors.OpError, ValueError) as error:
            errors.append(error)
    return errors[0]


def _skipping(prefix, error):
    log.info('skipping checkpoint %s: %s', prefix, str(error).strip().splitlines()[0])


def _keep_newest(saver, checkpoints):
    """Hand the Saver the numbered checkpoints up to the restored one (newest first) and delete those beyond its
    max_to_keep. The Saver rotates only what it saved itself, and a run killed between writing a checkpoint and
    deleting the oldest leaves one extra: this keeps keep_checkpoints across restarts. Newer ones that failed to
    restore are left alone; the run overwrites them when it reaches their step."""
    numbered = [p for p in checkpoints if re.search(r'-\d+$', p)]
    keep = saver.saver_def.max_to_keep
    for prefix in numbered[keep:]:
        log.info('removing old checkpoint %s (keep_checkpoints is %d)', prefix, keep)
        tf.train.remove_checkpoint(prefix)
    saver.recover_last_checkpoints(list(reversed(numbered[:keep])))
