"""What a stylizing run asks of its model, as one function of a photo: the style (a trained style by name, a mix of
trained styles, or style images' embeddings, each predicted once, blended with the photo's own), or by region
(masks, which say which style goes where). eval.py and batch.py build it from the same options, so that their
pixels are the same."""
import dataclasses
import os

import numpy as np

import model
import style_names
from images import load_image
from inference import arbitrary, color, masks as masking, stroke as strokes
from inference.stylizer import DEFAULT_MAX_PIXELS, Stylizer, style_choice
from nets.arbitrary import STYLE_SIZE
from utils import UsageError


@dataclasses.dataclass(frozen=True)
class Recipe:
    """What a run asks of its model, in plain values (batch.py ships it to its workers): the model, its style (a
    trained one by name, a mix, or style images' paths for Magenta's network, blended with the photo's own by
    style_strength at style_size), or a stroke size (inference/stroke.py), by region where masks (masks.Mask values)
    say, then colour (preserve_colors) and strength."""
    model_file: str
    max_pixels: int = DEFAULT_MAX_PIXELS
    precision: str = 'fp32'
    choice: str = None
    mix: tuple = None
    style_images: tuple = ()
    style_strength: float = 1.0
    style_size: int = STYLE_SIZE
    preserve_colors: bool = False
    strength: float = 1.0
    masks: tuple = ()
    stroke: float = None


def open_model(recipe, style_pixels, model_file=None):
    """(Stylizer, style_for) of a Recipe: the model loaded and the style images' embeddings predicted, once.

    Args:
      style_pixels: the recipe's style images' pixels (load_style_image's), in its order.
      model_file: where the model is on this machine, if not at recipe.model_file (a worker's copy).
    """
    stylizer = Stylizer(model_file or recipe.model_file, recipe.max_pixels, recipe.precision)
    return stylizer, style_of(stylizer, style_pixels, recipe)


def finish(recipe, stylized, original, photo_share=None):
    """The model's result with the recipe's colour and strength applied, and blended with the photo by its share
    per pixel (float (H, W), or None)."""
    strength = recipe.strength if photo_share is None else recipe.strength * (1 - photo_share)
    return color.finish(stylized, original, recipe.preserve_colors, strength)


def stylize(recipe, stylizer, style_for, pixels, name=None, progress=True, given=None):
    """A photo stylized as the recipe asks: the result eval.py writes, and batch.py. name: the photo's relative name,
    by which a folder of masks holds its mask; given: its masks' grey maps, where read elsewhere (style_of)."""
    style, photo_share = style_for(pixels, name, given)
    return finish(recipe, stylizer(pixels, style=style, progress=progress), pixels, photo_share)


def load_style_image(path, side, source=None):
    """A style image's pixels, checked for what its style can be predicted from; read from `source` (a binary file
    object) where given, else from `path`."""
    pixels = load_image(source or path, 'style image', max_pixels=arbitrary.STYLE_MAX_PIXELS, name=path)[0]
    arbitrary.check_style_shape(pixels.shape[0], pixels.shape[1], side, 'style image %s' % path)
    return pixels


def style_of(stylizer, style_pixels, recipe):
    """What the model is asked for, as a function of the photo: style_for(pixels, name=None, given=None) -> (style,
    photo_share), given: the grey maps of masks read elsewhere (see masks.photo_regions):
    the style argument of Stylizer (see style_choice; for an arbitrary-style network, the style images' embedding,
    each predicted once, mixed in the shares recipe.mix, blended with the photo's own by recipe.style_strength; by
    region, a model.StyleMap of those) and the photo's share per pixel for the blend after it, or None.

    Raises:
      UsageError: style images for another model, none for an arbitrary-style one, a choice or a mask's style that
        the model cannot take.
    """
    keyed = _styles_by_key(stylizer, style_pixels, recipe)
    masking.check_masks(recipe.masks, (recipe.choice, recipe.mix, recipe.stroke))
    for key in set(mask.name for mask in recipe.masks if mask.name != masking.PHOTO) or {None}:
        keyed(key, None)  # every style asked for checked before any photo
    if not recipe.masks:
        return lambda pixels, name=None, given=None: (keyed(None, pixels), None)

    def style_for(pixels, name=None, given=None):
        found = masking.photo_regions(recipe.masks, name or 'the photo', *pixels.shape[:2], given=given)
        return by_region(stylizer, found, [keyed(key, pixels) for key in found.keys], lambda: stylizer.embed(
            pixels, recipe.style_size, "the photo (its own style, for the photo's regions)"))
    return style_for


def by_region(stylizer, found, styles, own):
    """(style, photo_share) for Stylizer and finish of masks.Regions whose styles are `styles` (the model's style
    vectors, or embeddings); own() is the photo's own embedding, for an arbitrary-style network's regions that keep
    the photo (its identity interpolation)."""
    if stylizer.arbitrary is not None:
        if found.photo.any():
            styles = styles + [own()]
            shares = np.concatenate([found.shares, found.photo[..., None]], -1)
        else:
            shares = found.shares
        return _one_or_map(styles, shares), None
    if stylizer.styles == 1:
        return None, found.photo
    return _one_or_map(styles, masking.network_shares(found.shares)), found.photo


def _one_or_map(styles, shares):
    """One style where there is one (the model's own graph runs it), else a model.StyleMap."""
    if len(styles) == 1:
        return styles[0]
    return model.StyleMap(np.stack(styles).astype(np.float32), shares)


def _styles_by_key(stylizer, style_pixels, recipe):
    """style(key, pixels): the style vector of a mask's name (None: the one the options give) for the photo
    `pixels` (its own embedding blends into an arbitrary-style network's by recipe.style_strength)."""
    if stylizer.arbitrary is None:
        if style_pixels:
            raise UsageError("--style_image needs a checkpoint of Magenta's arbitrary-style network; %s is a network "
                             "trained on its own style%s" % (stylizer.source, 's' if stylizer.styles > 1 else ''))
        return lambda key, _pixels: trained_style(stylizer, key, (recipe.choice, recipe.mix, recipe.stroke))
    if not style_pixels:
        raise UsageError("%s is Magenta's arbitrary-style network: give the style with --style_image PATH"
                         % stylizer.source)
    embeddings = [stylizer.embed(pixels, recipe.style_size) for pixels in style_pixels]
    names = [os.path.splitext(os.path.basename(path))[0] for path in recipe.style_images]
    mixed = [] if recipe.mix is None and len(embeddings) > 1 else [arbitrary.mixed_embedding(embeddings, recipe.mix)]

    def style(key, pixels):
        if key is None:
            if not mixed:
                raise UsageError('a mask without a name takes the style images\' mix: give their shares with '
                                 '--style_mix, or name each mask\'s style image (--mask NAME=PATH, NAME one of %s)'
                                 % ', '.join(names))
            embedding = mixed[0]
        else:
            embedding = embeddings[style_names.index_of(key, names if len(set(names)) == len(names) else None,
                                                        len(names), 'the style images', '--mask')]
        return None if pixels is None else arbitrary.with_strength(embedding, recipe.style_strength, lambda: (
            stylizer.embed(pixels, recipe.style_size, "the photo (its own style, which --style_strength below 1 "
                                                      "blends in)")))
    return style


def trained_style(stylizer, key, asked, options=('--style', '--style_mix', '--stroke'), mask_option='--mask',
                  source=None):
    """The style vector (see style_choice) of a mask's style `key` (None: the style that `asked` gives) for a
    network trained on its own styles.

    Args:
      asked: (a style's name or index, a mix, a stroke size), each None where not given; a network of several
        style scales takes stroke size 1 where none of them is given and 1 lies within its scales.
      options, mask_option, source (by default the model's path): what the user calls them, for messages.
    """
    source = source or stylizer.source
    choice, mix, stroke = asked
    if key is None:
        scales = strokes.scales_of(stylizer.style_names)
        if stroke is not None or (scales is not None and choice is None and mix is None
                                  and scales.min() <= 1 <= scales.max()):
            if choice is not None or mix is not None:
                raise UsageError('give %s or %s, not both' % (options[2], options[0 if choice is not None else 1]))
            stroke = 1.0 if stroke is None else stroke
            strokes.check_stroke(stroke, scales, source, options[2])
            return strokes.stroke_weights(stroke, scales)
        return style_choice(stylizer.styles, choice, mix, source, options[:2], stylizer.style_names)
    if stylizer.styles == 1:
        if key not in (stylizer.style_names or ()) and key != '0':
            raise UsageError('%s holds one style: give its mask without a name, got %s %s' % (source, mask_option, key))
        return None
    return np.eye(stylizer.styles, dtype=np.float32)[style_names.index_of(
        key, stylizer.style_names, stylizer.styles, source, mask_option)]
