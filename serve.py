"""Serve trained models over HTTP, with a page to try them.

  python serve.py --model candy=models/candy.pb --model wave=models/wave/ [--host 127.0.0.1] [--port 8000]
  python serve.py --demo          # an untrained network named "demo", to try the service without a model

Endpoints: POST /v1/stylize/{model} (image bytes in, raw or multipart; image bytes out), POST
/v1/stylize/{model}/base64 (JSON in and out), GET /v1/models, GET /healthz, and GET / (the page).
Each model is loaded once (checkpoint folder or prefix, frozen .pb, SavedModel, .tflite). Errors are JSON with a clear
message and a 4xx status; a full queue answers 429.
"""
import argparse
import asyncio
import base64
import binascii
import io
import os
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image

import model
from nets.stylizer import DEFAULT_MAX_PIXELS, Stylizer
from preprocessing import color
from utils import (PRECISIONS, ArgumentParser, UsageError, cli_main, encode_image, load_image, log,
                   setup_logging)

FORMATS = {'png': 'PNG', 'jpeg': 'JPEG', 'jpg': 'JPEG', 'webp': 'WEBP'}
MEDIA_TYPES = {'PNG': 'image/png', 'JPEG': 'image/jpeg', 'WEBP': 'image/webp'}
PAGE = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'docs', 'service.html')


class HTTPError(Exception):
    """An error answered as JSON {"error": message} with this status."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


class PixelBudget:
    """Lets inference runs start only while the pixels in flight stay within a budget (memory)."""

    def __init__(self, budget):
        self.budget, self.in_use = budget, 0
        self.condition = threading.Condition()

    def run(self, pixels, work):
        pixels = min(pixels, self.budget)  # larger images are tiled within the Stylizer's own budget
        with self.condition:
            self.condition.wait_for(lambda: self.in_use + pixels <= self.budget)
            self.in_use += pixels
        try:
            return work()
        finally:
            with self.condition:
                self.in_use -= pixels
                self.condition.notify_all()


class Service:
    """The models and the limits that keep the service alive under load."""

    def __init__(self, models, args):
        self.models, self.args = models, args
        self.executor = ThreadPoolExecutor(max_workers=args.workers)
        self.budget = PixelBudget(args.memory_pixels)
        self.lock = threading.Lock()
        self.pending = 0  # requests admitted and not finished (their inference may outlive a timeout)

    def admit(self):
        with self.lock:
            if self.pending >= self.args.queue:
                raise HTTPError(429, 'the service is busy (%d requests in progress); retry shortly' % self.pending)
            self.pending += 1

    def release(self, _future=None):
        with self.lock:
            self.pending -= 1

    async def stylize(self, name, data, options):
        """Decode, stylize and encode one image; returns (bytes, media type, width, height, milliseconds)."""
        if name not in self.models:
            raise HTTPError(404, 'unknown model %r (available: %s)' % (name, ', '.join(sorted(self.models))))
        self.admit()
        start = time.time()
        future = self.executor.submit(self._work, self.models[name], data, options)
        future.add_done_callback(self.release)
        try:
            body, fmt, width, height = await asyncio.wait_for(asyncio.wrap_future(future), self.args.timeout)
        except asyncio.TimeoutError:
            raise HTTPError(504, 'stylizing took longer than the %g s limit; send a smaller image or use max_size'
                            % self.args.timeout) from None
        return body, MEDIA_TYPES[fmt], width, height, (time.time() - start) * 1000

    def _work(self, stylizer, data, options):
        try:
            with Image.open(io.BytesIO(data)) as probe:
                input_format = probe.format
            rgb, alpha = load_image(io.BytesIO(data), 'the request body', max_pixels=self.args.max_pixels)
        except UsageError as error:
            raise HTTPError(413 if 'too large' in str(error) else 400, str(error)) from None
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
            raise HTTPError(400, 'the request body is not a readable image (send a JPEG, PNG or WebP file)') from None
        rgb, alpha = _limit_size(rgb, alpha, options['max_size'])
        stylized = self.budget.run(rgb.shape[0] * rgb.shape[1], lambda: stylizer(rgb))
        result = color.finish(stylized, rgb, options['preserve_colors'], options['strength'])
        fmt = options['format'] or (input_format if input_format in MEDIA_TYPES else 'PNG')
        return encode_image(result, fmt, alpha), fmt, result.shape[1], result.shape[0]


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
    """max_size, strength, preserve_colors and format from query parameters or JSON; HTTPError 400 if bad."""
    def number(key, kind, default):
        raw = values.get(key, default)
        try:
            return kind(raw)
        except (TypeError, ValueError):
            raise HTTPError(400, '%s must be a number, got %r' % (key, raw)) from None

    max_size = number('max_size', int, 0)
    strength = number('strength', float, 1.0)
    if max_size < 0:
        raise HTTPError(400, 'max_size must be positive, got %d' % max_size)
    if not 0 <= strength <= 1:
        raise HTTPError(400, 'strength must be between 0 and 1, got %g' % strength)
    preserve = str(values.get('preserve_colors', 'false')).lower()
    if preserve not in ('true', '1', 'yes', 'false', '0', 'no'):
        raise HTTPError(400, 'preserve_colors must be true or false, got %r' % preserve)
    fmt = values.get('format')
    if fmt is None:
        fmt = next((key for key, media in (('png', 'image/png'), ('jpeg', 'image/jpeg'), ('webp', 'image/webp'))
                    if media in accept), None)
    if fmt is not None and str(fmt).lower() not in FORMATS:
        raise HTTPError(400, 'format must be one of png, jpeg, webp; got %r' % fmt)
    return {'max_size': max_size, 'strength': strength, 'preserve_colors': preserve in ('true', '1', 'yes'),
            'format': FORMATS[str(fmt).lower()] if fmt else None}


def create_app(service):
    """The Starlette application around a Service."""
    from starlette.applications import Starlette
    from starlette.requests import ClientDisconnect
    from starlette.responses import FileResponse, JSONResponse, Response
    from starlette.routing import Route

    async def read_body(request):
        declared = request.headers.get('content-length')
        limit = service.args.max_request_bytes
        if declared and declared.isdigit() and int(declared) > limit:
            raise HTTPError(413, 'the request is %s bytes, over the limit of %d' % (declared, limit))
        chunks, size = [], 0
        try:
            async for chunk in request.stream():
                size += len(chunk)
                if size > service.args.max_request_bytes:
                    raise HTTPError(413, 'the request is over the limit of %d bytes' % service.args.max_request_bytes)
                chunks.append(chunk)
        except ClientDisconnect:
            raise HTTPError(400, 'the client closed the connection') from None
        return b''.join(chunks)

    async def image_from(request, body):
        if not request.headers.get('content-type', '').startswith('multipart/form-data'):
            return body
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

    async def stylize_bytes(request):
        body = await read_body(request)
        options = parse_options(dict(request.query_params), request.headers.get('accept', ''))
        data, media, width, height, ms = await service.stylize(request.path_params['model'],
                                                               await image_from(request, body), options)
        return Response(data, media_type=media, headers={'X-Stylize-Ms': '%.0f' % ms,
                                                         'X-Image-Size': '%dx%d' % (width, height)})

    async def stylize_base64(request):
        import json
        try:
            payload = json.loads(await read_body(request))
        except (ValueError, UnicodeDecodeError):
            raise HTTPError(400, 'the body must be JSON: {"image": "<base64>", ...options}') from None
        if not isinstance(payload, dict) or not isinstance(payload.get('image'), str):
            raise HTTPError(400, 'the JSON body needs "image": a base64 string of the image file')
        try:
            data = base64.b64decode(payload['image'].split(',')[-1], validate=True)
        except (binascii.Error, ValueError):
            raise HTTPError(400, '"image" is not valid base64') from None
        options = parse_options(payload)
        result, media, width, height, ms = await service.stylize(request.path_params['model'], data, options)
        return JSONResponse({'image': base64.b64encode(result).decode('ascii'), 'format': media.split('/')[1],
                             'width': width, 'height': height, 'ms': round(ms, 1)})

    async def models(_request):
        return JSONResponse({'models': [{'name': name, 'source': stylizer.source}
                                        for name, stylizer in sorted(service.models.items())]})

    async def health(_request):
        return JSONResponse({'status': 'ok', 'models': len(service.models), 'in_progress': service.pending})

    async def page(_request):
        return FileResponse(PAGE, media_type='text/html')

    async def http_error(_request, error):
        return JSONResponse({'error': str(error)}, status_code=error.status)

    async def not_found(_request, exc):
        return JSONResponse({'error': 'no such endpoint; see GET /v1/models, POST /v1/stylize/{model}'},
                            status_code=getattr(exc, 'status_code', 404))

    routes = [Route('/', page), Route('/healthz', health), Route('/v1/models', models),
              Route('/v1/stylize/{model}', stylize_bytes, methods=['POST']),
              Route('/v1/stylize/{model}/base64', stylize_base64, methods=['POST'])]
    return Starlette(routes=routes, exception_handlers={HTTPError: http_error, 404: not_found, 405: not_found})


def parse_args(argv):
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--model', action='append', default=[], metavar='NAME=PATH',
                        help='a model to serve: checkpoint folder or prefix, frozen .pb, SavedModel folder or .tflite')
    parser.add_argument('--demo', action='store_true', help='also serve an untrained network named "demo"')
    parser.add_argument('--host', default='127.0.0.1', help='(default: %(default)s)')
    parser.add_argument('--port', type=int, default=8000, help='(default: %(default)s)')
    parser.add_argument('--max_request_bytes', type=int, default=20 * 1024 * 1024,
                        help='largest request body (default: %(default)s, 20 MB)')
    parser.add_argument('--max_pixels', type=int, default=25000000,
                        help='largest image accepted, in pixels (default: %(default)s)')
    parser.add_argument('--memory_pixels', type=int, default=DEFAULT_MAX_PIXELS,
                        help='pixels stylized at once across requests; larger images run tiled within it '
                             '(default: %(default)s, about 1.4 GB, 2.2 GB tiled)')
    parser.add_argument('--precision', choices=PRECISIONS, default='fp32',
                        help='bf16: convolutions in 16-bit floats, faster where supported (default: %(default)s)')
    parser.add_argument('--workers', type=int, default=2, help='inference threads (default: %(default)s)')
    parser.add_argument('--queue', type=int, default=16,
                        help='requests in progress before answering 429 (default: %(default)s)')
    parser.add_argument('--timeout', type=float, default=120.0,
                        help='seconds a request may take before 504 (default: %(default)s)')
    args = parser.parse_args(argv)
    if not args.model and not args.demo:
        parser.error('name at least one --model NAME=PATH (or --demo)')
    for spec in args.model:
        if '=' not in spec or not spec.split('=', 1)[0]:
            parser.error('--model takes NAME=PATH, e.g. candy=models/candy.pb; got %r' % spec)
    for name in ('max_request_bytes', 'max_pixels', 'memory_pixels', 'workers', 'queue'):
        if getattr(args, name) <= 0:
            parser.error('--%s must be positive' % name)
    if args.timeout <= 0:
        parser.error('--timeout must be positive')
    return args


def load_models(args):
    """Name -> Stylizer for every --model (and the demo network)."""
    models = {}
    for spec in args.model:
        name, path = spec.split('=', 1)
        models[name] = Stylizer(path, args.memory_pixels, args.precision)
    if args.demo:
        prefix = model.save_random_model(os.path.join(tempfile.mkdtemp(prefix='demo-model'), 'demo.ckpt'))
        models['demo'] = Stylizer(prefix, args.memory_pixels, args.precision)
        models['demo'].source = 'untrained network (--demo)'  # rather than its temporary folder
    return models


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
    service = Service(load_models(args), args)
    log.info('serving %s on http://%s:%d/ (queue %d, %d workers, timeout %g s)', ', '.join(sorted(service.models)),
             args.host, args.port, args.queue, args.workers, args.timeout)
    uvicorn.run(create_app(service), host=args.host, port=args.port, log_level='warning')


if __name__ == '__main__':
    main()
