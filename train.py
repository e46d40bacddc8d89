"""Train a fast style transfer model, for one style or several (a list of style images in the config).

  python train.py -c conf/candy.yml [--train_dir DIR] [--epoch N] [--max_steps N] [--init_from MODEL]
                   [--frozen_styles N] [--preview PHOTO] [--no_download]
                   [--distribute mirrored|multi_worker] [--devices gpu:0,gpu:1]

Checkpoints and TensorBoard summaries go to <model_path>/<naming>/; a new run resumes from the latest
checkpoint there, with its global step and Adam state.
"""
import argparse
import contextlib
import os

import numpy as np

import distribute
import losses
import model
import reader
from checkpoints import checkpoint_candidates, model_exists
from config import load_config, style_list, style_scale_list
from files import Outputs
from images import read_image
from inference.stylizer import model_weights
from nets import pretrained
from nets.loss_network import LossNetwork
from preprocessing import preprocessing_factory
from training import preview
from training.init_from import starting_weights
from training.loop import claim_model_folder, hold_model_folder, total_steps, train
from utils import ArgumentParser, UsageError, cli_main, log, run_and_exit, setup_logging, tf


def parse_args(argv):
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('-c', '--conf', required=True, help='the style config, e.g. conf/candy.yml')
    parser.add_argument('--train_dir', help="folder of training images, searched recursively but for the run's own "
                                            "outputs (default: the config's train_dir, train2014/ if unset)")
    parser.add_argument('--epoch', type=int, help="passes over the training images in all, for this run's length "
                                                  "(default: the config's epoch)")
    parser.add_argument('--max_steps', type=int, help='stop at this global step and save a checkpoint '
                                                      '(default: train for the config\'s epochs)')
    parser.add_argument('--init_from', metavar='MODEL',
                        help='start from a trained model (a checkpoint, .pb or SavedModel; any number of styles): a '
                             'network that keeps a photo\'s shapes learns a new style in far fewer steps. A new '
                             'model folder only; the global step and Adam start afresh')
    parser.add_argument('--frozen_styles', type=int, metavar='N', default=0,
                        help='a network of several styles: keep its shared weights and its first N styles exactly as '
                             'they are, and train only the other styles\' scales and offsets (a style added to a '
                             'trained network with --init_from); give it again to resume (default: 0, train all)')
    parser.add_argument('--preview', metavar='PHOTO',
                        help='at every checkpoint, stylize this photo (one not trained on) into '
                             'generated/preview_<naming>/step-<N>.jpg, to watch the style take hold')
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
    if args.frozen_styles < 0:
        parser.error('--frozen_styles must be 0 or more, got %d' % args.frozen_styles)
    if args.worker_timeout is not None and not 0 < args.worker_timeout < float('inf'):
        parser.error('--worker_timeout must be a positive number of seconds, got %s' % args.worker_timeout)
    return args


def get_style_features(config, style_pixels, loss_net, scale=1.0):
    """Gram matrices of a style image at the training size times `scale`, one per style layer, and the crop they
    come from.

    The style image is preprocessed like a training image (cover-resize to image_size, central crop); style_targets
    writes that crop so that the user can see what the model learns from. At scale 2 the crop is twice as large
    (image_size x 2 pixels a side) and holds the same part of the image: its strokes come out twice as large in the
    training photos' pixels, which is what a network of several style_scales learns to vary.

    Args:
      config: the style config.
      style_pixels: the style image, uint8 (H, W, 3).
      loss_net: the nets.LossNetwork.
      scale: the style_scales entry.

    Returns:
      (a list of float32 numpy arrays (C, C) in the order of config.style_layers, the crop uint8 (S, S, 3)).
    """
    preprocess, unprocess = preprocessing_factory.get_preprocessing(config.loss_model, is_training=False)
    with tf.Graph().as_default():
        side = round(config.image_size * scale)
        image = preprocess(tf.constant(style_pixels), side, side)
        end_points = loss_net.end_points(tf.expand_dims(image, 0), config.style_layers, centered=True)
        grams = [tf.squeeze(losses.gram(end_points[layer]), [0]) for layer in config.style_layers]
        target = tf.cast(tf.clip_by_value(unprocess(image), 0, 255), tf.uint8)
        init_fn = loss_net.init_fn()
        with tf.Session() as sess:
            init_fn(sess)
            grams_value, target_value = sess.run([grams, target])
    return [np.asarray(g, np.float32) for g in grams_value], target_value


TARGET_DIR = 'generated'


def target_paths(config):
    """Where the style targets go: generated/target_style_<naming>.jpg, or with several styles
    target_style_<naming>_<index>.jpg. They are train.py's own files, rewritten by every run of the config (a
    resumed run too), so an earlier one is replaced without --overwrite; never a style image."""
    styles = len(style_list(config))
    return [os.path.join(TARGET_DIR, 'target_style_%s%s.jpg' % (config.naming, '_%d' % index if styles > 1 else ''))
            for index in range(styles)]


def style_targets(config, loss_net, outputs=None):
    """(Gram matrices, style weight) of every style of the config, each computed once; their training crops are
    written through `outputs` (files.Outputs, where target_paths are claimed; None: not written)."""
    targets = []
    for (image, weight), scale, path in zip(style_list(config), style_scale_list(config), target_paths(config)):
        grams, crop = get_style_features(config, read_image(image, 'style image'), loss_net, scale)
        targets.append((grams, weight))
        if outputs is not None:
            outputs.image(path, crop)
            log.info('style target (%s cropped to %d px) written to %s', image, crop.shape[0], path)
    return targets


def run_outputs(config, init_from, preview_path):
    """The chief's files.Outputs, with every output of the run claimed: the model folder, the style targets (its
    own files) and the preview folder. Nothing is written yet; the model folder is then held (loop.hold_model_folder)
    before the first write, so that a run refused by any check leaves every file as it was."""
    inputs = [config.train_dir, config.loss_model_file] + [image for image, _ in style_list(config)]
    inputs += [path for path in (init_from, preview_path) if path]
    outputs = Outputs(inputs, own=target_paths(config))
    claim_model_folder(config, outputs)
    for path in target_paths(config):
        outputs.claim(path, option='the style target')
    return outputs


def start_from(model_file, styles, frozen_styles=0):
    """(weights for a network of `styles` styles, the source) read from a trained model for --init_from; its
    styles must cover the frozen ones."""
    source = model_weights(model_file)
    held = model.styles_in({name: value.shape for name, value in source.items()})
    if frozen_styles > held:
        raise UsageError('--frozen_styles %d keeps styles that %s does not have: it holds %d style%s'
                         % (frozen_styles, model_file, held, 's' * (held > 1)))
    weights, note = starting_weights(source, styles)
    log.info('starting from %s: %s', model_file, note)
    return weights, model_file


def check_frozen_styles(frozen_styles, styles, init_from, training_path):
    """Raise UsageError unless --frozen_styles leaves a style to train and keeps a trained network's styles."""
    if not frozen_styles:
        return
    if frozen_styles >= styles:
        raise UsageError('--frozen_styles %d leaves no style to train: the config lists %d style%s (add the new '
                         'style images to its style_image list, after the kept ones)'
                         % (frozen_styles, styles, 's' * (styles > 1)))
    if not init_from and not checkpoint_candidates(training_path):
        raise UsageError('--frozen_styles keeps the styles of a trained network, and %s holds no checkpoint: start '
                         'from one with --init_from MODEL' % training_path)


def check_prerequisites(config, download, init_from=None, preview=None):
    """Raise one UsageError naming every missing prerequisite with its fix (the training folder, the style image,
    the VGG weights unless they will be downloaded, the model to start from, the preview photo), rather than one
    per run."""
    missing = []
    if preview and not os.path.isfile(preview):
        missing.append('preview photo not found: %s (--preview takes a photo, e.g. img/test.jpg)' % preview)
    if init_from and not model_exists(init_from):
        missing.append('model to start from not found: %s (--init_from takes a checkpoint, .pb or SavedModel, e.g. '
                       'models/wave.ckpt)' % init_from)
    if not os.path.isdir(config.train_dir):
        missing.append(reader.train_dir_missing(config.train_dir))
    missing += ['style image not found: %s (see img/README.md, or point style_image at an image)' % image
                for image, _ in style_list(config) if not os.path.isfile(image)]
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
    check_prerequisites(config, download, args.init_from, args.preview)
    photo = preview.load_photo(args.preview, config.max_image_pixels) if args.preview else None
    styles = len(style_list(config))
    check_frozen_styles(args.frozen_styles, styles, args.init_from, os.path.join(config.model_path, config.naming))
    init_from = start_from(args.init_from, styles, args.frozen_styles) if args.init_from else None
    filenames = reader.list_images(config.train_dir, [os.path.join(config.model_path, config.naming), 'generated'])
    total_steps(config, len(filenames))
    placement = distribute.place(args.distribute, args.devices, config.batch_size, config.mixed_precision,
                                 args.worker_timeout)
    outputs = run_outputs(config, args.init_from, args.preview) if placement.is_chief else None
    previews = (preview.Preview(photo, os.path.join(TARGET_DIR, 'preview_' + config.naming), outputs)
                if photo is not None and outputs else None)
    with hold_model_folder(config, outputs) if outputs else contextlib.nullcontext():
        pretrained.ensure_vgg_checkpoint(config.loss_model_file, config.loss_model_url, config.loss_model, download)
        loss_net.load_weights()
        log.info('loss network %s up to %s, weights from %s', config.loss_model, loss_net.final_endpoint,
                 config.loss_model_file)
        targets = style_targets(config, loss_net, outputs)
        train(config, filenames, targets, loss_net, args.max_steps, placement, init_from, args.frozen_styles,
              previews)


if __name__ == '__main__':
    run_and_exit(main)  # the checkpoints and summaries are closed by then: no teardown to wait for
