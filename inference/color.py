"""Colour preservation by luminance transfer: keep the photo's chroma, take the stylized image's luminance.

Gatys et al., "Preserving Color in Neural Artistic Style Transfer" (2016). The colour space is YCbCr as in JPEG
(ITU-R BT.601, full range), computed in float so that nothing is lost before the final rounding.
"""
import numpy as np

_RGB_TO_YCBCR = np.array([[0.299, 0.587, 0.114],
                          [-0.168736, -0.331264, 0.5],
                          [0.5, -0.418688, -0.081312]])
_CHROMA_OFFSET = np.array([0.0, 128.0, 128.0])


def rgb_to_ycbcr(rgb):
    """float (..., 3) RGB in 0..255 -> YCbCr in 0..255."""
    return np.asarray(rgb, np.float64) @ _RGB_TO_YCBCR.T + _CHROMA_OFFSET


def ycbcr_to_rgb(ycbcr):
    """The inverse of rgb_to_ycbcr (float; not clipped)."""
    return (np.asarray(ycbcr, np.float64) - _CHROMA_OFFSET) @ np.linalg.inv(_RGB_TO_YCBCR).T


def transfer_luminance(stylized, content):
    """The stylized image's luminance with the content's chroma, as uint8 RGB.

    Args:
      stylized, content: RGB arrays of the same height and width, 0..255.
    """
    ycbcr = rgb_to_ycbcr(content)
    ycbcr[..., 0] = rgb_to_ycbcr(stylized)[..., 0]
    return np.clip(np.round(ycbcr_to_rgb(ycbcr)), 0, 255).astype(np.uint8)


_BAND_ROWS = 256  # rows finished at a time: the float64 colour maths of a whole 25-megapixel image takes 2 GB


def finish(stylized, original, preserve_colors=False, strength=1.0):
    """A stylized image with the photo's colours kept (luminance transfer) and blended with the photo.

    Each pixel is finished on its own, so the work goes in bands of rows: memory beyond the output stays that of a
    band, whatever the image's size.

    Args:
      stylized, original: uint8 RGB arrays of the same size.
      preserve_colors: keep the original's chroma.
      strength: 1 is fully stylized, 0 the original; a number, or float (H, W) per pixel.
    """
    if not preserve_colors and np.all(strength >= 1):
        return stylized
    finished = np.empty_like(stylized)
    for top in range(0, stylized.shape[0], _BAND_ROWS):
        band = slice(top, top + _BAND_ROWS)
        finished[band] = _finish_band(stylized[band], original[band], preserve_colors,
                                      strength[band, :, None] if np.ndim(strength) else strength)
    return finished


def _finish_band(stylized, original, preserve_colors, strength):
    if preserve_colors:
        stylized = transfer_luminance(stylized, original)
    if np.any(strength < 1):
        blend = strength * stylized.astype(np.float32) + (1 - strength) * original
        stylized = np.clip(np.round(blend), 0, 255).astype(np.uint8)
    return stylized
