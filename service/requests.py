"""Reading a request: its options (query or JSON), its body within the limits, multipart uploads, and JSON bodies
read in bounded memory."""
import asyncio
import base64
import binascii
import re
import sys

import style_names
from config import MAX_STYLES
from inference import masks
from service.work import FORMATS, HTTPError
from utils import UsageError, shorten, unknown_name_hint


OPTIONS = ('max_size', 'strength', 'preserve_colors', 'format', 'quality', 'style', 'mix', 'stroke', 'style_strength',
           'style_token')
_STYLE_TOKEN = re.compile(r'[0-9a-f]{32}')  # service.work.EmbeddingCache.issue's


def query_values(query):
    """The query string's parameters (starlette's QueryParams) as a dict (see _once)."""
    return _once(query.multi_items(), 'option %s')


def _once(pairs, what='key %s in the JSON body'):
    """(key, value) pairs as a dict; HTTPError 400 for a key given twice, which would otherwise be read as its last
    value without a word. what: how the message names a key (a JSON key may be the image's, or a nested one)."""
    values = {}
    for key, value in pairs:
        if key in values:
            raise HTTPError(400, (what + ' is given twice; give it once') % shorten(key))
        values[key] = value
    return values


def parse_options(values, accept=''):
    """The OPTIONS from query parameters or JSON; HTTPError 400 if one is bad or unknown (a misspelt option would
    otherwise be ignored without a word). Whether they fit the model is checked with the model: _style_of."""
    unknown = [key for key in values if key not in OPTIONS]
    if unknown:
        raise HTTPError(400, 'unknown option %s (%s)' % (shorten(unknown[0]),
                                                         unknown_name_hint(unknown[0], OPTIONS, 'the options are')))
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
    quality = number('quality', int, 95)
    if not 1 <= quality <= 100:
        raise HTTPError(400, 'quality must be between 1 and 100, got %d' % quality)
    strength = number('strength', float, 1.0)
    style_strength = number('style_strength', float, 1.0)
    if not 0 <= style_strength <= 1:
        raise HTTPError(400, 'style_strength must be between 0 and 1, got %g' % style_strength)
    if max_size < 0:
        raise HTTPError(400, 'max_size must be positive, got %d' % max_size)
    stroke = None if values.get('stroke') is None else number('stroke', float, None)
    if stroke is not None and not 0 < stroke < float('inf'):
        raise HTTPError(400, 'stroke must be a positive number, the stroke size relative to the style image\'s, '
                             'got %s' % shorten(values['stroke']))
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
            'format': FORMATS[str(fmt).lower()] if fmt else None, 'quality': quality,
            'style': _style(values.get('style')), 'mix': _mix(values.get('mix')), 'stroke': stroke,
            'style_strength': style_strength,
            'style_token': _style_token(values.get('style_token'))}


def _style_token(raw):
    """A style_token as sent back by an earlier answer (X-Style-Token, "style_token"); None if not given."""
    if raw is None:
        return None
    if not isinstance(raw, str) or not _STYLE_TOKEN.fullmatch(raw):
        raise HTTPError(400, 'style_token must be the 32 hex digits of an earlier answer\'s X-Style-Token, got %s'
                        % shorten(raw))
    return raw


def _style(raw):
    """A style chosen by name or index (str or JSON whole number), as a str; None if not given."""
    if raw is None:
        return None
    if isinstance(raw, float) and raw.is_integer():
        raw = int(raw)  # JSON's 1.0; but 1.7 is no style
    if isinstance(raw, bool) or not isinstance(raw, (str, int)) or not 0 < len(str(raw)) <= style_names.MAX_LENGTH:
        raise HTTPError(400, 'style must be a style name or index of the model (see /v1/models), got %s'
                        % shorten(raw))
    return str(raw)


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


MASK_FIELD = 'mask'  # a mask's field: "mask" for the style the options give, "mask:NAME" for the style NAME


def mask_name(field):
    """The style a multipart field's or a JSON key's mask is for (None: the options' style), or HTTPError 400."""
    if field == MASK_FIELD:
        return None
    name = field[len(MASK_FIELD) + 1:]
    if not masks.is_name(name) or len(name) > style_names.MAX_LENGTH:
        raise HTTPError(400, 'mask field %s does not name a style: send "mask" or "mask:NAME" (NAME a style of the '
                             'model, or photo)' % shorten(field))
    return name


MAX_MASKS = 4  # a request's masks: each takes about 8 bytes per photo pixel (docs/SERVICE.md)


def _checked_masks(pairs):
    """The masks (name, bytes) of a request, at most one per style and MAX_MASKS in all."""
    if len(pairs) > MAX_MASKS:
        raise HTTPError(400, 'the request holds %d masks; send at most %d, one per style' % (len(pairs), MAX_MASKS))
    try:
        masks.check_masks([masks.Mask(name, 'upload') for name, _ in pairs])
    except UsageError as error:
        raise HTTPError(400, str(error).replace('--mask', 'mask')) from None
    return pairs


async def images_from_multipart(request, body):
    """(image, style image or None, masks) of a multipart body: the file fields named "image" (else the first file
    that is neither the style image nor a mask), "style_image" and "mask" or "mask:NAME" (masks: (name, bytes))."""
    from starlette.datastructures import UploadFile
    from starlette.formparsers import MultiPartException, MultiPartParser

    async def replay():
        yield body
    try:
        form = await MultiPartParser(request.headers, replay()).parse()
    except MultiPartException as error:
        raise HTTPError(400, 'malformed multipart body (%s)' % error) from None
    fields = [key for key, value in form.multi_items() if not isinstance(value, UploadFile)]
    if fields:
        raise HTTPError(400, 'the multipart body has the text field %s: only files go in it (the photo as "image"), '
                             'options in the query string (/v1/stylize/NAME?strength=0.5)' % shorten(fields[0]))
    files = [(key, value) for key, value in form.multi_items() if isinstance(value, UploadFile)]
    styles = [value for key, value in files if key == 'style_image']
    mask_files = [(mask_name(key), value) for key, value in files if key.split(':')[0] == MASK_FIELD]
    photos = [value for key, value in files if key != 'style_image' and key.split(':')[0] != MASK_FIELD]
    if len(photos) > 1 or len(styles) > 1:
        raise HTTPError(400, 'the multipart body holds %d photos and %d style images; send one photo (the file field '
                             '"image") and at most one "style_image"' % (len(photos), len(styles)))
    if not photos:
        raise HTTPError(400, 'the multipart body has %s; send the photo as a file field named "image"'
                        % ('only a style image' if styles else 'no file'))
    return (await photos[0].read(), (await styles[0].read() if styles else None),
            _checked_masks([(name, await value.read()) for name, value in mask_files]))

MAX_JSON_FIELDS_BYTES = 64 * 1024  # the JSON around the image (its options are a few hundred bytes)

LONG_STRING_BYTES = 1024  # a JSON string this long is read in place, not parsed: the image's base64

_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')


def base64_request(body):
    """(image bytes, style image bytes or None, masks, options dict) of a JSON body {"image": "<base64>",
    "style_image": "<base64>" (for an arbitrary-style model), "mask": "<base64>" or {"NAME": "<base64>", ...},
    ...options} (masks: (name, bytes)), in memory about the body's
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
    style = payload.pop('style_image', None)
    if style is not None and not isinstance(style, str):
        raise HTTPError(400, '"style_image" must be a base64 string of the style image file')
    found = _json_masks(payload.pop(MASK_FIELD, None))
    for key, value in payload.items():  # another long string: an option no one sends at that length
        if _placeholder(value) is not None:
            start, end = spans[_placeholder(value)]
            payload[key] = 'a string of %d bytes' % (end - start - 2)
    return (_decoded(body, image, spans, 'image'), None if style is None else _decoded(body, style, spans,
                                                                                        'style_image'),
            _checked_masks([(name, _decoded(body, value, spans, 'mask')) for name, value in found]), payload)


def _json_masks(value):
    """(name, base64 value) of a JSON body's "mask": a string (for the options' style) or an object of them by
    style name."""
    if value is None:
        return []
    if isinstance(value, str):
        return [(None, value)]
    if isinstance(value, dict) and all(isinstance(item, str) for item in value.values()):
        return [(mask_name(MASK_FIELD + ':' + name), item) for name, item in value.items()]
    raise HTTPError(400, '"mask" must be a base64 string of a mask image, or an object of them by style name '
                         '({"wave": "<base64>", "photo": "<base64>"})')


def _decoded(body, value, spans, key):
    """The bytes of the base64 field `key`, whose parsed value is `value` (a long string's placeholder, or a short
    string parsed with the rest)."""
    if _placeholder(value) is None:
        encoded = value.encode('ascii', 'replace')
        return _base64_decode(encoded, 0, len(encoded), key)
    return _base64_image(body, *spans[_placeholder(value)], key)


def _placeholder(value):
    """The index of the long string that base64_request put in the place of `value`, or None."""
    is_one = isinstance(value, str) and value.startswith('\0') and value[1:].isdigit()
    return int(value[1:]) if is_one else None


def _parse_json(text):
    import json
    try:
        return json.loads(text, object_pairs_hook=_once)
    except RecursionError:
        raise HTTPError(400, 'the JSON body is nested too deeply; send {"image": "<base64>", ...options}') from None
    except (ValueError, UnicodeDecodeError):
        raise HTTPError(400, 'the body must be JSON: {"image": "<base64>", ...options}') from None


def _base64_image(body, start, end, key='image'):
    """The bytes of the base64 JSON string at body[start:end] (quotes included), a data URL's prefix dropped."""
    if body.find(b'\\', start, end) != -1:  # escapes (a "\/" or line breaks): decode the string as JSON
        text = _parse_json(body[start:end]).encode('ascii', 'replace')
        start, end, body = 0, len(text), text
    else:
        start, end = start + 1, end - 1
    return _base64_decode(body, start, end, key)


def _base64_decode(data, start, end, key='image'):
    """base64 data[start:end], after a data URL's prefix (up to a comma) if there is one, decoded in place
    (Python 3.10's b64decode copies the text first)."""
    start = max(start, data.rfind(b',', start, end) + 1)
    try:
        if sys.version_info >= (3, 11):
            return binascii.a2b_base64(memoryview(data)[start:end], strict_mode=True)
        return base64.b64decode(memoryview(data)[start:end], validate=True)
    except (binascii.Error, ValueError):
        raise HTTPError(400, '"%s" is not valid base64' % key) from None
