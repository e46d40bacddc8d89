"""The training graph: transform network, loss network on generated and content images, losses, Adam."""
from __future__ import annotations  # the NamedTuples name TensorFlow types without importing it
import typing

import numpy as np

import losses
import model
import reader
from preprocessing import preprocessing_factory
from utils import gpu_available, tf

LEARNING_RATE = 1e-3
LOSS_TERMS = ('total', 'content', 'style', 'tv')
FETCHED = LOSS_TERMS + ('style_index',)  # the style a step trained: 0 for a network of one style


class ReplicaSync(typing.NamedTuple):
    """What distributed training adds to a step: the replicas stop together and check that they start together."""
    stop_flag: tf.Tensor  # feed 1 to ask every replica to stop after this step
    stop: tf.Tensor  # the number of replicas asking
    restored_steps: tf.Tensor  # the sum of every replica's global step, to compare after restoring


class TrainingOps(typing.NamedTuple):
    """The tensors and ops the training loop runs."""
    train_step: tf.Tensor  # runs one step; its value is the global step after it
    losses: dict  # FETCHED -> the batch's value of each (the means over the global batch, distributed)
    global_step: tf.Variable
    summary: tf.Tensor
    init: list  # ops to run once the variables are initialized
    sync: ReplicaSync = None  # distributed training only


def build_graph(config, filenames, styles, loss_net, loader, reference=False, strategy=None, frozen_styles=0):
    """The training graph: transform network, loss network on generated and content images, losses, Adam.

    `styles` lists (Gram matrices per style layer, style weight) for each style: with several, the network has
    conditional instance normalization and each step trains one style, in turn (the global step modulo their
    number). `frozen_styles` N keeps the shared weights and the first N styles as they are: the steps take the
    other styles in turn and train their scales and offsets alone. `reference` builds the original's formulation
    instead of the faster one with the same values (the benchmarks and tests compare the two). `strategy`, a tf.distribute strategy, replicates the step over its
    devices (see distribute.py).

    Returns:
      The TrainingOps.
    """
    if strategy:
        return _build_distributed_graph(config, filenames, styles, loss_net, loader, strategy, frozen_styles)
    preprocess, unprocess = preprocessing_factory.get_preprocessing(config.loss_model, is_training=False)
    size = config.image_size
    content = reader.image_batches(filenames, config.batch_size, size, size, preprocess, loader)
    global_step = tf.train.get_or_create_global_step()
    terms = _losses(config, content, styles, loss_net, global_step, reference, frozen_styles)
    minimize = _optimizer(config).minimize(terms['total'], var_list=trained_variables(frozen_styles))
    with tf.control_dependencies([minimize]):
        train_step = tf.assign_add(global_step, 1)
    _add_summaries(config, terms, terms['generated'], unprocess(content), len(styles))
    return TrainingOps(train_step, _fetched(terms), global_step, tf.summary.merge_all(), init=[])


def _build_distributed_graph(config, filenames, styles, loss_net, loader, strategy, frozen_styles):
    """build_graph over a strategy's replicas: each takes its share of the global batch, the gradients are
    all-reduced, and the losses fetched are the global batch's means. The TrainingOps have a ReplicaSync."""
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
            terms = _losses(config, content, styles, loss_net, global_step, frozen_styles=frozen_styles)
            replicas = tf.distribute.get_replica_context().num_replicas_in_sync
            # The optimizer sums the replicas' gradients: scaling each replica's loss (the mean over its images)
            # by 1/replicas makes that sum the gradient of the global batch's mean, as on one device.
            minimize = optimizer.minimize(terms['total'] / replicas, var_list=trained_variables(frozen_styles),
                                          global_step=global_step)
            with tf.control_dependencies([minimize]):
                return tf.nest.map_structure(tf.identity, dict(terms, origin=unprocess(content), stop=stop_flag))

        outputs = strategy.experimental_run(replica_step, batches)
        reduced = {key: strategy.reduce(mean, outputs[key], axis=None) for key in FETCHED + ('style_weight',)}
        reduced['style_per_layer'] = {layer: strategy.reduce(mean, value, axis=None)
                                      for layer, value in outputs['style_per_layer'].items()}
        stop = strategy.reduce(tf.distribute.ReduceOp.SUM, outputs['stop'], axis=None)
        with tf.control_dependencies([stop] + list(_fetched(reduced).values())):
            train_step = tf.identity(global_step.read_value())
        restored_steps = strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.experimental_run(
            lambda: tf.cast(tf.identity(global_step), tf.float32)), axis=None)
    first_replica = {key: strategy.experimental_local_results(outputs[key])[0] for key in ('generated', 'origin')}
    _add_summaries(config, reduced, first_replica['generated'], first_replica['origin'], len(styles))
    return TrainingOps(train_step, _fetched(reduced), global_step, tf.summary.merge_all(), batches.initialize(),
                       ReplicaSync(stop_flag, stop, restored_steps))


def trained_variables(frozen_styles=0):
    """The variables the optimizer changes: the whole transform network, or with frozen styles only the per-style
    scales and offsets (the frozen styles' rows get no gradient, so Adam leaves them exactly as they were)."""
    variables = model.transform_variables()
    if not frozen_styles:
        return variables
    # By name (model.transform_variables says why): in a replica a variable's op is that replica's copy.
    return [v for v in variables if v.name.rsplit(':', 1)[0].rsplit('/', 1)[1] in model.STYLE_VARIABLES]


def _style_of_step(styles, global_step, frozen_styles=0):
    """(style weights for model.net or None, Gram targets per layer, style weight, index) of the style this step
    trains: the only one, or with several the global step's turn among those not frozen."""
    if len(styles) == 1:
        grams, weight = styles[0]
        return None, grams, tf.constant(weight, tf.float32), tf.constant(0.0)
    index = frozen_styles + tf.cast(tf.math.floormod(global_step, len(styles) - frozen_styles), tf.int32)
    grams = [tf.gather(tf.constant(np.stack([style[0][layer] for style in styles]), tf.float32), index)
             for layer in range(len(styles[0][0]))]
    weight = tf.gather(tf.constant([style[1] for style in styles], tf.float32), index)
    return tf.one_hot(index, len(styles)), grams, weight, tf.cast(index, tf.float32)


def _losses(config, content, styles, loss_net, global_step, reference=False, frozen_styles=0):
    """The generated images and the loss terms on a batch of preprocessed content images (nets.LossNetwork)."""
    mix, style_grams, style_weight, style_index = _style_of_step(styles, global_step, frozen_styles)
    generated = model.net(content, model.ORIGINAL if reference else model.TRAINING, style_weights=mix)
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
    total = config.content_weight * content_loss + style_weight * style_loss + config.tv_weight * tv_loss
    return {'generated': generated, 'total': total, 'content': content_loss, 'style': style_loss, 'tv': tv_loss,
            'style_per_layer': style_per_layer, 'style_weight': style_weight, 'style_index': style_index}


def _fetched(terms):
    """The loss terms the training loop fetches every step."""
    return {key: terms[key] for key in FETCHED}


def _optimizer(config):
    optimizer = tf.train.AdamOptimizer(LEARNING_RATE)
    if config.mixed_precision and gpu_available():
        # float16 gradients underflow without loss scaling; bfloat16 (CPUs) has float32's range and needs none.
        optimizer = tf.mixed_precision.MixedPrecisionLossScaleOptimizer(optimizer, 'dynamic')
    return optimizer


def _add_summaries(config, terms, generated, origin, styles):
    """TensorBoard summaries with the original's tags, and with several styles the one each step trained."""
    for name, key, weight in (('content_loss', 'content', config.content_weight),
                              ('style_loss', 'style', terms['style_weight']),
                              ('regularizer_loss', 'tv', config.tv_weight)):
        tf.summary.scalar('losses/' + name, terms[key])
        tf.summary.scalar('weighted_losses/weighted_' + name, terms[key] * weight)
    tf.summary.scalar('total_loss', terms['total'])
    if styles > 1:
        tf.summary.scalar('style_index', terms['style_index'])
    for layer in config.style_layers:
        tf.summary.scalar('style_losses/' + layer, terms['style_per_layer'][layer])
    tf.summary.image('generated', tf.cast(tf.clip_by_value(generated, 0, 255), tf.uint8))
    tf.summary.image('origin', tf.cast(tf.clip_by_value(origin, 0, 255), tf.uint8))
