"""Serve trained models over HTTP, with a page to try them.

  python serve.py --model wave=models/wave.ckpt --model scream=models/scream.pb [--host 127.0.0.1] [--port 8000]
  python serve.py --demo          # the style models shipped in models/ (wave, ...), to try the service at once

Endpoints: POST /v1/stylize/{model} (image bytes in, raw or multipart; image bytes out), POST
/v1/stylize/{model}/base64 (JSON in and out), GET /v1/models, GET /healthz, and GET / (the page).
Each model is loaded once (checkpoint folder or prefix, frozen .pb, SavedModel, .tflite). Errors are JSON with a clear
message and a 4xx status (429 when the queue is full, 504 past the timeout, which also stops the work); the model,
the options, the declared length and the queue are checked before a body is read, slow clients are cut off
(--header_timeout, --body_timeout) and connections are capped (--max_connections).
"""
import argparse
import glob
import logging
import os
import re

from inference.stylizer import Stylizer
from nets.pretrained import ARBITRARY_CHECKPOINT
from service.app import create_app
from service.guard import OutOfDescriptorsOncePerMinute, check_port, connection_limits, guarded_protocol
from service.work import Limits, Service
from utils import ArgumentParser, UsageError, add_precision_option, cli_main, log, setup_logging

SHIPPED_MODELS = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'models')  # see models/README.md
MODEL_NAME = re.compile(r'[A-Za-z0-9][A-Za-z0-9_.-]*')  # one path segment of /v1/stylize/{model}


def parse_args(argv):
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--model', action='append', default=[], metavar='NAME=PATH',
                        help='a model to serve: checkpoint folder or prefix, frozen .pb, SavedModel folder or .tflite; '
                             'NAME of letters, digits, _ . - (it is a URL path segment)')
    parser.add_argument('--demo', action='store_true',
                        help='also serve the style models shipped in models/ (models/<style>.ckpt), by style name, '
                             "and as `any` Magenta's arbitrary-style network once eval.py has downloaded it")
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
    names = [spec.split('=', 1)[0] for spec in args.model] + (list(demo_models()) if args.demo else [])
    if args.demo and not shipped_models():
        parser.error('--demo serves the style models shipped in %s, and none is there (restore them with git checkout '
                     'models, or name a model with --model NAME=PATH)' % SHIPPED_MODELS)
    for spec, name in zip(args.model, names):
        if '=' not in spec or not name or not spec.split('=', 1)[1].strip():
            parser.error('--model takes NAME=PATH, e.g. wave=models/wave.ckpt; got %r' % spec)
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


def demo_models():
    """What --demo serves: the shipped style models, and as `any` Magenta's arbitrary-style network where eval.py
    has downloaded it (pretrained/arbitrary_style_transfer/)."""
    models = shipped_models()
    if os.path.isfile(ARBITRARY_CHECKPOINT + '.index'):
        models['any'] = ARBITRARY_CHECKPOINT
    return models


def load_models(specs, demo, memory_pixels, precision):
    """Name -> Stylizer for every NAME=PATH spec, and with `demo` for every demo model."""
    paths = dict(spec.split('=', 1) for spec in specs)
    if demo:
        paths.update(demo_models())
        if 'any' not in paths:
            log.warning("--demo: Magenta's arbitrary-style network is left out (no %s): run 'python eval.py "
                        "--image_file img/test.jpg --style_image img/udnie.jpg' once to download it, or see "
                        "pretrained/README.md", ARBITRARY_CHECKPOINT)
    return {name: Stylizer(path, memory_pixels, precision) for name, path in paths.items()}


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
