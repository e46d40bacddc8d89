"""Train a fast style transfer model for one style.

  python train.py -c conf/candy.yml [--train_dir DIR] [--max_steps N] [--no_download]

Checkpoints and TensorBoard summaries go to <model_path>/<naming>/; a new run resumes from the latest
checkpoint there, with its global step and Adam state.
"""
import argparse
import os
import time

import losses
import model
import reader
from nets import nets_factory, pretrained
from preprocessing import preprocessing_factory
from utils import (ArgumentParser, UsageError, cli_main, get_init_fn, load_config, log, read_image, setup_logging,
                   tf)

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


def build_graph(config, filenames, style_grams, loss_network):
    """The training graph: transform network, loss network on [generated, content], losses, Adam.

    Returns:
      A dict of the tensors and ops the loop runs.
    """
    network_fn, final_endpoint = loss_network
    preprocess, unprocess = preprocessing_factory.get_preprocessing(config.loss_model, is_training=False)
    size, batch = config.image_size, config.batch_size
    content = reader.image_batches(filenames, batch, size, size, preprocess)
    generated = model.net(content, training=True)
    # The generated images are in 0..255; the loss network wants them mean-subtracted like the content.
    processed_generated = tf.stack([preprocess(image, size, size) for image in tf.unstack(generated, batch)])
    _, end_points = network_fn(tf.concat([processed_generated, content], 0), final_endpoint=final_endpoint)

    content_loss = losses.content_loss(end_points, config.content_layers)
    style_loss, style_per_layer = losses.style_loss(end_points, style_grams, config.style_layers)
    tv_loss = losses.total_variation_loss(generated)
    total = config.content_weight * content_loss + config.style_weight * style_loss + config.tv_weight * tv_loss

    global_step = tf.train.get_or_create_global_step()
    transform_vars = model.transform_variables()
    minimize = tf.train.AdamOptimizer(LEARNING_RATE).minimize(total, var_list=transform_vars)
    with tf.control_dependencies([minimize]):
        train_step = tf.assign_add(global_step, 1)

    _add_summaries(config, content_loss, style_loss, tv_loss, total, style_per_layer, generated,
                   unprocess(content))
    return {'train_step': train_step, 'global_step': global_step, 'total': total, 'content': content_loss,
            'style': style_loss, 'tv': tv_loss, 'summary': tf.summary.merge_all()}


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

    def step(self, step, values):
        self.window_steps += 1
        if step % LOG_EVERY and step != self.last_step:
            return
        secs_per_step = (time.time() - self.window_start) / self.window_steps
        left = (self.last_step - step) * secs_per_step
        log.info('step %d/%d  loss %.4g (content %.4g, style %.4g, tv %.4g)  %.3f s/step  %.1f img/s  %s left',
                 step, self.last_step, values['total'], values['content'], values['style'], values['tv'],
                 secs_per_step, self.batch_size / secs_per_step, _duration(left))
        self.window_start, self.window_steps = time.time(), 0


def _duration(seconds):
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return '%d:%02d:%02d' % (hours, minutes, secs)


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
    with tf.Graph().as_default():
        ops = build_graph(config, filenames, style_grams, loss_network)
        init_loss_network = get_init_fn(config.loss_model_file, config.checkpoint_exclude_scopes)
        # Everything but the loss network is saved: the transform weights, the global step and Adam's state.
        saver = tf.train.Saver([v for v in tf.global_variables() if not v.op.name.startswith(config.loss_model)])
        prefix = os.path.join(training_path, CHECKPOINT_NAME)
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            init_loss_network(sess)
            step = _restore_latest(sess, saver, training_path, ops['global_step'])
            if step >= stop_step:
                log.info('nothing to do: the model is already at step %d of %d', step, stop_step)
                return
            log.info('training steps %d to %d of %d (%d images, batch %d); checkpoints and summaries in %s',
                     step + 1, stop_step, end_step, len(filenames), config.batch_size, training_path)
            try:
                _run_steps(sess, ops, saver, prefix, step, ProgressLog(stop_step, config.batch_size))
            except KeyboardInterrupt:
                # sess.run returns before Python sees Ctrl-C, so the variables hold a whole step.
                step = int(sess.run(ops['global_step']))
                saved = saver.save(sess, prefix, global_step=step)
                log.info('interrupted at step %d; saved %s. Run the same command to resume', step, saved)
                return
            if stop_step == end_step:
                saved = saver.save(sess, prefix + '-done')
                log.info('training done; model saved to %s', saved)
            else:
                if stop_step % CHECKPOINT_EVERY:
                    saver.save(sess, prefix, global_step=stop_step)
                log.info('stopped at step %d (--max_steps); run again to resume', stop_step)


def _restore_latest(sess, saver, training_path, global_step):
    """Restore the newest checkpoint in training_path, if any; return the global step to go on from."""
    latest = tf.train.latest_checkpoint(training_path)
    if not latest:
        log.info('no checkpoint in %s: starting from scratch', training_path)
        return 0
    model.check_transform_checkpoint(latest)
    try:
        saver.restore(sess, latest)
    except tf.errors.NotFoundError:
        raise UsageError('%s holds the model but not its training state (global step, Adam); move it out of %s '
                         'to train from scratch' % (latest, training_path)) from None
    step = int(sess.run(global_step))
    log.info('resumed from %s at step %d', latest, step)
    return step


def _run_steps(sess, ops, saver, prefix, step, progress):
    """The loop up to progress.last_step: train, log, write summaries and checkpoints."""
    writer = tf.summary.FileWriter(os.path.dirname(prefix))
    fetches = {key: ops[key] for key in ('train_step', 'total', 'content', 'style', 'tv')}
    try:
        while step < progress.last_step:
            with_summary = (step + 1) % SUMMARY_EVERY == 0
            values = sess.run(dict(fetches, summary=ops['summary']) if with_summary else fetches)
            step = int(values['train_step'])
            progress.step(step, values)
            if with_summary:
                writer.add_summary(values['summary'], step)
            if step % CHECKPOINT_EVERY == 0:
                log.info('checkpoint saved to %s', saver.save(sess, prefix, global_step=step))
    finally:
        writer.close()


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
