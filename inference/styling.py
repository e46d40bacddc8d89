"""What a stylizing run asks of its model, as one function of a photo: the style (a trained style by name, a mix of
trained styles, or style images' embeddings, each predicted once, blended with the photo's own). eval.py and
batch.py build it from the same options, so that their pixels are the same."""
import dataclasses

from images import load_image
from inference import arbitrary, color
from inference.stylizer import DEFAULT_MAX_PIXELS, Stylizer, style_choice
from nets.arbitrary import STYLE_SIZE
from utils import UsageError


@dataclasses.dataclass(frozen=True)
class Recipe:
    """What a run asks of its model, in plain values (batch.py ships it to its workers): the model, its style (a
    trained one by name, a mix, or style images' paths for Magenta's network, blended with the photo's own by
    style_strength at style_size), then colour (preserve_colors) and strength."""
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


def open_model(recipe, style_pixels, model_file=None):
    """(Stylizer, style_for) of a Recipe: the model loaded and the style images' embeddings predicted, once.

    Args:
      style_pixels: the recipe's style images' pixels (load_style_image's), in its order.
      model_file: where the model is on this machine, if not at recipe.model_file (a worker's copy).
    """
    stylizer = Stylizer(model_file or recipe.model_file, recipe.max_pixels, recipe.precision)
    return stylizer, style_of(stylizer, style_pixels, recipe.choice, recipe.mix, recipe.style_strength,
                              recipe.style_size)


def finish(recipe, stylized, original):
    """The model's result with the recipe's colour and strength applied."""
    return color.finish(stylized, original, recipe.preserve_colors, recipe.strength)


def stylize(recipe, stylizer, style_for, pixels, progress=True):
    """A photo stylized as the recipe asks: the result eval.py writes, and batch.py."""
    return finish(recipe, stylizer(pixels, style=style_for(pixels), progress=progress), pixels)


def load_style_image(path, side, source=None):
    """A style image's pixels, checked for what its style can be predicted from; read from `source` (a binary file
    object) where given, else from `path`."""
    pixels = load_image(source or path, 'style image', max_pixels=arbitrary.STYLE_MAX_PIXELS, name=path)[0]
    arbitrary.check_style_shape(pixels.shape[0], pixels.shape[1], side, 'style image %s' % path)
    return pixels


def style_of(stylizer, style_images, choice, mix, strength, side):
    """What the model is asked for, as a function of the photo: style_for(pixels) -> the style argument of
    Stylizer (see style_choice); for an arbitrary-style network, the style images' embedding (each predicted once,
    mixed in the shares `mix`) blended with the photo's own by `strength`.

    Raises:
      UsageError: style images for another model, none for an arbitrary-style one, a choice the model cannot take.
    """
    if stylizer.arbitrary is None:
        if style_images:
            raise UsageError("--style_image needs a checkpoint of Magenta's arbitrary-style network; %s is a network "
                             "trained on its own style%s" % (stylizer.source, 's' if stylizer.styles > 1 else ''))
        style = style_choice(stylizer.styles, choice, mix, stylizer.source, names=stylizer.style_names)
        return lambda pixels: style
    if not style_images:
        raise UsageError("%s is Magenta's arbitrary-style network: give the style with --style_image PATH"
                         % stylizer.source)
    embedding = arbitrary.mixed_embedding([stylizer.embed(pixels, side) for pixels in style_images], mix)
    return lambda pixels: arbitrary.with_strength(embedding, strength, lambda: stylizer.embed(
        pixels, side, "the photo (its own style, which --style_strength below 1 blends in)"))
