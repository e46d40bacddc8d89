"""The service's work: the models, the queue, the memory budget and the deadline; decoding, stylizing and encoding
one request's image in a worker thread."""
import asyncio
import collections
import dataclasses
import hashlib
import io
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image

from images import encode_image, load_image, too_large_for
from inference import arbitrary, color, masks, styling
from inference.stylizer import DEFAULT_MAX_PIXELS
from inference.tiling import Cancelled
from utils import UsageError, log


FORMATS = {'png': 'PNG', 'jpeg': 'JPEG', 'jpg': 'JPEG', 'webp': 'WEBP'}

MEDIA_TYPES = {'PNG': 'image/png', 'JPEG': 'image/jpeg', 'WEBP': 'image/webp'}


# What a request's stylizing gives: the image file's bytes and media type, its size, the milliseconds it took, and
# for a style image sent to an arbitrary-style network the token to send instead of it next time (else None).
Stylized = collections.namedtuple('Stylized', 'data media_type width height ms style_token')


class HTTPError(Exception):
    """An error answered as JSON {"error": message} with this status."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


@dataclasses.dataclass(frozen=True)


class Limits:
    """What one request and all of them together may take; see parse_args for each."""
    max_request_bytes: int = 20 * 1024 * 1024
    max_image_pixels: int = 25000000
    memory_pixels: int = DEFAULT_MAX_PIXELS
    workers: int = 2
    queue: int = 16
    timeout: float = 120.0
    body_timeout: float = 60.0


class PixelBudget:
    """Lets inference runs start only while the pixels in flight stay within a budget (memory)."""

    def __init__(self, budget):
        self.budget, self.in_use = budget, 0
        self.condition = threading.Condition()

    def run(self, pixels, work, deadline):
        """work() once `pixels` fit the budget; Cancelled if they do not before `deadline` (time.monotonic)."""
        pixels = min(pixels, self.budget)  # larger images are tiled within the Stylizer's own budget
        with self.condition:
            if not self.condition.wait_for(lambda: self.in_use + pixels <= self.budget,
                                           max(deadline - time.monotonic(), 0)):
                raise Cancelled('the deadline passed while waiting for memory')
            self.in_use += pixels
        try:
            return work()
        finally:
            with self.condition:
                self.in_use -= pixels
                self.condition.notify_all()


def sniff_format(data):
    """'JPEG', 'PNG' or 'WEBP' from a file's first bytes, or None: only these formats reach a decoder."""
    if data.startswith(b'\xff\xd8\xff'):
        return 'JPEG'
    if data.startswith(b'\x89PNG\r\n\x1a\n'):
        return 'PNG'
    if data[:4] == b'RIFF' and data[8:12] == b'WEBP':
        return 'WEBP'
    return None


class EmbeddingCache:
    """The style embeddings of recently used style images, by model and the image file's SHA-256: at most
    `entries` of them (each 100 float32 values, so 256 take about 100 KB with their keys), the least recently used
    dropped first.

    Each style image sent gets a token, random, for its sender to send instead of the image next time (the page's
    live camera does, frame after frame). A token names only a style its holder sent: a client cannot learn which
    styles others use, as it could by sending a content hash.
    """

    def __init__(self, entries=256):
        self.entries, self.embeddings = entries, collections.OrderedDict()
        self.tokens = collections.OrderedDict()  # token -> the key of its embedding; at most 4 x entries
        self.lock = threading.Lock()

    def issue(self, key):
        """A new token for the embedding at `key`."""
        token = secrets.token_hex(16)
        with self.lock:
            self.tokens[token] = key
            while len(self.tokens) > 4 * self.entries:
                self.tokens.popitem(last=False)
        return token

    def by_token(self, token, model):
        """The embedding `token` was issued for, by the model `model` (its id).

        Raises:
          HTTPError: 400 for a token of another model; 410 for one unknown or whose embedding was dropped.
        """
        with self.lock:
            key = self.tokens.get(token)
            if key is not None and key[0] == model and key in self.embeddings:
                self.tokens.move_to_end(token)
                self.embeddings.move_to_end(key)
                return self.embeddings[key]
        if key is not None and key[0] != model:
            raise HTTPError(400, 'this style_token was issued by another model: send it there, or send the style '
                                 'image')
        raise HTTPError(410, 'style_token is unknown or expired (the service keeps the %d styles used last): send the '
                             'style image again' % self.entries)

    def get(self, key, compute):
        """The embedding for `key`, from the cache or compute() (outside the lock: two requests for a new style may
        both compute it, which is cheaper than making one wait for the other)."""
        with self.lock:
            if key in self.embeddings:
                self.embeddings.move_to_end(key)
                return self.embeddings[key]
        embedding = compute()
        with self.lock:
            self.embeddings[key] = embedding
            while len(self.embeddings) > self.entries:
                self.embeddings.popitem(last=False)
        return embedding


class Service:
    """The models and the limits that keep the service alive under load."""

    def __init__(self, models, limits):
        self.models, self.limits = models, limits
        self.embeddings = EmbeddingCache()
        self.executor = ThreadPoolExecutor(max_workers=limits.workers)
        self.budget = PixelBudget(limits.memory_pixels)
        self.lock = threading.Lock()
        self.pending = 0  # requests admitted and not finished: reading their body, waiting or stylizing

    def model(self, name):
        if name not in self.models:
            raise HTTPError(404, 'unknown model %r (available: %s)' % (name[:100], ', '.join(sorted(self.models))))
        return self.models[name]

    def admit(self):
        with self.lock:
            if self.pending >= self.limits.queue:
                raise HTTPError(429, 'the service is busy (%d requests in progress); retry shortly' % self.pending)
            self.pending += 1

    def release(self, future=None):
        with self.lock:
            self.pending -= 1
        if future is not None and isinstance(future.exception(), Cancelled):
            log.info('stopped a request past its %g s deadline (%s)', self.limits.timeout, future.exception())

    async def stylize(self, name, read_request):
        """Check the model, admit the request, read it (read_request() is awaited for (image bytes, options), so
        that no body is read before the first two), then decode, stylize and encode its image.

        Returns:
          Stylized.
        """
        stylizer = self.model(name)
        self.admit()
        try:
            data, options = await read_request()
            style = _style_of(stylizer, name, options)
        except BaseException:
            self.release()
            raise
        start = time.monotonic()
        deadline = start + self.limits.timeout
        future = self.executor.submit(self._work, stylizer, data, options, style, deadline)
        future.add_done_callback(self.release)
        try:
            body, fmt, width, height, token = await asyncio.wait_for(asyncio.wrap_future(future),
                                                                     self.limits.timeout)
        except (asyncio.TimeoutError, Cancelled):
            raise HTTPError(504, 'stylizing took longer than the %g s limit; send a smaller image or use max_size'
                            % self.limits.timeout) from None
        return Stylized(body, MEDIA_TYPES[fmt], width, height, (time.monotonic() - start) * 1000, token)

    def _work(self, stylizer, data, options, style, deadline):
        """In a worker thread: decode, stylize (in `style`, for a model of several styles) and encode; stops
        (Cancelled) once the deadline has passed. Returns (bytes, format, width, height, style token or None)."""
        def too_late():
            return time.monotonic() > deadline
        rgb, alpha, input_format = self._decode(data)
        rgb, alpha = _limit_size(rgb, alpha, options['max_size'])
        fmt = options['format'] or (input_format if input_format in MEDIA_TYPES else 'PNG')
        reason = too_large_for(fmt, *rgb.shape[:2])
        if reason:
            raise HTTPError(400, '%s; ask for format=png, or a smaller max_size' % reason)
        pixels = rgb.shape[0] * rgb.shape[1]
        if not stylizer.can_tile and pixels > stylizer.max_pixels:
            raise HTTPError(413, 'this model is a .tflite, which stylizes at most %d pixels at once (tiling needs the '
                                 'checkpoint); send a smaller image or use max_size' % stylizer.max_pixels)
        if too_late():
            raise Cancelled('the deadline passed before the work started')
        token = None
        if stylizer.arbitrary is not None:
            style[None], token = self._embedding(stylizer, options, rgb)
        style, photo_share = self._by_region(stylizer, options['masks'], style, rgb)
        stylized = self.budget.run(pixels, lambda: stylizer(rgb, progress=False, should_stop=too_late, style=style),
                                   deadline)
        strength = options['strength'] if photo_share is None else options['strength'] * (1 - photo_share)
        result = color.finish(stylized, rgb, options['preserve_colors'], strength)
        return encode_image(result, fmt, alpha, options['quality']), fmt, result.shape[1], result.shape[0], token

    def _by_region(self, stylizer, given, styles, rgb):
        """(style, the photo's share per pixel or None) of a request's masks (name, bytes) for the photo `rgb`, whose
        styles by name are `styles` (None: the options' style)."""
        if not given:
            return styles[None], None
        height, width = rgb.shape[:2]
        named = [masks.Mask(name, 'mask' + (':' + name if name else '')) for name, _ in given]
        grey = []
        try:
            for mask, (_, data) in zip(named, given):
                pixels, alpha, _ = self._decode(data, mask.path)
                masks.check_size(mask.path, pixels.shape[:2], (height, width), 'the photo')
                grey.append(masks.grey_of(pixels, alpha, height, width))
            found = masks.regions(named, grey)
        except UsageError as error:
            raise HTTPError(400, str(error)) from None
        return styling.by_region(stylizer, found, [styles[key] for key in found.keys], lambda: _predict(
            stylizer, rgb, "the photo (its own style, for the photo's regions)"))

    def _embedding(self, stylizer, options, rgb):
        """For an arbitrary-style network: (the embedding of the style image sent, cached by its bytes, or of the
        style_token sent instead, blended with the photo's own by style_strength; the style's token)."""
        token, data = options['style_token'], options['style_image']
        if token:
            embedding = self.embeddings.by_token(token, id(stylizer))
        else:
            key = (id(stylizer), hashlib.sha256(data).digest())
            embedding = self.embeddings.get(key, lambda: _predict(stylizer, self._decode(data, 'the style image')[0],
                                                                  'the style image'))
            token = self.embeddings.issue(key)
        return arbitrary.with_strength(embedding, options['style_strength'], lambda: _predict(
            stylizer, rgb, 'the photo (its own style, which style_strength below 1 blends in)')), token

    def _decode(self, data, what='the request body'):
        """(rgb, alpha, format) of a JPEG, PNG or WebP file; other formats never reach a decoder."""
        if not data:
            raise HTTPError(400, '%s is empty; send a JPEG, PNG or WebP image' % what)
        fmt = sniff_format(data)
        if fmt is None:
            raise HTTPError(415, '%s is not a JPEG, PNG or WebP image (the formats this service accepts)' % what)
        try:
            rgb, alpha = load_image(io.BytesIO(data), what, max_pixels=self.limits.max_image_pixels,
                                    formats=(fmt,))
        except UsageError as error:
            raise HTTPError(413 if 'too large' in str(error) else 400, str(error)) from None
        return rgb, alpha, fmt


def _predict(stylizer, pixels, what):
    """An arbitrary-style network's embedding of `pixels`; HTTPError 400 for an image it cannot take."""
    try:
        return stylizer.embed(pixels, what=what)
    except UsageError as error:  # too small, too elongated
        raise HTTPError(400, str(error)) from None


def _style_of(stylizer, name, options):
    """The styles the request asks of the model, by mask name (None: the style of the options, a name or an index,
    or a mix; for an arbitrary-style network, left out: its embedding is predicted in the worker); HTTPError 400 if
    they do not fit it."""
    keys = set(key for key, _ in options['masks'] if key != masks.PHOTO) or {None}
    if stylizer.arbitrary is not None:
        if (options['style_image'] is None) == (options['style_token'] is None):
            raise HTTPError(400, "model %s is Magenta's arbitrary-style network: send the style %s, as the file field "
                                 '"style_image" of a multipart body or "style_image" (base64) in JSON, or the '
                                 'style_token of an earlier answer' % (name, 'once' if options['style_token'] else
                                                                       'too'))
        if options['style'] is not None or options['mix'] is not None or options['stroke'] is not None:
            raise HTTPError(400, 'model %s takes its style from style_image: style and mix apply to models of several '
                                 'styles, stroke to networks trained with style_scales' % name)
        if keys != {None}:
            raise HTTPError(400, 'model %s takes one style image: send its mask as "mask" (and the photo\'s as '
                                 '"mask:photo"), not "mask:%s"' % (name, sorted(key for key in keys if key)[0]))
        return {}
    if options['style_image'] is not None or options['style_token'] is not None or options['style_strength'] != 1:
        raise HTTPError(400, 'model %s is trained on its own style%s: style_image, style_token and style_strength '
                             "apply to Magenta's arbitrary-style network" % (name, 's' if stylizer.styles > 1 else ''))
    try:
        masks.check_masks([masks.Mask(key, 'mask') for key, _ in options['masks']],
                          (options['style'], options['mix'], options['stroke']), ('style', 'mix', 'stroke'))
        return {key: styling.trained_style(stylizer, key, (options['style'], options['mix'], options['stroke']),
                                           ('style', 'mix', 'stroke'), 'mask', 'model %s' % name) for key in keys}
    except UsageError as error:
        message = str(error).replace('--style and --style_mix', 'style and mix').replace('--mask', 'mask')
        raise HTTPError(400, message) from None


def _limit_size(rgb, alpha, max_size):
    """Shrink an image (and its alpha) so that its long side is at most max_size."""
    height, width = rgb.shape[:2]
    if not max_size or max(height, width) <= max_size:
        return rgb, alpha
    scale = max_size / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    rgb = np.asarray(Image.fromarray(rgb).resize(size, Image.LANCZOS))
    return rgb, None if alpha is None else np.asarray(Image.fromarray(alpha).resize(size, Image.LANCZOS))
