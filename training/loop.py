"""The training loop: running steps, summaries, checkpoints, and stopping cleanly."""
import contextlib
import functools
import os
import time

import numpy as np

import checkpoints as checkpoint_files
import distribute
import model
import reader
import style_names
from config import style_list, style_scale_list
from training.graph import build_graph
from training.init_from import Initializer
from training.progress import ProgressLog, StopRequest
from utils import UsageError, log, tf

CHECKPOINT_NAME = checkpoint_files.CHECKPOINT_NAME
_TRAINING_ENTRIES = (CHECKPOINT_NAME, 'checkpoint', 'events.out.tfevents.')  # what a run writes in its folder


def is_training_folder(path):
    """True when the folder `path` holds nothing but what training writes (checkpoints, their state file,
    summaries): a run may add to it (resume) without losing anything else."""
    return os.path.isdir(path) and all(name.startswith(_TRAINING_ENTRIES) for name in os.listdir(path))
CHECKPOINT_EVERY = 1000
SUMMARY_EVERY = 25


def total_steps(config, num_images):
    """Steps in `epoch` passes over the images (full batches only)."""
    steps = config.epoch * num_images // config.batch_size
    if steps == 0:
        raise UsageError('%d training images make no full batch of batch_size %d (add images or lower '
                         'batch_size)' % (num_images, config.batch_size))
    return steps


def train(config, filenames, styles, loss_net, max_steps=None, placement=None, init_from=None, frozen_styles=0,
          preview=None):
    """Run (or resume) training until the config's epochs are done or the global step reaches max_steps, in the
    model folder that the chief has claimed and holds (claim_model_folder, hold_model_folder).

    styles: (Gram matrices, style weight) of each style (train.style_targets).

    placement (distribute.place) says where: one device by default. Only its chief writes to the model folder.

    init_from: (weights of every transform variable, their source) to start a new model folder from
    (training.init_from); a folder that holds a checkpoint resumes from it instead.

    frozen_styles: N keeps the shared weights and the first N styles exactly as they are (build_graph).

    preview: called with (checkpoint prefix, step, summaries=the model folder's summary writer) after each
    checkpoint the chief writes (training.preview).
    """
    placement = placement or distribute.place('none', None, config.batch_size, config.mixed_precision)
    _train_in(model_folder(config), config, filenames, styles, loss_net, max_steps, placement, init_from,
              frozen_styles, preview)


def _train_in(training_path, config, filenames, styles, loss_net, max_steps, placement, init_from, frozen_styles,
              preview):
    """train()'s work, in the model folder `training_path`."""
    end_step, stop_step = _run_length(config, len(filenames), max_steps)
    loader = reader.ImageLoader(len(filenames), config.max_bad_fraction, config.image_size, config.max_image_pixels)
    with tf.Graph().as_default():
        ops = build_graph(config, filenames, styles, loss_net, loader, strategy=placement.strategy,
                          frozen_styles=frozen_styles)
        init_loss_network = loss_net.init_fn()
        names = style_names.from_images([image for image, _ in style_list(config)], style_scale_list(config))
        # Everything but the loss network is saved: the transform weights, the global step and Adam's state, and the
        # names of several styles. The names always come from the config, so a restore leaves them out (and a
        # checkpoint written before they were saved still resumes).
        restored_variables = [v for v in tf.global_variables() if not v.op.name.startswith(config.loss_model)]
        saved = restored_variables + ([style_names.variable(names)] if len(styles) > 1 else [])
        saver = tf.train.Saver(saved, max_to_keep=config.keep_checkpoints)
        restorers = _restorers(restored_variables, saver if len(styles) == 1 else None)
        initializer = Initializer(*init_from) if init_from else None
        with placement.session() as sess:
            step, restored = _start(sess, ops, init_loss_network, saver, restorers, training_path, placement,
                                    len(styles))
            if initializer and restored:
                log.info('--init_from %s left out: the model folder holds a checkpoint, which the run resumes',
                         initializer.source)
            elif initializer:
                initializer.run(sess)
            if step >= stop_step:
                log.info('nothing to do: the model is already at step %d of %d%s', step, stop_step,
                         '; to train on, raise --max_steps or leave it out (the run ends at step %d)' % end_step
                         if stop_step < end_step else ' (training is complete; raise epoch in the config to train '
                                                      'on)')
                return
            log.info('training steps %d to %d%s (%d images, batch %d); checkpoints and summaries %s %s',
                     step + 1, stop_step, ' (--max_steps; the epochs end at step %d)' % end_step
                     if stop_step < end_step else '', len(filenames), config.batch_size,
                     'in' if placement.is_chief else 'written by the chief in', training_path)
            if frozen_styles:
                log.info('the shared weights and styles %s are kept as they are: the steps train %s alone, their '
                         'scales and offsets', ', '.join(names[:frozen_styles]), ', '.join(names[frozen_styles:]))
            # The summary writer opens past 'nothing to do', so that a run with nothing to do writes no event file.
            with _summary_writer(training_path, placement.is_chief) as writer:
                checkpoints = checkpoint_files.Checkpoints(
                    sess, saver, os.path.join(training_path, CHECKPOINT_NAME), config, model.transform_variables(),
                    placement.is_chief, CHECKPOINT_EVERY)
                checkpoints.last_saved = restored
                checkpoints.after_save = functools.partial(preview, summaries=writer) if preview else None
                with StopRequest() as stop:
                    progress = ProgressLog(stop_step, config.batch_size, config.content_weight,
                                           list(zip(names, [weight for _, weight in style_list(config)])),
                                           config.tv_weight)
                    step = _run_steps(sess, ops, checkpoints, writer, step, progress, loader, stop, placement.deadline)
                _finish(checkpoints, step, stop, stop_step, end_step)


def model_folder(config):
    """<model_path>/<naming>: TensorFlow writes the checkpoints and summaries into it."""
    return os.path.join(config.model_path, config.naming)


def claim_model_folder(config, outputs):
    """Claim the model folder in `outputs` (files.Outputs, the chief's): it must not hold an input or the working
    directory, nor anything but an earlier run's files."""
    outputs.claim(model_folder(config), option='the model folder (model_path/naming)', folder=True,
                  resumable=is_training_folder, kind='a model folder of train.py')


def hold_model_folder(config, outputs):
    """A context manager holding the claimed model folder (made if missing) for the run: a second train.py on it,
    started twice by hand or by a scheduler, is refused at once rather than saving over this one's checkpoints."""
    path = model_folder(config)
    busy = ('the model folder %s is being trained by another train.py now; wait for it to end or stop it (Ctrl-C '
            'saves its step), or train into another folder (change naming or model_path)' % path)
    return outputs.locked(path, busy, 'cannot create the model folder %s (%%s); set model_path in the config to a '
                                      'writable folder' % path.replace('%', '%%'))


def _run_length(config, num_images, max_steps):
    """(the step at which the config's epochs end, the step at which this run stops)."""
    end_step = total_steps(config, num_images)
    if max_steps and max_steps > end_step:
        log.info('--max_steps %d is past the end of this run: %d steps (epoch %d x %d images // batch %d); training '
                 'stops at step %d', max_steps, end_step, config.epoch, num_images, config.batch_size, end_step)
    return end_step, min(end_step, max_steps) if max_steps else end_step


def _restorers(variables, saver=None):
    """Savers that restore a checkpoint into `variables`, to be tried in order: all of them (`saver` if it saves
    just those), then all but the Adam state of the shared weights, which a run with --frozen_styles did not
    train and so did not save."""
    shared = {v.name.rsplit(':', 1)[0] for v in model.transform_variables()
              if v.name.rsplit(':', 1)[0].rsplit('/', 1)[1] not in model.STYLE_VARIABLES}
    without = [v for v in variables if v.name.rsplit(':', 1)[0].rsplit('/', 1)[0] not in shared]
    return [saver or tf.train.Saver(variables)] + ([tf.train.Saver(without)] if len(without) < len(variables) else [])


def _start(sess, ops, init_loss_network, saver, restorers, training_path, placement, styles):
    """Initialize every variable, load the loss network and restore (with the first of `restorers` that can) the
    newest complete checkpoint of a network of `styles` styles; returns (global step, the checkpoint restored or
    None)."""
    if placement.deadline:
        log.info('waiting for every worker to join (the start blocks until all of them have started)')
    sess.run(tf.global_variables_initializer())
    sess.run(ops.init)
    init_loss_network(sess)
    step, restored = checkpoint_files.restore_newest_complete(sess, saver, training_path, ops.global_step,
                                                              placement.is_chief, styles, restorers)
    if ops.sync:
        _check_replicas_agree(sess, ops.sync, step, placement)
    return step, restored


def _finish(checkpoints, step, stop, stop_step, end_step):
    """The last checkpoint of a run and what to do next."""
    if stop.received:
        saved = checkpoints.save(step)
        log.info('stopped by %s at step %d; saved %s. Run the same command to resume', stop.received, step, saved)
    elif stop_step == end_step:
        log.info('training done; model saved to %s', checkpoints.save(step, 'done'))
    else:
        if checkpoints.last_saved != '%s-%d' % (checkpoints.prefix, step):
            checkpoints.save(step)
        log.info('stopped at step %d (--max_steps); to continue, run again with a larger --max_steps, or without '
                 'it to train to the end (step %d)', stop_step, end_step)


def _check_replicas_agree(sess, sync, step, placement):
    """Every replica must have restored the same checkpoint: a worker that cannot read the chief's model folder
    would otherwise train from another starting point (and its updates would be mixed into everyone's)."""
    mean_step = sess.run(sync.restored_steps) / placement.num_replicas
    if mean_step != step:
        raise UsageError('the workers restored different checkpoints (this one is at step %d, the replicas\' mean '
                         'is %g); model_path must be a folder that every worker reads, such as a shared file '
                         'system' % (step, mean_step))


NON_FINITE_CAUSES = {
    'content': 'a content weight or learning rate too large for these images',
    'style': 'a style weight too large, or a style image with flat regions',
    'tv': 'a tv_weight too large',
}


def _check_finite(step, values, checkpoints):
    """Stop, saving nothing, when a loss term is NaN or Inf; say which and what usually causes it."""
    if np.isfinite(values['total']):
        return
    bad = [term for term in ('content', 'style', 'tv') if not np.isfinite(values[term])] or ['total']
    causes = '; '.join(NON_FINITE_CAUSES.get(term, 'weights that overflow') for term in bad)
    raise UsageError('the %s loss became non-finite (%s) at step %d; nothing was saved after it, %s. Usual causes: '
                     '%s' % (' and '.join(bad), values[bad[0]], step, checkpoints.kept_message(), causes))


@contextlib.contextmanager
def _summary_writer(training_path, is_chief):
    """The model folder's one summary writer (the chief's; None elsewhere), open until the last checkpoint's preview:
    TensorBoard reads only the newest event file of a folder, so a second writer would hide the first's."""
    writer = tf.summary.FileWriter(training_path) if is_chief else None
    try:
        yield writer
    finally:
        if writer:
            writer.close()


def _run_steps(sess, ops, checkpoints, writer, step, progress, loader, stop, deadline=None):
    """The loop up to progress.last_step or a stop request: train, log, summaries (to `writer`, the chief's),
    checkpoints.

    Distributed, a stop request travels with the next step to every worker (ops.sync.stop_flag), and all stop after
    that step together: a worker that stopped alone would leave the others waiting for it. `deadline`
    (distribute.StepDeadline, multi-worker) ends the wait for a worker that died.
    """
    fetches = dict(ops.losses, train_step=ops.train_step, **({'stop': ops.sync.stop} if ops.sync else {}))
    distributed, agreed_stop = ops.sync is not None, False
    while step < progress.last_step and not agreed_stop and not (stop.received and not distributed):
        # Every worker runs the summaries' ops (they include all-reduces), the chief alone writes them.
        with_summary = (step + 1) % SUMMARY_EVERY == 0
        feed = {ops.sync.stop_flag: float(bool(stop.received))} if distributed else None
        values = _run_step(sess, dict(fetches, summary=ops.summary) if with_summary else fetches, feed,
                           deadline, loader, checkpoints, step)
        step = int(values['train_step'])
        agreed_stop = distributed and values['stop'] > 0
        if agreed_stop and not stop.received:
            stop.received = 'a stop request on another worker'
        _check_finite(step, values, checkpoints)
        progress.step(step, values, len(loader.bad))
        if with_summary and writer:
            writer.add_summary(values['summary'], step)
            writer.add_summary(_host_summary(len(loader.bad), progress), step)
        if checkpoints.due(step) and step < progress.last_step:
            log.info('checkpoint saved to %s', checkpoints.save(step))
    return step


def _host_summary(skipped, progress):
    """Summaries Python knows: images skipped so far, and of several styles each style's latest weighted style
    loss (styles take turns, so the graph's summaries, written every SUMMARY_EVERY steps, may always see one)."""
    values = [tf.Summary.Value(tag='data/skipped_images', simple_value=skipped)]
    if len(progress.styles) > 1:
        values += [tf.Summary.Value(tag='style_loss_by_style/%d_%s' % (index, progress.styles[index][0]),
                                    simple_value=loss) for index, loss in sorted(progress.latest_style_loss.items())]
    return tf.Summary(value=values)


def _run_step(sess, fetches, feed, deadline, loader, checkpoints, step):
    """One sess.run of the training step, its failures turned into the user's terms."""
    started = time.time()
    try:
        values = sess.run(fetches, feed, options=deadline.run_options() if deadline else None)
    except (tf.errors.DeadlineExceededError, tf.errors.UnavailableError, tf.errors.AbortedError) as error:
        if not deadline:
            raise
        reason = ('no answer for %d s' % deadline.seconds() if isinstance(error, tf.errors.DeadlineExceededError)
                  else type(error).__name__)
        raise UsageError('lost contact with the other workers after step %d (%s: one stopped or its connection '
                         'broke); %s: restart every worker with the same command'
                         % (step, reason, checkpoints.kept_message())) from None
    except tf.errors.OpError:
        if loader.too_many():
            raise loader.too_many_error() from None
        raise
    if deadline:
        deadline.record(time.time() - started)
    return values
