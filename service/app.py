"""The Starlette application: the routes, JSON errors, and the page with its security headers."""
import asyncio
import base64
import os
import re
import time

from service.requests import base64_request, images_from_multipart, parse_options, query_values, read_body
from inference import stroke as strokes
from service.work import HTTPError
from utils import log

PAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'docs', 'service.html')


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


def with_request_log(app):
    """An ASGI app that logs one line per request of `app`: method, path, status, response bytes and time."""
    async def logged(scope, receive, send):
        if scope['type'] != 'http':
            return await app(scope, receive, send)
        start, answer = time.monotonic(), {'status': 0, 'bytes': 0}

        async def counting_send(message):
            if message['type'] == 'http.response.start':
                answer['status'] = message['status']
            elif message['type'] == 'http.response.body':
                answer['bytes'] += len(message.get('body', b''))
            await send(message)
        try:
            await app(scope, receive, counting_send)
        finally:
            log.info('%s %s %d %d bytes %.0f ms', scope['method'], scope['path'][:200], answer['status'],
                     answer['bytes'], 1000 * (time.monotonic() - start))
    return logged


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
        options = parse_options(query_values(request.query_params), request.headers.get('accept', ''))

        async def read_request():
            body = await read_body(request, limits)
            if request.headers.get('content-type', '').startswith('multipart/form-data'):
                image, style, masks = await images_from_multipart(request, body)
                return image, dict(options, style_image=style, masks=masks)
            return body, dict(options, style_image=None, masks=[])
        result = await service.stylize(request.path_params['model'], read_request)
        token = {'X-Style-Token': result.style_token} if result.style_token else {}
        return Response(result.data, media_type=result.media_type, headers={
            'X-Stylize-Ms': '%.0f' % result.ms, 'X-Image-Size': '%dx%d' % (result.width, result.height), **token})

    async def stylize_base64(request):
        async def read_request():
            data, style, masks, options = await asyncio.to_thread(base64_request, await read_body(request, limits))
            return data, dict(parse_options(options), style_image=style, masks=masks)
        result = await service.stylize(request.path_params['model'], read_request)
        token = {'style_token': result.style_token} if result.style_token else {}
        return JSONResponse({'image': base64.b64encode(result.data).decode('ascii'),
                             'format': result.media_type.split('/')[1], 'width': result.width,
                             'height': result.height, 'ms': round(result.ms, 1), **token})

    async def models(_request):
        return JSONResponse({'models': [
            {'name': name, 'kind': stylizer.kind, 'styles': stylizer.styles,
             'style_image': stylizer.arbitrary is not None,  # takes any style image (Magenta's network)
             'style_names': (stylizer.style_names or [str(k) for k in range(stylizer.styles)]
                             if stylizer.styles > 1 else []),
             'strokes': strokes.listed(stylizer.style_names),  # a network of several stroke sizes: takes stroke
             'precision': stylizer.precision,
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
    return with_request_log(with_headers(app, {'X-Content-Type-Options': 'nosniff', 'Cache-Control': 'no-store'}))
