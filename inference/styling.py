"""What a stylizing run asks of its model, as one function of a photo: the style (a trained style by name, a mix of
trained styles, or style images' embeddings, each predicted once, blended with the photo's own). eval.py and
batch.py build it from the same options, so that their pixels are the same."""
from images import load_image
from inference import arbitrary
from inference.stylizer import style_choice
from utils import UsageError


def load_style_image(path, side):
    """A style image's pixels, checked for what its style can be predicted from."""
    pixels = load_image(path, 'style image', max_pixels=arbitrary.STYLE_MAX_PIXELS)[0]
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
