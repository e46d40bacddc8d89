"""Serve trained models over HTTP, with a page to try them.

  python serve.py --model candy=models/candy.pb --model wave=models/wave/ [--host 127.0.0.1] [--port 8000]
  python serve.py --demo          # the style models shipped in models/ (wave, ...), to try the service at once

Endpoints: POST /v1/stylize/{model} (image bytes in, raw or multipart; image bytes out), POST
/v1/stylize/{model}/base64 (JSON in and out), GET /v1/models, GET /healthz, and GET / (the page).
Each model is loaded once (checkpoint folder or prefix, frozen .pb, SavedModel, .tflite). Errors are JSON with a clear
message and a 4xx status (429 when the queue is full, 504 past the timeout, which also stops the work); the model,
the options, the declared length and the queue are checked before a body is read, slow clients are cut off
(--header_timeout, --body_timeout) and connections are capped (--max_connections).
"""
import argparse
import asyncio
import base64
import binascii
import dataclasses
import glob
import io
import logging
import os
import re
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image

from inference import color
from inference.stylizer import DEFAULT_MAX_PIXELS, Stylizer, style_choice
from inference.tiling import Cancelled
from utils import (MAX_STYLES, ArgumentParser, UsageError, add_precision_option, cli_main, encode_image, load_image,
                   log, setup_logging, shorten, too_large_for)

FORMATS = {'png': 'PNG', 'jpeg': 'JPEG', 'jpg': 'JPEG', 'webp': 'WEBP'}
MEDIA_TYPES = {'PNG': 'image/png', 'JPEG': 'image/jpeg', 'WEBP': 'image/webp'}
PAGE = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'docs', 'service.html')
SHIPPED_MODELS = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'models')  # see models/README.md
MODEL_NAME = re.compile(r'[A-Za-z0-9][A-Za-z0-9_.-]*')  # one path segment of /v1/stylize/{model}


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


class Service:
    """The models and the limits that keep the service alive under load."""

    def __init__(self, models, limits):
        self.models, self.limits = models, limits
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
          (bytes, media type, width, height, milliseconds).
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
            body, fmt, width, height = await asyncio.wait_for(asyncio.wrap_future(future), self.limits.timeout)
        except (asyncio.TimeoutError, Cancelled):
            raise HTTPError(504, 'stylizing took longer than the %g s limit; send a smaller image or use max_size'
                            % self.limits.timeout) from None
        return body, MEDIA_TYPES[fmt], width, height, (time.monotonic() - start) * 1000

    def _work(self, stylizer, data, options, style, deadline):
        """In a worker thread: decode, stylize (in `style`, for a model of several styles) and encode; stops
        (Cancelled) once the deadline has passed."""
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
        stylized = self.budget.run(pixels, lambda: stylizer(rgb, progress=False, should_stop=too_late, style=style),
                                   deadline)
        result = color.finish(stylized, rgb, options['preserve_colors'], options['strength'])
        return encode_image(result, fmt, alpha), fmt, result.shape[1], result.shape[0]

    def _decode(self, data):
        """(rgb, alpha, format) of a JPEG, PNG or WebP body; other formats never reach a decoder."""
        if not data:
            raise HTTPError(400, 'the request body is empty; send a JPEG, PNG or WebP image')
        fmt = sniff_format(data)
        if fmt is None:
            raise HTTPError(415, 'the request body is not a JPEG, PNG or WebP image (the formats this service '
                                 'accepts)')
        try:
            rgb, alpha = load_image(io.BytesIO(data), 'the request body', max_pixels=self.limits.max_image_pixels,
                                    formats=(fmt,))
        except UsageError as error:
            raise HTTPError(413 if 'too large' in str(error) else 400, str(error)) from None
        return rgb, alpha, fmt


def _style_of(stylizer, name, options):
    """The style weights that the options' style (an index) or mix ask of the model; HTTPError 400 if they do not
    fit it."""
    try:
        return style_choice(stylizer.styles, options['style'], options['mix'], 'model %s' % name, ('style', 'mix'))
    except UsageError as error:
        raise HTTPError(400, str(error)) from None


def _limit_size(rgb, alpha, max_size):
    """Shrink an image (and its alpha) so that its long side is at most max_size."""
    height, width = rgb.shape[:2]
    if not max_size or max(height, width) <= max_size:
        return rgb, alpha
    scale = max_size / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    rgb = np.asarray(Image.fromarray(rgb).resize(size, Image.LANCZOS))
    return rgb, None if alpha is None else np.asarray(Image.fromarray(alpha).resize(size, Image.LANCZOS))


def parse_options(values, accept=''):
    """max_size, strength, preserve_colors, format, style and mix from query parameters or JSON; HTTPError 400 if
    bad (whether style and mix fit the model is checked with the model: _style_of)."""
    def number(key, kind, default):
        raw = values.get(key, default)
        try:
            if isinstance(raw, bool) or (kind is int and isinstance(raw, float) and not raw.is_integer()):
                raise TypeError(raw)  # int() would take JSON's true as 1 and 1.7 as 1
            return kind(raw)
        except (TypeError, ValueError, OverflowError):  # OverflowError: int() of 1e400 or Infinity
            raise HTTPError(400, '%s must be a finite %s, got %s'
                            % (key, 'whole number' if kind is int else 'number', shorten(raw))) from None

    max_size = number('max_size', int, 0)
    strength = number('strength', float, 1.0)
    if max_size < 0:
        raise HTTPError(400, 'max_size must be positive, got %d' % max_size)
    if not 0 <= strength <= 1:
        raise HTTPError(400, 'strength must be between 0 and 1, got %g' % strength)
    preserve = str(values.get('preserve_colors', 'false')).lower()
    if preserve not in ('true', '1', 'yes', 'false', '0', 'no'):
        raise HTTPError(400, 'preserve_colors must be true or false, got %s' % shorten(preserve))
    fmt = values.get('format')
    if fmt is None:
        fmt = next((key for key, media in (('png', 'image/png'), ('jpeg', 'image/jpeg'), ('webp', 'image/webp'))
                    if media in accept), None)
    if fmt is not None and str(fmt).lower() not in FORMATS:
        raise HTTPError(400, 'format must be one of png, jpeg, webp; got %s' % shorten(fmt))
    return {'max_size': max_size, 'strength': strength, 'preserve_colors': preserve in ('true', '1', 'yes'),
            'format': FORMATS[str(fmt).lower()] if fmt else None,
            'style': number('style', int, None) if values.get('style') is not None else None,
            'mix': _mix(values.get('mix'))}


def _mix(raw):
    """A style mix given as "0.3,0.7" (query) or [0.3, 0.7] (JSON), as a list of numbers; None if not given."""
    if raw is None:
        return None
    items = raw.split(',') if isinstance(raw, str) else raw
    try:
        if not isinstance(items, list) or len(items) > MAX_STYLES or any(isinstance(x, bool) for x in items):
            raise TypeError(raw)
        return [float(item) for item in items]
    except (TypeError, ValueError, OverflowError):
        raise HTTPError(400, 'mix must be comma-separated numbers, one per style (at most %d), got %s'
                        % (MAX_STYLES, shorten(raw))) from None


def page_headers(html):
    """Security headers for the page: a Content-Security-Policy allowing only its own inline script and style (by
    their hashes) and requests to this server."""
    import hashlib

    def hashes(tag):
        return ' '.join("'sha256-%s'" % base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
                        for body in re.findall(r'<%s>(.*?)</%s>' % (tag, tag), html, re.S))
    policy = ("default-src 'none'; script-src %s; style-src %s; img-src blob: data:; connect-src 'self'; "
              "base-uri 'none'; form-action 'none'; frame-ancestors 'none'" % (hashes('script'), hashes('style')))
    return {'Content-Security-Policy': policy, 'X-Frame-Options': 'DENY'}


def with_headers(app, headers):
    """An ASGI app that adds `headers` to every response of `app`."""
    encoded = [(name.lower().encode(), value.encode()) for name, value in headers.items()]

    async def wrapped(scope, receive, send):
        async def send_with_headers(message):
            if message['type'] == 'http.response.start':
                message = {**message, 'headers': [*message.get('headers', []), *encoded]}
            await send(message)
        await app(scope, receive, send_with_headers)
    return wrapped


async def read_body(request, limits):
    """The request body, refused early when its declared length is over the limit (413), cut off when it grows
    over it, and given up on (408) when it does not arrive within limits.body_timeout."""
    from starlette.requests import ClientDisconnect
    declared = request.headers.get('content-length', '')
    if declared.isdigit() and int(declared) > limits.max_request_bytes:
        raise HTTPError(413, 'the request is %s bytes, over the limit of %d' % (declared, limits.max_request_bytes))

    async def receive_all():
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limits.max_request_bytes:
                raise HTTPError(413, 'the request is over the limit of %d bytes' % limits.max_request_bytes)
            chunks.append(chunk)
        return b''.join(chunks)
    try:
        return await asyncio.wait_for(receive_all(), limits.body_timeout)
    except asyncio.TimeoutError:
        raise HTTPError(408, 'the request body did not arrive within %g s' % limits.body_timeout) from None
    except ClientDisconnect:
        raise HTTPError(400, 'the client closed the connection') from None


async def image_from_multipart(request, body):
    """The file of a multipart body (the field named "image", else the first file)."""
    from starlette.datastructures import UploadFile
    from starlette.formparsers import MultiPartException, MultiPartParser

    async def replay():
        yield body
    try:
        form = await MultiPartParser(request.headers, replay()).parse()
    except MultiPartException as error:
        raise HTTPError(400, 'malformed multipart body (%s)' % error) from None
    files = [value for _, value in form.multi_items() if isinstance(value, UploadFile)]
    if not files:
        raise HTTPError(400, 'the multipart body has no file; send the image as a file field named "image"')
    chosen = next((f for key, f in form.multi_items() if key == 'image' and isinstance(f, UploadFile)), files[0])
    return await chosen.read()


MAX_JSON_FIELDS_BYTES = 64 * 1024  # the JSON around the image (its options are a few hundred bytes)
LONG_STRING_BYTES = 1024  # a JSON string this long is read in place, not parsed: the image's base64
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')


def base64_request(body):
    """(image bytes, options dict) of a JSON body {"image": "<base64>", ...options}, in memory about the body's
    size twice over: the long strings (the base64) are found in place and left out of the JSON that is parsed,
    which must then be under MAX_JSON_FIELDS_BYTES, so that no body of numbers or nesting is ever parsed whole;
    the image is decoded straight from the body's bytes. Run it off the event loop (a 20 MB body takes tens of ms).
    """
    spans = [match.span() for match in _JSON_STRING.finditer(body) if match.end() - match.start() >= LONG_STRING_BYTES]
    if len(body) - sum(end - start for start, end in spans) > MAX_JSON_FIELDS_BYTES:
        raise HTTPError(400, 'the JSON body holds more than %d bytes besides the image; send {"image": "<base64>", '
                             '...options}' % MAX_JSON_FIELDS_BYTES)
    pieces, last = [], 0
    for index, (start, end) in enumerate(spans):
        pieces += [body[last:start], b'"\\u0000%d"' % index]
        last = end
    payload = _parse_json(b''.join(pieces + [body[last:]]))
    image = payload.pop('image', None) if isinstance(payload, dict) else None
    if not isinstance(image, str):
        raise HTTPError(400, 'the JSON body needs "image": a base64 string of the image file')
    for key, value in payload.items():  # another long string: an option no one sends at that length
        if _placeholder(value) is not None:
            start, end = spans[_placeholder(value)]
            payload[key] = 'a string of %d bytes' % (end - start - 2)
    if _placeholder(image) is None:  # a short one, parsed with the rest
        encoded = image.encode('ascii', 'replace')
        return _base64_decode(encoded, 0, len(encoded)), payload
    return _base64_image(body, *spans[_placeholder(image)]), payload


def _placeholder(value):
    """The index of the long string that base64_request put in the place of `value`, or None."""
    is_one = isinstance(value, str) and value.startswith('\0') and value[1:].isdigit()
    return int(value[1:]) if is_one else None


def _parse_json(text):
    import json
    try:
        return json.loads(text)
    except RecursionError:
        raise HTTPError(400, 'the JSON body is nested too deeply; send {"image": "<base64>", ...options}') from None
    except (ValueError, UnicodeDecodeError):
        raise HTTPError(400, 'the body must be JSON: {"image": "<base64>", ...options}') from None


def _base64_image(body, start, end):
    """The bytes of the base64 JSON string at body[start:end] (quotes included), a data URL's prefix dropped."""
    if body.find(b'\\', start, end) != -1:  # escapes (a "\/" or line breaks): decode the string as JSON
        text = _parse_json(body[start:end]).encode('ascii', 'replace')
        start, end, body = 0, len(text), text
    else:
        start, end = start + 1, end - 1
    return _base64_decode(body, start, end)


def _base64_decode(data, start, end):
    """base64 data[start:end], after a data URL's prefix (up to a comma) if there is one, decoded in place
    (Python 3.10's b64decode copies the text first)."""
    start = max(start, data.rfind(b',', start, end) + 1)
    try:
        if sys.version_info >= (3, 11):
            return binascii.a2b_base64(memoryview(data)[start:end], strict_mode=True)
        return base64.b64decode(memoryview(data)[start:end], validate=True)
    except (binascii.Error, ValueError):
        raise HTTPError(400, '"image" is not valid base64') from None


def create_app(service):
    """The Starlette application around a Service: the model, the options, the declared length and the queue are
    checked before any of the body is read."""
    from starlette.applications import Starlette
    from starlette.responses import HTMLResponse, JSONResponse, Response
    from starlette.routing import Route
    limits = service.limits
    with open(PAGE, encoding='utf-8') as f:
        html = f.read()

    async def stylize_bytes(request):
        options = parse_options(dict(request.query_params), request.headers.get('accept', ''))

        async def read_request():
            body = await read_body(request, limits)
            if request.headers.get('content-type', '').startswith('multipart/form-data'):
                return await image_from_multipart(request, body), options
            return body, options
        data, media, width, height, ms = await service.stylize(request.path_params['model'], read_request)
        return Response(data, media_type=media, headers={'X-Stylize-Ms': '%.0f' % ms,
                                                         'X-Image-Size': '%dx%d' % (width, height)})

    async def stylize_base64(request):
        async def read_request():
            data, options = await asyncio.to_thread(base64_request, await read_body(request, limits))
            return data, parse_options(options)
        result, media, width, height, ms = await service.stylize(request.path_params['model'], read_request)
        return JSONResponse({'image': base64.b64encode(result).decode('ascii'), 'format': media.split('/')[1],
                             'width': width, 'height': height, 'ms': round(ms, 1)})

    async def models(_request):
        return JSONResponse({'models': [
            {'name': name, 'kind': stylizer.kind, 'styles': stylizer.styles, 'precision': stylizer.precision,
             'max_pixels': None if stylizer.can_tile else stylizer.max_pixels}
            for name, stylizer in sorted(service.models.items())]})

    async def health(_request):
        return JSONResponse({'status': 'ok', 'models': len(service.models), 'in_progress': service.pending})

    async def page(_request):
        return HTMLResponse(html, headers=page_headers(html))

    async def http_error(_request, error):
        return JSONResponse({'error': str(error)}, status_code=error.status)

    async def no_route(_request, exc):
        if exc.status_code == 405:
            return JSONResponse({'error': 'method not allowed here; this endpoint takes %s' % exc.headers['Allow']},
                                status_code=405, headers=exc.headers)
        return JSONResponse({'error': 'no such endpoint; see GET /v1/models, POST /v1/stylize/{model}'},
                            status_code=exc.status_code)

    async def server_fault(_request, _exc):  # the traceback goes to the server's log, not to the client
        return JSONResponse({'error': 'internal server error; the server log has the details'}, status_code=500)

    routes = [Route('/', page), Route('/healthz', health), Route('/v1/models', models),
              Route('/v1/stylize/{model}', stylize_bytes, methods=['POST']),
              Route('/v1/stylize/{model}/base64', stylize_base64, methods=['POST'])]
    app = Starlette(routes=routes, exception_handlers={HTTPError: http_error, 404: no_route, 405: no_route,
                                                       Exception: server_fault})
    return with_headers(app, {'X-Content-Type-Options': 'nosniff', 'Cache-Control': 'no-store'})


def guarded_protocol(header_timeout, max_connections):
    """uvicorn's h11 protocol with two guards it lacks: a connection whose request headers do not arrive within
    header_timeout seconds (of its opening, or of its previous response) is closed, and connections beyond
    max_connections are answered 503 and closed at once, so that idle or slow clients can neither hold the server's
    file descriptors nor its memory."""
    from uvicorn.protocols.http.h11_impl import H11Protocol
    refusal = b'{"error": "the service has too many open connections; retry shortly"}'
    busy = (b'HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nconnection: close\r\n'
            b'content-length: %d\r\n\r\n%s' % (len(refusal), refusal))
    malformed = (b'{"error": "malformed HTTP request (its request line, headers, Content-Length or chunked body '
                 b'could not be parsed)"}')

    class GuardedProtocol(H11Protocol):
        refused = False

        def connection_made(self, transport):
            if len(self.server_state.connections) >= max_connections:
                # Answer, end our side, and close a moment later: closing at once with the client's request unread
                # would reset the connection, and the client might never see the answer.
                self.refused = True
                transport.write(busy)
                transport.write_eof()
                asyncio.get_running_loop().call_later(1.0, transport.close)
                return
            super().connection_made(transport)
            self._expect_request()

        def _expect_request(self):
            self.loop.call_later(header_timeout, self._close_if_no_request, self.cycle)

        def _close_if_no_request(self, cycle):
            if self.cycle is cycle and not self.transport.is_closing():
                self.transport.close()

        def on_response_complete(self):
            super().on_response_complete()
            self._expect_request()

        def data_received(self, data):
            if not self.refused:
                super().data_received(data)

        def connection_lost(self, exc):
            if not self.refused:
                super().connection_lost(exc)

        def send_400_response(self, msg):
            # uvicorn answers what h11 cannot parse (a bad Content-Length, broken chunking) in plain text.
            import h11
            try:
                for event in (h11.Response(status_code=400, headers=[
                        (b'content-type', b'application/json'), (b'connection', b'close'),
                        (b'content-length', b'%d' % len(malformed))]), h11.Data(data=malformed), h11.EndOfMessage()):
                    self.transport.write(self.conn.send(event))
            except h11.LocalProtocolError:
                pass  # the answer was already under way: closing is all that is left
            self.transport.close()
    return GuardedProtocol


def parse_args(argv):
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--model', action='append', default=[], metavar='NAME=PATH',
                        help='a model to serve: checkpoint folder or prefix, frozen .pb, SavedModel folder or .tflite; '
                             'NAME of letters, digits, _ . - (it is a URL path segment)')
    parser.add_argument('--demo', action='store_true',
                        help='also serve the style models shipped in models/ (models/<style>.ckpt), by style name')
    parser.add_argument('--host', default='127.0.0.1', help='(default: %(default)s)')
    parser.add_argument('--port', type=int, default=8000, help='(default: %(default)s)')
    limits = parser.add_argument_group('limits (memory: see the README)')
    limits.add_argument('--max_request_bytes', type=int, default=Limits.max_request_bytes,
                        help='largest request body (default: %(default)s, 20 MB)')
    limits.add_argument('--max_image_pixels', '--max_pixels', type=int, default=Limits.max_image_pixels,
                        help='largest image accepted, in pixels, checked from its header (default: %(default)s; '
                             '--max_pixels is the old spelling)')
    limits.add_argument('--memory_pixels', type=int, default=Limits.memory_pixels,
                        help='pixels stylized at once across requests; larger images run tiled within it '
                             '(default: %(default)s, about 1.4 GB, 2.2 GB tiled)')
    limits.add_argument('--workers', type=int, default=Limits.workers, help='inference threads (default: %(default)s)')
    limits.add_argument('--queue', type=int, default=Limits.queue,
                        help='requests in progress (reading their body, waiting or stylizing) before answering 429 '
                             '(default: %(default)s)')
    limits.add_argument('--timeout', type=float, default=Limits.timeout,
                        help='seconds stylizing may take before 504; the work stops then too (default: %(default)s)')
    limits.add_argument('--body_timeout', type=float, default=Limits.body_timeout,
                        help='seconds for a request body to arrive before 408 (default: %(default)s)')
    limits.add_argument('--header_timeout', type=float, default=10.0,
                        help='seconds for a request\'s headers to arrive before the connection is closed '
                             '(default: %(default)s)')
    limits.add_argument('--max_connections', type=int, default=100,
                        help='open connections; more are answered 503 and closed (default: %(default)s, lowered to '
                             'fit the file-descriptor limit, keeping 32 for the process)')
    add_precision_option(parser)
    args = parser.parse_args(argv)
    if not args.model and not args.demo:
        parser.error('name at least one --model NAME=PATH (or --demo)')
    names = [spec.split('=', 1)[0] for spec in args.model] + (list(shipped_models()) if args.demo else [])
    if args.demo and not shipped_models():
        parser.error('--demo serves the style models shipped in %s, and none is there (restore them with git checkout '
                     'models, or name a model with --model NAME=PATH)' % SHIPPED_MODELS)
    for spec, name in zip(args.model, names):
        if '=' not in spec or not name:
            parser.error('--model takes NAME=PATH, e.g. candy=models/candy.pb; got %r' % spec)
        if not MODEL_NAME.fullmatch(name):
            parser.error('model name %r must be letters, digits, _ . or - (it is part of the URL '
                         '/v1/stylize/NAME)' % name)
    if len(set(names)) < len(names):
        parser.error('model names must differ; %r is given twice' % next(n for n in names if names.count(n) > 1))
    for name in ('max_request_bytes', 'max_image_pixels', 'memory_pixels', 'workers', 'queue', 'max_connections'):
        if getattr(args, name) <= 0:
            parser.error('--%s must be positive' % name)
    for name in ('timeout', 'body_timeout', 'header_timeout'):
        if not 0 < getattr(args, name) < float('inf'):
            parser.error('--%s must be a positive number of seconds' % name)
    return args


def shipped_models():
    """Style name -> checkpoint prefix of every model shipped in SHIPPED_MODELS (models/<style>.ckpt), by name."""
    indexes = sorted(glob.glob(os.path.join(glob.escape(SHIPPED_MODELS), '*.ckpt.index')))
    return {os.path.basename(index)[:-len('.ckpt.index')]: index[:-len('.index')] for index in indexes}


def load_models(specs, demo, memory_pixels, precision):
    """Name -> Stylizer for every NAME=PATH spec, and with `demo` for every shipped model."""
    paths = dict(spec.split('=', 1) for spec in specs)
    if demo:
        paths.update(shipped_models())
    return {name: Stylizer(path, memory_pixels, precision) for name, path in paths.items()}


class OutOfDescriptorsOncePerMinute(logging.Filter):
    """When file descriptors run out anyway (other files of the process, a lower limit set later), asyncio logs every
    failed accept() with its traceback, thousands of times a second; this keeps one short line a minute."""

    def __init__(self):
        super().__init__()
        self.last = -float('inf')

    def filter(self, record):
        if 'out of system resource' not in str(record.msg):
            return True
        if time.monotonic() - self.last < 60:
            return False
        self.last = time.monotonic()
        record.msg, record.args, record.exc_info, record.exc_text = (
            'out of file descriptors: new connections wait until others close (raise ulimit -n or lower '
            '--max_connections); said once a minute', (), None, None)
        return True


def connection_limits(wanted):
    """(connections, listen backlog) that fit the process's file-descriptor limit (raised to its hard limit first),
    keeping 32 descriptors for the process's own files.

    asyncio accepts up to `backlog` connections in one go before any of them can be refused, so the descriptors in
    use can reach connections + backlog: both must fit, or accept() fails for want of descriptors.

    Raises:
      UsageError: the limit leaves room for fewer than 8 connections.
    """
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    room = soft - len(os.listdir('/proc/self/fd' if os.path.isdir('/proc/self/fd') else '/dev/fd')) - 32
    backlog = max(8, min(128, room // 4))
    if room - backlog < 8:
        raise UsageError('the file-descriptor limit (ulimit -n %d) leaves room for %d connections; raise it to at '
                         'least %d' % (soft, max(room - backlog, 0), soft - room + backlog + 8))
    if room - backlog < wanted:
        log.info('--max_connections %d lowered to %d to fit the file-descriptor limit (ulimit -n %d)', wanted,
                 room - backlog, soft)
    return min(wanted, room - backlog), backlog


def check_port(host, port):
    """Raise UsageError if the address cannot be listened on (uvicorn would only log it and exit 1)."""
    import socket
    try:
        with socket.socket(socket.AF_INET6 if ':' in host else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as error:
        raise UsageError('cannot listen on %s:%d (%s); choose another --port or --host'
                         % (host, port, error.strerror)) from None


@cli_main
def main(argv=None):
    setup_logging()
    args = parse_args(argv)
    try:
        import python_multipart  # noqa: F401  (Starlette needs it for uploads)
        import starlette  # noqa: F401
        import uvicorn
    except ImportError as error:
        raise UsageError('the service needs %s, which is not installed: pip install -r requirements-serve.txt'
                         % error.name) from None
    check_port(args.host, args.port)
    limits = Limits(args.max_request_bytes, args.max_image_pixels, args.memory_pixels, args.workers, args.queue,
                    args.timeout, args.body_timeout)
    service = Service(load_models(args.model, args.demo, args.memory_pixels, args.precision), limits)
    max_connections, backlog = connection_limits(args.max_connections)  # once the models hold their files
    logging.getLogger('asyncio').addFilter(OutOfDescriptorsOncePerMinute())
    precisions = sorted({stylizer.precision for stylizer in service.models.values()})
    log.info('serving %s on http://%s:%d/ in %s (queue %d, %d workers, timeout %g s, at most %d connections)',
             ', '.join(sorted(service.models)), args.host, args.port, ' and '.join(precisions), args.queue,
             args.workers, args.timeout, max_connections)
    uvicorn.run(create_app(service), host=args.host, port=args.port, log_level='warning',
                http=guarded_protocol(args.header_timeout, max_connections), backlog=backlog, timeout_keep_alive=5)

if __name__ == '__main__':
    main()
