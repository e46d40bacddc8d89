"""The method of Gatys et al. (2015) as a library: style and content targets from VGG-16's features, the losses of
an image against them (one Gram matrix per region where masks guide them, Gatys et al. 2017), and the optimizers
that change the image itself to lower them. stylize.py is its command line."""
import dataclasses
import hashlib
import json
import os

import numpy as np

import losses
import model
from utils import session_config, tf


@dataclasses.dataclass(frozen=True)
class Recipe:
    """What the losses are made of: the layers, their weights, and how several styles blend."""
    content_layers: list
    style_layers: list
    content_weight: float = 1.0
    style_weight: float = 10.0
    tv_weight: float = 0.0
    style_layer_weights: list = None  # one per style layer; None: all 1
    style_blend: list = None  # one per style image; None: equal


@dataclasses.dataclass(frozen=True)
class Stage:
    """One stage of a coarse-to-fine run: the result's long side (None: the size the run's options give) and the
    optimizer's iterations at it."""
    side: int
    iterations: int


def schedule(sizes, iterations):
    """The stages of a run: one per size of `sizes` (growing; None: one stage at the options' size), each with its
    entry of `iterations` (one count for every stage, or one per stage)."""
    sizes = sizes or [None]
    counts = iterations if len(iterations) == len(sizes) else iterations * len(sizes)
    return [Stage(side, count) for side, count in zip(sizes, counts)]


def stage_file(folder, content, stages, index, settings):
    """Where stage `index`'s result is kept, so that a run stopped in a later stage resumes after it: named by the
    content image, the stage and a digest of everything that made it (`settings`, a JSON value of the run's options
    and inputs, and the stages up to this one), so that a run with other settings or inputs never takes it up."""
    made_of = json.dumps([settings, [dataclasses.astuple(stage) for stage in stages[:index + 1]]], sort_keys=True)
    digest = hashlib.sha256(made_of.encode()).hexdigest()[:12]
    stem = os.path.splitext(os.path.basename(content))[0]
    return os.path.join(folder, '%s-stage%d-%dpx-%s.png' % (stem, index + 1, stages[index].side, digest))


def compute_targets(features, content, styles, recipe, regions=None, mask_styles=None):
    """(content features per content layer, style targets) as numpy arrays. The style targets are (guide, Gram
    matrices per style layer) per region: without masks one, (None, the styles' Gram matrices blended); with
    masks.Regions, one per style region, its share of each pixel (H, W) and its style image's Gram matrices
    (mask_styles: a mask's name -> its style's index; None, the blend)."""
    weights = np.asarray(recipe.style_blend or [1.0] * len(styles), np.float64)
    weights = weights / weights.sum()
    with tf.Graph().as_default():
        images = tf.placeholder(tf.float32, [1, None, None, 3])
        end_points = features.end_points(images)
        grams = [losses.gram(end_points[layer])[0] for layer in recipe.style_layers]
        init_fn = features.init_fn()
        with tf.Session() as sess:
            init_fn(sess)
            content_targets = sess.run([end_points[layer] for layer in recipe.content_layers],
                                       {images: content[None].astype(np.float32)})
            each = [sess.run(grams, {images: style[None].astype(np.float32)}) for style in styles]
    blended = [np.float32(sum(weight * values[layer] for weight, values in zip(weights, each)))
               for layer in range(len(grams))]
    if regions is None:
        return content_targets, [(None, blended)]
    return content_targets, [(regions.shares[..., index], blended if key is None else each[mask_styles[key]])
                             for index, key in enumerate(regions.keys)]


def mean_squared(a, b):
    return tf.reduce_mean(tf.squared_difference(a, b))


def _layer_stride(image, layer):
    """How many times smaller than the image a VGG end point's map is (a power of two: its max-pools)."""
    return 2 ** int(round(np.log2(image.shape.as_list()[1] / layer.shape.as_list()[1])))


def _style_loss(end_points, image, style_targets, recipe):
    """The style loss over the regions of style_targets (see compute_targets): a guided region's Gram matrices
    against its style's (Gatys et al. 2017), each region weighted by its share of the image."""
    layer_weights = recipe.style_layer_weights or [1.0] * len(recipe.style_layers)
    total = []
    for guide, grams in style_targets:
        share = 1.0 if guide is None else float(guide.mean())
        guide = None if guide is None else tf.constant(guide[None, ..., None], tf.float32)
        for layer, target, weight in zip(recipe.style_layers, grams, layer_weights):
            points = end_points[layer]
            gram = (losses.gram(points)[0] if guide is None else
                    losses.guided_gram(points, model.shares_at(guide, _layer_stride(image, points), points)))
            total.append(share * weight * mean_squared(gram, target))
    return tf.add_n(total)


def build_losses(end_points, image, targets, recipe):
    """The weighted content, style and total-variation losses of the image, and their sum (the total): a dict of
    tensors whose terms add up to the total, as the progress bar and the last line show them."""
    content_targets, style_targets = targets
    content = tf.add_n([mean_squared(end_points[layer], target)
                        for layer, target in zip(recipe.content_layers, content_targets)])
    style = _style_loss(end_points, image, style_targets, recipe)
    tv = losses.total_variation_loss(image)
    terms = {'content': recipe.content_weight * content, 'style': recipe.style_weight * style,
             'tv': recipe.tv_weight * tv}
    return {'total': tf.add_n(list(terms.values())), **terms}


def run_adam(sess, image, loss_ops, train, iterations, progress):
    """Adam steps on the image; values are clipped to 0..255 only when written, as in the classic recipe."""
    for step in range(1, iterations + 1):
        _, values = sess.run([train, loss_ops])
        progress.update(step, values, sess.run(image)[0] if progress.wants_frame(step) else None)
    return sess.run(image)[0]


def run_lbfgs(sess, image, loss_ops, gradient, iterations, progress):
    """SciPy's L-BFGS-B on the image, bounded to 0..255, fed by the session's loss and gradient."""
    from scipy.optimize import Bounds, minimize
    shape = image.shape.as_list()
    latest = {}

    def loss_and_gradient(x):
        image.load(x.reshape(shape).astype(np.float32), sess)
        values, grad = sess.run([loss_ops, gradient])
        latest.update(values)
        return np.float64(values['total']), grad.ravel().astype(np.float64)

    def after_iteration(x):
        step = progress.bar.n + 1
        progress.update(step, latest, x.reshape(shape)[0] if progress.wants_frame(step) else None)

    start = sess.run(image).ravel().astype(np.float64)
    result = minimize(loss_and_gradient, start, jac=True, method='L-BFGS-B', bounds=Bounds(0, 255),
                      callback=after_iteration, options={'maxiter': iterations})
    return result.x.reshape(shape)[0].astype(np.float32)


def optimize(features, start, targets, recipe, progress, optimizer='lbfgs', iterations=50, learning_rate=10.0,
             precision='fp32'):
    """Optimize the image from `start`.

    Args:
      features: the nets.LossNetwork; start: float32 (H, W, 3); targets: from compute_targets; recipe: the Recipe.
      progress: a Progress, closed at the end.
      optimizer: 'lbfgs' or 'adam' (with learning_rate); iterations: its steps; precision: 'fp32' or 'bf16'.

    Returns:
      (float image (H, W, 3), final loss values).
    """
    with tf.Graph().as_default():
        image = tf.Variable(start[None], name='image')
        loss_ops = build_losses(features.end_points(image), image, targets, recipe)
        if optimizer == 'adam':
            train = tf.train.AdamOptimizer(learning_rate).minimize(loss_ops['total'], var_list=[image])
        else:
            gradient = tf.gradients(loss_ops['total'], image)[0]
        init_fn = features.init_fn()
        with tf.Session(config=session_config(precision == 'bf16')) as sess:
            sess.run(tf.global_variables_initializer())
            init_fn(sess)
            try:
                if optimizer == 'adam':
                    result = run_adam(sess, image, loss_ops, train, iterations, progress)
                else:
                    result = run_lbfgs(sess, image, loss_ops, gradient, iterations, progress)
            finally:
                progress.close()
            image.load(result[None], sess)
            return result, sess.run(loss_ops)
