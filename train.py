"""Train a fast style transfer model for one style.

  python train.py -c conf/candy.yml [--train_dir DIR] [--max_steps N] [--no_download]

Checkpoints and TensorBoard summaries go to <model_path>/<naming>/; a new run resumes from the latest
checkpoint there, with its global step and Adam state.
"""
import argparse
import os
import re
import signal
import time

import numpy as np

import losses
import model
import reader
from nets import nets_factory, pretrained
from preprocessing import preprocessing_factory, vgg_preprocessing
from utils import (ArgumentParser, UsageError, cli_main, get_init_fn, gpu_available, load_config, log, read_image,
                   session_config, setup_logging, tf)

CHECKPOINT_NAME = 'fast-style-model.ckpt'
CHECKPOINT_EVERY = 1000
LOG_EVERY = 10
SUMMARY_EVERY = 25
LEARNING_RATE = 1e-3


def parse_args(argv):
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('-c', '--conf', required=True, help='the style config, e.g. conf/candy.yml')
    parser.add_argument('--train_dir', help="folder of training images, searched recursively (default: the "
                                            "config's train_dir, train2014/ if unset)")
    parser.add_argument('--max_steps', type=int, help='stop at this global step and save a checkpoint '
                                                      '(default: train for the config\'s epochs)')
    parser.add_argument('--no_download', action='store_true',
                        help='fail instead of downloading the VGG weights when loss_model_file is missing')
    args = parser.parse_args(argv)
    if args.max_steps is not None and args.max_steps <= 0:
        parser.error('--max_steps must be positive')
    return args


def build_graph(config, filenames, style_grams, loss_network, loader, reference=False):
    """The training graph: transform network, loss network on generated and content images, losses, Adam.

    `reference` builds the original's formulation instead of the faster one with the same values (the
    benchmarks and tests compare the two).

    Returns:
      A dict of the tensors and ops the loop runs.
    """
    network_fn, final_endpoint = loss_network
    preprocess, unprocess = preprocessing_factory.get_preprocessing(config.loss_model, is_training=False)
    size, batch = config.image_size, config.batch_size
    content = reader.image_batches(filenames, batch, size, size, preprocess, loader)
    generated = model.net(content, training=True, reference=reference)
    if reference:
        # The original: each generated image preprocessed like a training image, the loss network run on both
        # halves at once to the deepest loss layer, and back-propagated through both.
        processed_generated = tf.stack([preprocess(image, size, size) for image in tf.unstack(generated, batch)])
        _, end_points = network_fn(tf.concat([processed_generated, content], 0), final_endpoint=final_endpoint)
        generated_points, content_points = losses.split_halves(end_points)
    else:
        generated_points, content_points = _loss_features(network_fn, final_endpoint, generated, content,
                                                          config.content_layers)

    content_loss = losses.content_loss(generated_points, content_points, config.content_layers)
    style_loss, style_per_layer = losses.style_loss(generated_points, style_grams, config.style_layers)
    tv_loss = losses.total_variation_loss(generated)
    total = config.content_weight * content_loss + config.style_weight * style_loss + config.tv_weight * tv_loss

    global_step = tf.train.get_or_create_global_step()
    transform_vars = model.transform_variables()
    optimizer = tf.train.AdamOptimizer(LEARNING_RATE)
    if config.mixed_precision and gpu_available():
        # float16 gradients underflow without loss scaling; bfloat16 (CPUs) has float32's range and needs none.
        optimizer = tf.mixed_precision.MixedPrecisionLossScaleOptimizer(optimizer, 'dynamic')
    minimize = optimizer.minimize(total, var_list=transform_vars)
    with tf.control_dependencies([minimize]):
        train_step = tf.assign_add(global_step, 1)

    _add_summaries(config, content_loss, style_loss, tv_loss, total, style_per_layer, generated,
                   unprocess(content))
    return {'train_step': train_step, 'global_step': global_step, 'total': total, 'content': content_loss,
            'style': style_loss, 'tv': tv_loss, 'summary': tf.summary.merge_all()}


def _loss_features(network_fn, final_endpoint, generated, content, content_layers):
    """The loss network's end points on the generated and on the content images, the same values as the
    original's with less work.

    Preprocessing an image already at the training size is mean subtraction alone (the resize and the crop are
    identities). The content images need the network only up to the content layers, and no gradient.
    """
    _, generated_points = network_fn(vgg_preprocessing.mean_image_subtraction(generated),
                                     final_endpoint=final_endpoint)
    with tf.variable_scope(tf.get_variable_scope(), reuse=True):
        _, content_points = network_fn(tf.stop_gradient(content),
                                       final_endpoint=losses.final_endpoint(network_fn, content_layers))
    return generated_points, content_points


def _add_summaries(config, content_loss, style_loss, tv_loss, total, style_per_layer, generated, origin):
    """TensorBoard summaries with the original's tags."""
    for name, value, weight in (('content_loss', content_loss, config.content_weight),
                                ('style_loss', style_loss, config.style_weight),
                                ('regularizer_loss', tv_loss, config.tv_weight)):
        tf.summary.scalar('losses/' + name, value)
        tf.summary.scalar('weighted_losses/weighted_' + name, value * weight)
    tf.summary.scalar('total_loss', total)
    for layer in config.style_layers:
        tf.summary.scalar('style_losses/' + layer, style_per_layer[layer])
    tf.summary.image('generated', tf.cast(tf.clip_by_value(generated, 0, 255), tf.uint8))
    tf.summary.image('origin', tf.cast(tf.clip_by_value(origin, 0, 255), tf.uint8))


def total_steps(config, num_images):
    """Steps in `epoch` passes over the images (full batches only)."""
    steps = config.epoch * num_images // config.batch_size
    if steps == 0:
        raise UsageError('%d training images make no full batch of batch_size %d (add images or lower '
                         'batch_size)' % (num_images, config.batch_size))
    return steps


class ProgressLog:
    """Every LOG_EVERY steps: step, losses, seconds per step, images per second and time left."""

    def __init__(self, last_step, batch_size):
        self.last_step, self.batch_size = last_step, batch_size
        self.window_start, self.window_steps = time.time(), 0

    def step(self, step, values, skipped=0):
        self.window_steps += 1
        if step % LOG_EVERY and step != self.last_step:
            return
        secs_per_step = (time.time() - self.window_start) / self.window_steps
        left = (self.last_step - step) * secs_per_step
        log.info('step %d/%d  loss %.4g (content %.4g, style %.4g, tv %.4g)  %.3f s/step  %.1f img/s  %s left%s',
                 step, self.last_step, values['total'], values['content'], values['style'], values['tv'],
                 secs_per_step, self.batch_size / secs_per_step, _duration(left),
                 '  (%d unreadable images skipped)' % skipped if skipped else '')
        self.window_start, self.window_steps = time.time(), 0


def _duration(seconds):
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return '%d:%02d:%02d' % (hours, minutes, secs)


class StopRequest:
    """SIGINT and SIGTERM: the first asks the loop to save and stop after the current step; a second one, handled
    by the system's default action, ends the process at once."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __enter__(self):
        self.received = None
        self.previous = {signum: signal.signal(signum, self._handle) for signum in self.SIGNALS}
        return self

    def _handle(self, signum, _frame):
        self.received = signal.Signals(signum).name
        for other in self.SIGNALS:
            signal.signal(other, signal.SIG_DFL)
        log.info('%s received: saving a checkpoint after this step (send it again to quit at once)', self.received)

    def __exit__(self, *exc_info):
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)


class Checkpoints:
    """Saving every CHECKPOINT_EVERY steps and every checkpoint_secs seconds, never a non-finite model.

    tf.train.Saver writes a checkpoint's files before it names the checkpoint in the `checkpoint` state file, so a
    process killed while saving leaves the previous checkpoints listed and intact.
    """

    def __init__(self, sess, saver, prefix, config, transform_vars):
        self.sess, self.saver, self.prefix = sess, saver, prefix
        self.every_secs = config.checkpoint_secs
        self.last_time = time.time()
        self.last_saved = None
        self.all_finite = tf.reduce_all([tf.reduce_all(tf.is_finite(v)) for v in transform_vars])

    def due(self, step):
        return step % CHECKPOINT_EVERY == 0 or time.time() - self.last_time >= self.every_secs

    def save(self, step, name=None):
        """Save the current state as <prefix>-<step> (or <prefix>-<name>); returns its path."""
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
        return path

    def kept_message(self):
        """Which checkpoint survives a failure, for error messages."""
        if self.last_saved:
            return 'the last checkpoint %s is intact and training resumes from it' % self.last_saved
        return 'no checkpoint of this run was written'


def train(config, filenames, style_grams, loss_network, max_steps=None):
    """Run (or resume) training until the config's epochs are done or the global step reaches max_steps."""
    training_path = os.path.join(config.model_path, config.naming)
    try:
        os.makedirs(training_path, exist_ok=True)
    except OSError as error:
        raise UsageError('cannot create the model folder %s (%s); set model_path in the config to a writable '
                         'folder' % (training_path, error.strerror)) from None
    end_step = total_steps(config, len(filenames))
    stop_step = min(end_step, max_steps) if max_steps else end_step
    loader = reader.ImageLoader(len(filenames), config.max_bad_fraction, config.image_size)
    with tf.Graph().as_default():
        ops = build_graph(config, filenames, style_grams, loss_network, loader)
        init_loss_network = get_init_fn(config.loss_model_file, config.checkpoint_exclude_scopes)
        # Everything but the loss network is saved: the transform weights, the global step and Adam's state.
        saver = tf.train.Saver([v for v in tf.global_variables() if not v.op.name.startswith(config.loss_model)],
                               max_to_keep=config.keep_checkpoints)
        with tf.Session(config=session_config(config.mixed_precision)) as sess:
            sess.run(tf.global_variables_initializer())
            init_loss_network(sess)
            step, restored = _restore_newest_complete(sess, saver, training_path, ops['global_step'])
            if step >= stop_step:
                log.info('nothing to do: the model is already at step %d of %d', step, stop_step)
                return
            log.info('training steps %d to %d of %d (%d images, batch %d); checkpoints and summaries in %s',
                     step + 1, stop_step, end_step, len(filenames), config.batch_size, training_path)
            checkpoints = Checkpoints(sess, saver, os.path.join(training_path, CHECKPOINT_NAME), config,
                                      model.transform_variables())
            checkpoints.last_saved = restored
            with StopRequest() as stop:
                step = _run_steps(sess, ops, checkpoints, step, ProgressLog(stop_step, config.batch_size), loader,
                                  stop)
            if stop.received:
                saved = checkpoints.save(step)
                log.info('stopped by %s at step %d; saved %s. Run the same command to resume', stop.received, step,
                         saved)
            elif stop_step == end_step:
                log.info('training done; model saved to %s', checkpoints.save(step, 'done'))
            else:
                if checkpoints.last_saved != '%s-%d' % (checkpoints.prefix, step):
                    checkpoints.save(step)
                log.info('stopped at step %d (--max_steps); run again to resume', stop_step)


def _checkpoint_candidates(training_path):
    """Checkpoint prefixes in the folder, newest first: those the state file lists, then any other."""
    state = tf.train.get_checkpoint_state(training_path)  # its paths come joined to the folder
    listed = []
    if state:
        for path in [state.model_checkpoint_path] + list(reversed(state.all_model_checkpoint_paths)):
            if os.path.normpath(path) not in listed:
                listed.append(os.path.normpath(path))
    others = sorted((os.path.join(training_path, name[:-len('.index')]) for name in os.listdir(training_path)
                     if name.endswith('.index')), key=lambda p: os.path.getmtime(p + '.index'), reverse=True)
    return listed + [p for p in map(os.path.normpath, others) if p not in listed]


def _restore_newest_complete(sess, saver, training_path, global_step):
    """Restore the newest checkpoint that loads; returns (global step to go on from, its path or None)."""
    candidates = _checkpoint_candidates(training_path)
    for prefix in candidates:
        try:
            model.check_transform_checkpoint(prefix)
            saver.restore(sess, prefix)
        except (UsageError, tf.errors.OpError, ValueError) as error:
            log.info('skipping checkpoint %s: %s', prefix, str(error).strip().splitlines()[0])
            continue
        step = int(sess.run(global_step))
        log.info('resumed from %s at step %d', prefix, step)
        _keep_newest(saver, candidates[candidates.index(prefix):])
        return step, prefix
    if candidates:
        raise UsageError('no checkpoint in %s can be restored (see the lines above); move them away to train from '
                         'scratch' % training_path)
    log.info('no checkpoint in %s: starting from scratch', training_path)
    return 0, None


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


def _run_steps(sess, ops, checkpoints, step, progress, loader, stop):
    """The loop up to progress.last_step or a stop request: train, log, summaries, checkpoints."""
    writer = tf.summary.FileWriter(os.path.dirname(checkpoints.prefix))
    fetches = {key: ops[key] for key in ('train_step', 'total', 'content', 'style', 'tv')}
    try:
        while step < progress.last_step and not stop.received:
            with_summary = (step + 1) % SUMMARY_EVERY == 0
            try:
                values = sess.run(dict(fetches, summary=ops['summary']) if with_summary else fetches)
            except tf.errors.OpError:
                if loader.too_many():
                    raise loader.too_many_error() from None
                raise
            step = int(values['train_step'])
            _check_finite(step, values, checkpoints)
            progress.step(step, values, len(loader.bad))
            if with_summary:
                writer.add_summary(values['summary'], step)
                writer.add_summary(tf.Summary(value=[tf.Summary.Value(tag='data/skipped_images',
                                                                      simple_value=len(loader.bad))]), step)
            if checkpoints.due(step) and step < progress.last_step:
                log.info('checkpoint saved to %s', checkpoints.save(step))
    finally:
        writer.close()
    return step


def loss_network_for(config):
    """(network_fn, final end point) for the config, after checking its loss model and layers."""
    try:
        network_fn = nets_factory.get_network_fn(config.loss_model, num_classes=1, is_training=False)
    except ValueError as error:
        raise UsageError('%s (set loss_model in the config)' % error) from None
    return network_fn, losses.final_endpoint(network_fn, config.content_layers + config.style_layers)


@cli_main
def main(argv=None):
    setup_logging()
    args = parse_args(argv)
    config = load_config(args.conf)
    if args.train_dir:
        config['train_dir'] = args.train_dir
    loss_network = loss_network_for(config)
    filenames = reader.list_images(config.train_dir)
    total_steps(config, len(filenames))
    style_pixels = read_image(config.style_image, 'style image')
    pretrained.ensure_vgg_checkpoint(config.loss_model_file, config.loss_model_url, config.loss_model,
                                     download=not args.no_download)
    log.info('loss network %s up to %s, weights from %s', config.loss_model, loss_network[1],
             config.loss_model_file)
    style_grams = losses.get_style_features(
        config, style_pixels, lambda: get_init_fn(config.loss_model_file, config.checkpoint_exclude_scopes))
    train(config, filenames, style_grams, loss_network, args.max_steps)


if __name__ == '__main__':
    main()
