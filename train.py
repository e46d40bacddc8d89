"""Train a fast style transfer model for one style.

  python train.py -c conf/candy.yml [--train_dir DIR] [--epoch N] [--max_steps N] [--no_download]
                   [--distribute mirrored|multi_worker] [--devices gpu:0,gpu:1]

Checkpoints and TensorBoard summaries go to <model_path>/<naming>/; a new run resumes from the latest
checkpoint there, with its global step and Adam state.
"""
import argparse
import os
import signal
import time

import numpy as np

import checkpoints as checkpoint_files
import distribute
import losses
import model
import reader
from files import write_image
from nets import pretrained
from nets.loss_network import LossNetwork
from preprocessing import preprocessing_factory
from utils import (ArgumentParser, UsageError, cli_main, gpu_available, load_config, log, read_image,
                   setup_logging, tf)

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
    parser.add_argument('--epoch', type=int, help="passes over the training images in all, for this run's length "
                                                  "(default: the config's epoch)")
    parser.add_argument('--max_steps', type=int, help='stop at this global step and save a checkpoint '
                                                      '(default: train for the config\'s epochs)')
    parser.add_argument('--no_download', action='store_true',
                        help='fail instead of downloading the VGG weights when loss_model_file is missing')
    parser.add_argument('--distribute', choices=distribute.MODES, default='none',
                        help='data-parallel training: mirrored over local devices, or multi_worker over the '
                             'machines that TF_CONFIG lists (default: none, one device)')
    parser.add_argument('--devices', help='the devices of --distribute mirrored, e.g. gpu:0,gpu:1, or cpu:0,cpu:1 '
                                          'for logical CPU devices (default: every local GPU)')
    parser.add_argument('--worker_timeout', type=float,
                        help='multi_worker: seconds a step waits for the other workers before training stops with '
                             'an error (default: 20 times the slowest step, at least %d)'
                             % distribute.StepDeadline.MIN_SECONDS)
    args = parser.parse_args(argv)
    for name in ('epoch', 'max_steps'):
        if getattr(args, name) is not None and getattr(args, name) <= 0:
            parser.error('--%s must be positive' % name)
    if args.worker_timeout is not None and args.worker_timeout <= 0:
        parser.error('--worker_timeout must be positive')
    return args


def build_graph(config, filenames, style_grams, loss_net, loader, reference=False, strategy=None):
    """The training graph: transform network, loss network on generated and content images, losses, Adam.

    `reference` builds the original's formulation instead of the faster one with the same values (the
    benchmarks and tests compare the two). `strategy`, a tf.distribute strategy, replicates the step over its
    devices (see distribute.py).

    Returns:
      A dict of the tensors and ops the loop runs ('init': ops to run once the variables are initialized).
    """
    if strategy:
        return _build_distributed_graph(config, filenames, style_grams, loss_net, loader, strategy)
    preprocess, unprocess = preprocessing_factory.get_preprocessing(config.loss_model, is_training=False)
    size = config.image_size
    content = reader.image_batches(filenames, config.batch_size, size, size, preprocess, loader)
    terms = _losses(config, content, style_grams, loss_net, reference)
    global_step = tf.train.get_or_create_global_step()
    minimize = _optimizer(config).minimize(terms['total'], var_list=model.transform_variables())
    with tf.control_dependencies([minimize]):
        train_step = tf.assign_add(global_step, 1)
    _add_summaries(config, terms, terms['generated'], unprocess(content))
    return dict(_fetched(terms), train_step=train_step, global_step=global_step, summary=tf.summary.merge_all(),
                init=[])


def _build_distributed_graph(config, filenames, style_grams, loss_net, loader, strategy):
    """build_graph over a strategy's replicas: each takes its share of the global batch, the gradients are
    all-reduced, and the losses fetched are the global batch's means.

    The returned dict also has 'stop_flag' (feed 1 to ask every replica to stop), 'stop' (the number of
    replicas asking) and 'restored_steps' (the sum of every replica's global step, to check after restoring).
    """
    preprocess, unprocess = preprocessing_factory.get_preprocessing(config.loss_model, is_training=False)
    size = config.image_size
    mean = tf.distribute.ReduceOp.MEAN

    with strategy.scope():
        global_step = tf.train.get_or_create_global_step()
        optimizer = _optimizer(config)
        stop_flag = tf.placeholder_with_default(0.0, [], name='stop_flag')
        batches = strategy.make_input_fn_iterator(reader.sharded_input_fn(filenames, config.batch_size, size, size,
                                                                          preprocess, loader))

        def replica_step(content):
            terms = _losses(config, content, style_grams, loss_net)
            replicas = tf.distribute.get_replica_context().num_replicas_in_sync
            # The optimizer sums the replicas' gradients: scaling each replica's loss (the mean over its images)
            # by 1/replicas makes that sum the gradient of the global batch's mean, as on one device.
            minimize = optimizer.minimize(terms['total'] / replicas, var_list=model.transform_variables(),
                                          global_step=global_step)
            with tf.control_dependencies([minimize]):
                return tf.nest.map_structure(tf.identity, dict(terms, origin=unprocess(content), stop=stop_flag))

        outputs = strategy.experimental_run(replica_step, batches)
        reduced = {key: strategy.reduce(mean, outputs[key], axis=None) for key in ('total', 'content', 'style', 'tv')}
        reduced['style_per_layer'] = {layer: strategy.reduce(mean, value, axis=None)
                                      for layer, value in outputs['style_per_layer'].items()}
        stop = strategy.reduce(tf.distribute.ReduceOp.SUM, outputs['stop'], axis=None)
        with tf.control_dependencies([stop] + list(_fetched(reduced).values())):
            train_step = tf.identity(global_step.read_value())
        restored_steps = strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.experimental_run(
            lambda: tf.cast(tf.identity(global_step), tf.float32)), axis=None)
    first_replica = {key: strategy.experimental_local_results(outputs[key])[0] for key in ('generated', 'origin')}
    _add_summaries(config, reduced, first_replica['generated'], first_replica['origin'])
    return dict(_fetched(reduced), train_step=train_step, global_step=global_step, summary=tf.summary.merge_all(),
                init=batches.initialize(), stop_flag=stop_flag, stop=stop, restored_steps=restored_steps)


def _losses(config, content, style_grams, loss_net, reference=False):
    """The generated images and the loss terms on a batch of preprocessed content images (nets.LossNetwork)."""
    generated = model.net(content, model.ORIGINAL if reference else model.TRAINING)
    if reference:
        # The original: each generated image preprocessed like a training image, the loss network run on both
        # halves at once to the deepest loss layer, and back-propagated through both.
        preprocess, _ = preprocessing_factory.get_preprocessing(config.loss_model, is_training=False)
        size, batch = config.image_size, config.batch_size
        processed_generated = tf.stack([preprocess(image, size, size) for image in tf.unstack(generated, batch)])
        generated_points, content_points = losses.split_halves(
            loss_net.end_points(tf.concat([processed_generated, content], 0), centered=True))
    else:
        # The same values with less work: preprocessing an image already at the training size is mean subtraction
        # alone (the resize and crop are identities), and the content images need the network only up to the
        # content layers, and no gradient.
        generated_points = loss_net.end_points(generated)
        content_points = loss_net.end_points(tf.stop_gradient(content), config.content_layers, centered=True)
    content_loss = losses.content_loss(generated_points, content_points, config.content_layers)
    style_loss, style_per_layer = losses.style_loss(generated_points, style_grams, config.style_layers)
    tv_loss = losses.total_variation_loss(generated)
    total = config.content_weight * content_loss + config.style_weight * style_loss + config.tv_weight * tv_loss
    return {'generated': generated, 'total': total, 'content': content_loss, 'style': style_loss, 'tv': tv_loss,
            'style_per_layer': style_per_layer}


def _fetched(terms):
    """The loss terms the training loop fetches every step."""
    return {key: terms[key] for key in ('total', 'content', 'style', 'tv')}


def _optimizer(config):
    optimizer = tf.train.AdamOptimizer(LEARNING_RATE)
    if config.mixed_precision and gpu_available():
        # float16 gradients underflow without loss scaling; bfloat16 (CPUs) has float32's range and needs none.
        optimizer = tf.mixed_precision.MixedPrecisionLossScaleOptimizer(optimizer, 'dynamic')
    return optimizer


def _add_summaries(config, terms, generated, origin):
    """TensorBoard summaries with the original's tags."""
    for name, key, weight in (('content_loss', 'content', config.content_weight),
                              ('style_loss', 'style', config.style_weight),
                              ('regularizer_loss', 'tv', config.tv_weight)):
        tf.summary.scalar('losses/' + name, terms[key])
        tf.summary.scalar('weighted_losses/weighted_' + name, terms[key] * weight)
    tf.summary.scalar('total_loss', terms['total'])
    for layer in config.style_layers:
        tf.summary.scalar('style_losses/' + layer, terms['style_per_layer'][layer])
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
    """Every LOG_EVERY steps: step, the loss and its weighted terms (which add up to it), seconds per step, images
    per second and time left."""

    def __init__(self, last_step, batch_size, weights):
        """weights: the config's (content_weight, style_weight, tv_weight)."""
        self.last_step, self.batch_size, self.weights = last_step, batch_size, weights
        self.window_start, self.window_steps = time.time(), 0
        log.info('the loss is content_weight x content + style_weight x style + tv_weight x tv; the lines below show '
                 'each term weighted (%g, %g, %g), so that they add up to it', *weights)

    def step(self, step, values, skipped=0):
        self.window_steps += 1
        if step % LOG_EVERY and step != self.last_step:
            return
        secs_per_step = (time.time() - self.window_start) / self.window_steps
        left = (self.last_step - step) * secs_per_step
        terms = [weight * values[key] for weight, key in zip(self.weights, ('content', 'style', 'tv'))]
        log.info('step %d/%d  loss %.4g = content %.4g + style %.4g + tv %.4g  %.3f s/step  %.1f img/s  %s left%s',
                 step, self.last_step, values['total'], *terms, secs_per_step, self.batch_size / secs_per_step,
                 _duration(left), '  (%d unreadable images skipped)' % skipped if skipped else '')
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


def train(config, filenames, style_grams, loss_net, max_steps=None, placement=None):
    """Run (or resume) training until the config's epochs are done or the global step reaches max_steps.

    placement (distribute.place) says where: one device by default. Only its chief writes to the model folder.
    """
    placement = placement or distribute.place('none', None, config.batch_size, config.mixed_precision)
    training_path = os.path.join(config.model_path, config.naming)
    if placement.is_chief:
        try:
            os.makedirs(training_path, exist_ok=True)
        except OSError as error:
            raise UsageError('cannot create the model folder %s (%s); set model_path in the config to a writable '
                             'folder' % (training_path, error.strerror)) from None
    end_step = total_steps(config, len(filenames))
    stop_step = min(end_step, max_steps) if max_steps else end_step
    if max_steps and max_steps > end_step:
        log.info('--max_steps %d is past the end of this run: %d steps (epoch %d x %d images // batch %d); training '
                 'stops at step %d', max_steps, end_step, config.epoch, len(filenames), config.batch_size, end_step)
    loader = reader.ImageLoader(len(filenames), config.max_bad_fraction, config.image_size)
    with tf.Graph().as_default():
        ops = build_graph(config, filenames, style_grams, loss_net, loader, strategy=placement.strategy)
        init_loss_network = loss_net.init_fn()
        # Everything but the loss network is saved: the transform weights, the global step and Adam's state.
        saver = tf.train.Saver([v for v in tf.global_variables() if not v.op.name.startswith(config.loss_model)],
                               max_to_keep=config.keep_checkpoints)
        with placement.session() as sess:
            if placement.deadline:
                log.info('waiting for every worker to join (the start blocks until all of them have started)')
            sess.run(tf.global_variables_initializer())
            sess.run(ops['init'])
            init_loss_network(sess)
            step, restored = checkpoint_files.restore_newest_complete(sess, saver, training_path, ops['global_step'],
                                                      placement.is_chief)
            if placement.strategy:
                _check_replicas_agree(sess, ops, step, placement)
            if step >= stop_step:
                log.info('nothing to do: the model is already at step %d of %d%s', step, stop_step,
                         '; to train on, raise --max_steps or leave it out (the run ends at step %d)' % end_step
                         if stop_step < end_step else ' (training is complete; raise epoch in the config to train '
                                                      'on)')
                return
            log.info('training steps %d to %d of %d (%d images, batch %d); checkpoints and summaries %s %s',
                     step + 1, stop_step, end_step, len(filenames), config.batch_size,
                     'in' if placement.is_chief else 'written by the chief in', training_path)
            checkpoints = checkpoint_files.Checkpoints(
                sess, saver, os.path.join(training_path, CHECKPOINT_NAME), config, model.transform_variables(),
                placement.is_chief, CHECKPOINT_EVERY)
            checkpoints.last_saved = restored
            with StopRequest() as stop:
                progress = ProgressLog(stop_step, config.batch_size,
                                       (config.content_weight, config.style_weight, config.tv_weight))
                step = _run_steps(sess, ops, checkpoints, step, progress, loader, stop, placement.deadline)
            _finish(checkpoints, step, stop, stop_step, end_step)


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


def _check_replicas_agree(sess, ops, step, placement):
    """Every replica must have restored the same checkpoint: a worker that cannot read the chief's model folder
    would otherwise train from another starting point (and its updates would be mixed into everyone's)."""
    mean_step = sess.run(ops['restored_steps']) / placement.num_replicas
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


def _run_steps(sess, ops, checkpoints, step, progress, loader, stop, deadline=None):
    """The loop up to progress.last_step or a stop request: train, log, summaries, checkpoints.

    Distributed, a stop request travels with the next step to every worker (ops['stop_flag']), and all stop after
    that step together: a worker that stopped alone would leave the others waiting for it. `deadline`
    (distribute.StepDeadline, multi-worker) ends the wait for a worker that died.
    """
    writer = tf.summary.FileWriter(os.path.dirname(checkpoints.prefix)) if checkpoints.is_chief else None
    fetches = {key: ops[key] for key in ('train_step', 'total', 'content', 'style', 'tv', 'stop') if key in ops}
    distributed, agreed_stop = 'stop_flag' in ops, False
    try:
        while step < progress.last_step and not agreed_stop and not (stop.received and not distributed):
            # Every worker runs the summaries' ops (they include all-reduces), the chief alone writes them.
            with_summary = (step + 1) % SUMMARY_EVERY == 0
            feed = {ops['stop_flag']: float(bool(stop.received))} if distributed else None
            values = _run_step(sess, dict(fetches, summary=ops['summary']) if with_summary else fetches, feed,
                               deadline, loader, checkpoints, step)
            step = int(values['train_step'])
            agreed_stop = distributed and values['stop'] > 0
            if agreed_stop and not stop.received:
                stop.received = 'a stop request on another worker'
            _check_finite(step, values, checkpoints)
            progress.step(step, values, len(loader.bad))
            if with_summary and writer:
                writer.add_summary(values['summary'], step)
                writer.add_summary(tf.Summary(value=[tf.Summary.Value(tag='data/skipped_images',
                                                                      simple_value=len(loader.bad))]), step)
            if checkpoints.due(step) and step < progress.last_step:
                log.info('checkpoint saved to %s', checkpoints.save(step))
    finally:
        if writer:
            writer.close()
    return step


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


def get_style_features(config, style_pixels, loss_net, target_dir='generated'):
    """Gram matrices of the style image at the training size, one per style layer.

    The style image is preprocessed like a training image (cover-resize to image_size, central crop); that
    crop is written to <target_dir>/target_style_<naming>.jpg so the user can see what the model learns from.

    Args:
      config: the style config.
      style_pixels: the style image, uint8 (H, W, 3).
      loss_net: the nets.LossNetwork.
      target_dir: where the style target image goes (None: not written).

    Returns:
      A list of float32 numpy arrays (C, C), in the order of config.style_layers.
    """
    preprocess, unprocess = preprocessing_factory.get_preprocessing(config.loss_model, is_training=False)
    with tf.Graph().as_default():
        image = preprocess(tf.constant(style_pixels), config.image_size, config.image_size)
        end_points = loss_net.end_points(tf.expand_dims(image, 0), config.style_layers, centered=True)
        grams = [tf.squeeze(losses.gram(end_points[layer]), [0]) for layer in config.style_layers]
        target = tf.cast(tf.clip_by_value(unprocess(image), 0, 255), tf.uint8)
        init_fn = loss_net.init_fn()
        with tf.Session() as sess:
            init_fn(sess)
            grams_value, target_value = sess.run([grams, target])
    if target_dir is not None:
        target_path = os.path.join(target_dir, 'target_style_%s.jpg' % config.naming)
        write_image(target_path, target_value)
        log.info('style target (%s cropped to %d px) written to %s', config.style_image, config.image_size,
                 target_path)
    return [np.asarray(g, np.float32) for g in grams_value]


def check_prerequisites(config, download):
    """Raise one UsageError naming every missing prerequisite with its fix (the training folder, the style image,
    the VGG weights unless they will be downloaded), rather than one per run."""
    missing = []
    if not os.path.isdir(config.train_dir):
        missing.append('training folder not found: %s (%s)' % (config.train_dir, reader.TRAIN_DIR_FIX))
    if not os.path.isfile(config.style_image):
        missing.append('style image not found: %s (see img/README.md, or point style_image at an image)'
                       % config.style_image)
    vgg = pretrained.missing_vgg(config.loss_model_file, config.loss_model_url, config.loss_model, download)
    if missing or vgg:
        raise UsageError('; '.join(missing + ([vgg] if vgg else [])))


def loss_network_for(config):
    """The config's nets.LossNetwork, after checking its loss model and layers."""
    return LossNetwork(config.loss_model, config.content_layers + config.style_layers, config.loss_model_file,
                       config.checkpoint_exclude_scopes)


@cli_main
def main(argv=None):
    setup_logging()
    args = parse_args(argv)
    config = load_config(args.conf)
    if args.train_dir:
        config['train_dir'] = args.train_dir
    if args.epoch:
        config['epoch'] = args.epoch
    loss_net = loss_network_for(config)
    download = not args.no_download and pretrained.downloadable(config.loss_model_file, config.loss_model)
    check_prerequisites(config, download)
    filenames = reader.list_images(config.train_dir)
    total_steps(config, len(filenames))
    placement = distribute.place(args.distribute, args.devices, config.batch_size, config.mixed_precision,
                                 args.worker_timeout)
    style_pixels = read_image(config.style_image, 'style image')
    pretrained.ensure_vgg_checkpoint(config.loss_model_file, config.loss_model_url, config.loss_model, download)
    loss_net.load_weights()
    log.info('loss network %s up to %s, weights from %s', config.loss_model, loss_net.final_endpoint,
             config.loss_model_file)
    style_grams = get_style_features(config, style_pixels, loss_net, 'generated' if placement.is_chief else None)
    train(config, filenames, style_grams, loss_net, args.max_steps, placement)


if __name__ == '__main__':
    main()
