"""Image files: reading any common format as 8-bit RGB (and alpha) within pixel budgets, their sizes from the
headers, and encoding results within each format's limits."""
import io
import os
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from utils import UsageError, require_file


IMAGE_FORMATS = {'.jpg': 'JPEG', '.jpeg': 'JPEG', '.png': 'PNG', '.bmp': 'BMP', '.webp': 'WEBP',
                 '.tif': 'TIFF', '.tiff': 'TIFF'}
_ALPHA_FORMATS = ('PNG', 'WEBP', 'TIFF')
_IMAGE_ERRORS = (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError)
# Pillow warns of a "decompression bomb DOS attack" above 89 MP and refuses above twice that. The refusal stays (a
# one-line error, _unreadable); the warning goes: every command bounds its memory itself (max_pixels checked from the
# header, or tiling), so a 100 MP panorama that eval.py stylizes in tiles is no attack.
warnings.filterwarnings('ignore', category=Image.DecompressionBombWarning)


def _to_8_bit(image):
    """Grayscale images of more than 8 bits (16-bit PNG, 32-bit TIFF) as 8-bit 'L', scaled, not clipped."""
    values = np.asarray(image, np.float64)
    if values.max(initial=0) > 255:
        values = values / 257.0
    return Image.fromarray(np.clip(np.round(values), 0, 255).astype(np.uint8), 'L')


def load_image(source, what='image', min_side=None, max_pixels=None, formats=None, name=None):
    """Read an image (a file path, or a binary file object) as RGB and, where it has one, its alpha channel.

    EXIF orientation is applied; grayscale, palette, 16-bit, CMYK and other modes become 8-bit RGB. With
    min_side, a JPEG much larger than that is decoded at 1/2, 1/4 or 1/8 scale, and any other image is shrunk by
    a whole factor once decoded, both sides staying >= min_side. With max_pixels, an image that would decode to
    more pixels is refused from its header, before anything is decoded. With formats (Pillow's names, e.g.
    ('JPEG', 'PNG')), no other decoder is tried. name: what a message calls a file object (its path elsewhere).

    Returns:
      (rgb, alpha): uint8 (H, W, 3) and uint8 (H, W) or None.

    Raises:
      UsageError: the file is missing, is not an image that Pillow can decode, or is too large.
    """
    name = source if isinstance(source, str) else name or what
    if isinstance(source, str):
        require_file(source, what, 'check the path')
    try:
        with Image.open(source, formats=formats) as image:
            if min_side:
                image.draft('RGB', (min_side, min_side))  # a JPEG's size is now the reduced one it decodes to
            if max_pixels and image.width * image.height > max_pixels:
                raise UsageError('%s is too large: %dx%d is over the limit of %d pixels'
                                 % (what if name == what else '%s %s' % (what, name), image.width, image.height,
                                    max_pixels))
            factor = min(image.size) // min_side if min_side else 1
            image = ImageOps.exif_transpose(image)
            if image.mode in ('I', 'I;16', 'I;16B', 'I;16L', 'F'):
                image = _to_8_bit(image)
            alpha = None
            if 'A' in image.getbands() or 'transparency' in image.info:
                image = image.convert('RGBA')
                alpha = np.asarray(_reduced(image, factor))[..., 3].copy()
            return np.asarray(_reduced(image.convert('RGB'), factor)), alpha
    except _IMAGE_ERRORS as error:
        raise _unreadable(what, name, error, max_pixels, None if isinstance(source, str) else repr(source)) from None


def _reduced(image, factor):
    """The image shrunk by a whole factor (each pixel the mean of a factor x factor box)."""
    return image.reduce(factor) if factor > 1 else image


_TRANSPOSING_ORIENTATIONS = (5, 6, 7, 8)  # EXIF orientations that swap width and height


def image_size(path, what='image'):
    """(height, width) of an image file as load_image will return it (EXIF orientation applied), read from its
    header without decoding the pixels.

    Raises:
      UsageError: the file is missing or not an image that Pillow can read.
    """
    require_file(path, what, 'check the path')
    try:
        with Image.open(path) as image:
            width, height = image.size
            if image.getexif().get(0x0112) in _TRANSPOSING_ORIENTATIONS:
                width, height = height, width
    except _IMAGE_ERRORS as error:
        raise _unreadable(what, path, error) from None
    return height, width


def still_image_format(path):
    """Pillow's name of the format (e.g. 'JPEG') of a file that is one still image; None for anything else: a
    video, an animation of several frames, or not an image Pillow knows."""
    try:
        with Image.open(path) as image:
            return image.format if getattr(image, 'n_frames', 1) == 1 else None
    except _IMAGE_ERRORS:
        return None


def _unreadable(what, name, error, max_pixels=None, file_object=None):
    """The UsageError for an image Pillow would not open or decode: too large for its guard against decompression
    bombs (twice Image.MAX_IMAGE_PIXELS, far above any max_pixels we use), or not a readable image. file_object:
    the repr of the file object read, which Pillow's message names, to be left out of ours."""
    if isinstance(error, Image.DecompressionBombError):
        return UsageError('%s is too large: over the limit of %d pixels (shrink it first)' % (
            what if name == what else '%s %s' % (what, name), max_pixels or 2 * Image.MAX_IMAGE_PIXELS))
    reason = str(error).replace(' ' + file_object, '') if file_object else error
    return UsageError('%s is not a readable image: %s (%s)' % (what, name, reason))


def read_image(path, what='image'):
    """An image file as uint8 RGB (H, W, 3); see load_image."""
    return load_image(path, what)[0]


def output_format(path):
    """The Pillow format for an output path, chosen by its extension."""
    ext = os.path.splitext(path)[1].lower()
    if ext not in IMAGE_FORMATS:
        raise UsageError('cannot write %r: unknown image extension %r (use one of %s)'
                         % (path, ext, ', '.join(sorted(IMAGE_FORMATS))))
    return IMAGE_FORMATS[ext]


ENCODER_MAX_SIDE = {'JPEG': 65500, 'WEBP': 16383}  # libjpeg's and libwebp's largest side; PNG, BMP, TIFF: far more


def too_large_for(fmt, height, width):
    """Why a height x width image cannot be encoded as `fmt` (Pillow's name), or None if it can."""
    limit = ENCODER_MAX_SIDE.get(fmt)
    if limit and max(height, width) > limit:
        return 'a %dx%d result is larger than %s can hold (%d pixels a side)' % (width, height, fmt, limit)
    return None


def check_encodable(path, height, width, option='--output'):
    """Raise UsageError, before any work, when a height x width image cannot be written in the format that
    `path`'s extension names (unknown extension, or a side over the encoder's limit)."""
    reason = too_large_for(output_format(path), height, width)
    if reason:
        raise UsageError('%s %s: %s; write it as .png or .tif, or make it smaller' % (option, path, reason))


def _pil_image(pixels, alpha, fmt):
    image = Image.fromarray(np.asarray(pixels, dtype=np.uint8))
    if alpha is not None and fmt in _ALPHA_FORMATS:
        image.putalpha(Image.fromarray(alpha))
    return image


def encode_image(pixels, fmt, alpha=None, quality=95):
    """uint8 RGB pixels (and alpha where the format has it) as the bytes of a JPEG, PNG, WEBP, BMP or TIFF file."""
    buffer = io.BytesIO()
    _pil_image(pixels, alpha, fmt).save(buffer, format=fmt, **({'quality': quality} if fmt in ('JPEG', 'WEBP') else {}))
    return buffer.getvalue()
