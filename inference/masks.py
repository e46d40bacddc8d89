"""Styles by region: grey images that say which style goes where in a photo, and the per-pixel shares they give.

A mask is NAME=PATH (eval.py's and batch.py's --mask; the service's `mask` field). NAME is a style of the model,
by name or index as --style takes it; one of the style images, by file name without its extension or by index, for
Magenta's network; or `photo`, which keeps the photo. Without a name, a mask is for the style the other options give
(the model's one style, --style, or the style images' mix). PATH is a grey image: white is the style in full, grey
a part, black or transparent none. It is resized to the photo's size, whose aspect ratio it must have. PATH may
also be a folder holding a mask for each photo, under the photo's name (any image extension).

Per pixel, each style's mask is its share; where the styles' masks add up to less than 1, the rest keeps the photo
(or the `photo` mask gives the photo's share); where they add up to more, all are scaled to a sum of 1. With
`photo` masks alone, the rest is styled as without a mask. docs/MASKS.md has the whole story.
"""
import argparse
import os
import re
import typing

import numpy as np
from PIL import Image

from images import IMAGE_FORMATS, image_size, load_image
from utils import UsageError, shorten

PHOTO = 'photo'  # the name of the region that keeps the photo
MAX_MASK_PIXELS = 50000000  # a mask file's pixels, refused from its header above that: 150 MB decoded as RGB
_NAME = re.compile(r'^[\w.-]+$')
_ASPECT_TOLERANCE = 0.01  # of a side, beyond a pixel's rounding
_LUMA = np.array([0.299, 0.587, 0.114], np.float32) / 255.0


class Mask(typing.NamedTuple):
    """One --mask: the name of its style (None: the style the other options give; PHOTO: keep the photo) and the
    path of its grey image, or of a folder of them by photo."""
    name: typing.Optional[str]
    path: str


def is_name(text):
    """True for text that can name a mask's style: letters, digits, '_', '-' and '.'."""
    return bool(_NAME.match(text))


def parse_mask(value):
    """--mask's argparse type: NAME=PATH, or PATH alone (a path whose file name holds '=' is given as ./NAME=...)."""
    name, separator, path = value.partition('=')
    if not separator or not is_name(name):
        return Mask(None, value)
    if not path.strip():
        raise argparse.ArgumentTypeError('%s names no mask image: give NAME=PATH' % shorten(value))
    return Mask(name, path)


def check_masks(masks, asked=(), options=('--style', '--style_mix', '--stroke')):
    """UsageError for masks that contradict each other (one style, or the photo, given two masks) or the options of
    the style (asked: the values of `options`, None where not given), which give the style of a mask without a
    name."""
    seen = set()
    for mask in masks:
        if mask.name in seen:
            raise UsageError('--mask %s is given twice; give each style one mask (combine them into one image)'
                             % (mask.name or 'without a name'))
        seen.add(mask.name)
    given = [option for option, value in zip(options, asked) if value is not None]
    if given and styled(masks) and None not in seen:
        raise UsageError('%s gives the style of a mask without a name; every --mask here names its style: leave it '
                         'out' % given[0])


def styled(masks):
    """True when some mask gives a style (not only the photo's regions)."""
    return any(mask.name != PHOTO for mask in masks)


def mask_file(mask, photo_name, is_folder=os.path.isdir, exists=os.path.isfile, join=os.path.join):
    """The mask image for a photo: the mask's own path, or in a folder of masks the one under the photo's name
    (its relative name, with any image extension; its own first); None when the folder has none. is_folder, exists
    and join: the file system's (batch.py passes Beam's)."""
    if not is_folder(mask.path):
        return mask.path
    stem, own = os.path.splitext(photo_name)
    for extension in [own] + [extension for extension in IMAGE_FORMATS if extension != own.lower()]:
        for candidate in (join(mask.path, stem + extension), join(mask.path, stem + extension.upper())):
            if exists(candidate):
                return candidate
    return None


def check_size(path, mask_size, photo_size, photo_name):
    """UsageError for a mask whose pixels are too many, or whose aspect ratio is not the photo's."""
    (mask_height, mask_width), (height, width) = mask_size, photo_size
    if mask_height * mask_width > MAX_MASK_PIXELS:
        raise UsageError('mask %s is too large: %dx%d is over the limit of %d pixels (a mask needs no more pixels '
                         'than its photo)' % (path, mask_width, mask_height, MAX_MASK_PIXELS))
    expected = mask_width * height / width
    if abs(mask_height - expected) > max(1.0, _ASPECT_TOLERANCE * mask_height):
        raise UsageError('mask %s is %dx%d, not the shape of %s (%dx%d): give a mask of the photo\'s aspect ratio'
                         % (path, mask_width, mask_height, photo_name, width, height))


def check_files(masks, photos):
    """Every mask file each photo needs exists, is an image (from its header) of the photo's aspect ratio and not
    too large: checked for all photos before any work, the problems reported together.

    Args:
      masks: Mask values; photos: (photo's path or name for messages, relative name, (height, width)).

    Raises:
      UsageError: naming the first few problems and how many there are.
    """
    problems = []
    for mask in masks:
        for photo, name, size in photos:
            path = mask_file(mask, name)
            try:
                if path is None:
                    raise UsageError('no mask for %s in %s (give it the photo\'s name, e.g. %s)'
                                     % (photo, mask.path, os.path.join(mask.path, os.path.splitext(name)[0] + '.png')))
                check_size(path, image_size(path, 'mask'), size, photo)
            except UsageError as error:
                problems.append(str(error))
    if problems:
        more = ' (and %d more)' % (len(problems) - 3) if len(problems) > 3 else ''
        raise UsageError('; '.join(problems[:3]) + more)


def load_mask(source, height, width, photo_name='the photo', what='mask', max_pixels=MAX_MASK_PIXELS,
              photo_size=None, name=None):
    """A mask image (a path, or a binary file object called `name`, by default `what`, in messages) as float32
    (height, width) in [0, 1]: its luminance times its alpha, resized bilinearly to that size.

    Raises:
      UsageError: unreadable, too large (over max_pixels), or not of the aspect ratio of the photo, whose size is
        photo_size (by default (height, width)).
    """
    name = source if isinstance(source, str) else name or what
    rgb, alpha = load_image(source, what, max_pixels=max_pixels, name=name)
    check_size(name, rgb.shape[:2], photo_size or (height, width), photo_name)
    return grey_of(rgb, alpha, height, width)


def grey_of(rgb, alpha, height, width):
    """A mask's uint8 RGB (and alpha, or None) as float32 (height, width) in [0, 1]: luminance times alpha, resized
    bilinearly."""
    grey = rgb @ _LUMA
    if alpha is not None:
        grey *= alpha / np.float32(255)
    if grey.shape != (height, width):
        grey = np.asarray(Image.fromarray(grey, 'F').resize((width, height), Image.BILINEAR))
    return np.clip(grey, 0, 1)


class Regions(typing.NamedTuple):
    """What the masks ask of one photo, per pixel.

    Attributes:
      keys: the styles, in the order of shares' last axis: a mask's name, or None for the style the other options
        give (an unnamed mask, or the rest beside `photo` masks alone).
      shares: float32 (H, W, K): each style's share.
      photo: float32 (H, W): the photo's share; with shares, 1 at every pixel.
    """
    keys: tuple
    shares: np.ndarray
    photo: np.ndarray


def regions(masks, grey):
    """The Regions of masks whose images, at the photo's size, are `grey` (one float32 (H, W) in [0, 1] each).

    Raises:
      UsageError: a mask that covers no pixel, or masks that leave none to style.
    """
    for mask, values in zip(masks, grey):
        if not values.any():
            raise UsageError('mask %s covers no pixel of the photo (it is black or transparent everywhere); white '
                             'marks where its style goes' % mask.path)
    photo = next((values for mask, values in zip(masks, grey) if mask.name == PHOTO), None)
    styles = [(mask.name, values) for mask, values in zip(masks, grey) if mask.name != PHOTO]
    if not styles:
        styles = [(None, 1 - photo)]
    shares = np.stack([values for _, values in styles], -1)
    if photo is None:
        photo = np.maximum(1 - shares.sum(-1), 0)
    total = shares.sum(-1) + photo
    photo = np.where(total > 0, photo, 1)  # a pixel that a photo mask leaves black and no style covers
    total = np.where(total > 0, total, 1)
    shares, photo = shares / total[..., None], photo / total
    if not shares.any():
        raise UsageError('the masks leave no pixel to style: the photo mask covers the whole photo')
    return Regions(tuple(name for name, _ in styles), shares.astype(np.float32), photo.astype(np.float32))


def photo_regions(masks, photo_name, height, width, photo_size=None, given=None):
    """The Regions of masks (Mask values) for a photo of that size and relative name (or of photo_size, (height,
    width), resized to that size); given: {a mask's index: its grey map at that size} for masks read elsewhere (a
    mask video's frame)."""
    given = given or {}
    return regions(masks, [given[index] if index in given else load_mask(
        mask_file(mask, photo_name), height, width, photo_name, photo_size=photo_size)
        for index, mask in enumerate(masks)])


def network_shares(shares):
    """The styles' shares among themselves, for the network (the photo's share is a blend after it): scaled to a sum
    of 1 per pixel; pixels that keep the photo whole take the styles' mean shares over the photo, so that the
    network's view of them changes smoothly."""
    total = shares.sum(-1, keepdims=True)
    mean = shares.sum((0, 1)) / shares.sum()
    return np.where(total > 0, shares / np.where(total > 0, total, 1), mean).astype(np.float32)
