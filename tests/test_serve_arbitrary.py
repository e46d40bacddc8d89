"""The service with Magenta's arbitrary-style network: a style image with the photo (multipart or base64 JSON),
the embedding cache, the limits and 4xx answers for style images, and the page's style upload."""
import base64
import io
import json
import re

import numpy as np
import pytest
from PIL import Image

from helpers import NEEDS_CHROMIUM, multipart, png, request, service_page, start_server
from inference.arbitrary import with_strength
from service import work


@pytest.fixture(scope='module')
def server(arbitrary_checkpoint, trained_model):
    process, url = start_server('--model', 'any=' + arbitrary_checkpoint, '--model', 'tiny=' + trained_model,
                                '--max_request_bytes', '300000', '--max_image_pixels', '40000')
    yield url
    process.terminate()
    process.wait(30)


def _pixels(body):
    return np.asarray(Image.open(io.BytesIO(body))).astype(int)


def test_a_style_image_with_the_photo_gives_evals_pixels(server, arbitrary_stylizer):
    (photo, pixels), (style, style_pixels) = png(30, 41, seed=1), png(48, 40, seed=2)
    expected = arbitrary_stylizer(pixels, style=arbitrary_stylizer.embed(style_pixels))
    status, headers, body = request(server + '/v1/stylize/any?format=png', *multipart(image=photo, style_image=style))
    assert status == 200 and headers['x-image-size'] == '41x30'
    assert np.abs(_pixels(body) - expected).max() <= 1
    payload = json.dumps({'image': base64.b64encode(photo).decode(), 'format': 'png', 'style_strength': 0.5,
                          'style_image': base64.b64encode(style).decode()}).encode()
    status, _, body = request(server + '/v1/stylize/any/base64', payload, {'Content-Type': 'application/json'})
    half = with_strength(arbitrary_stylizer.embed(style_pixels), 0.5, lambda: arbitrary_stylizer.embed(pixels))
    assert status == 200
    result = _pixels(base64.b64decode(json.loads(body)['image']))
    assert np.abs(result - arbitrary_stylizer(pixels, style=half)).max() <= 1
    models = {m['name']: m for m in json.loads(request(server + '/v1/models')[2])['models']}
    assert models['any']['style_image'] and not models['tiny']['style_image']


@pytest.mark.parametrize('model, files, query, status, message', [
    ('any', {'image': png(20, 20)[0]}, '', 400, "model any is Magenta's arbitrary-style network: send the style"),
    ('any', {'image': png(20, 20)[0], 'style_image': b'not an image'}, '', 415,
     'the style image is not a JPEG, PNG or WebP image'),
    ('any', {'image': png(20, 20)[0], 'style_image': png(150, 150)[0][:100]}, '', 400,
     'the style image is not a readable image'),
    ('any', {'image': png(20, 20)[0], 'style_image': png(1, 1)[0]}, '', 400, 'the style image is 1x1: too small'),
    ('any', {'image': png(20, 20)[0], 'style_image': png(20, 400)[0]}, '', 400, 'sides differ more than 16 times'),
    ('any', {'image': png(20, 20)[0], 'style_image': png(201, 200)[0]}, '', 413,
     'the style image is too large: 200x201 is over the limit of 40000 pixels'),
    ('any', {'image': png(20, 20)[0], 'style_image': png(20, 20)[0]}, '?style=0', 400,
     'style and mix apply to models of several styles'),
    ('any', {'image': png(20, 20)[0], 'style_image': png(20, 20)[0]}, '?style_strength=2', 400,
     'style_strength must be between 0 and 1'),
    ('any', {'style_image': png(20, 20)[0]}, '', 400, 'the multipart body has only a style image'),
    ('tiny', {'image': png(20, 20)[0], 'style_image': png(20, 20)[0]}, '', 400,
     "style_image, style_token and style_strength apply to Magenta's arbitrary-style network"),
])
def test_style_image_mistakes_are_json_4xx(server, model, files, query, status, message):
    answer, headers, body = request('%s/v1/stylize/%s%s' % (server, model, query), *multipart(**files))
    assert answer == status and headers['content-type'] == 'application/json'
    assert message in json.loads(body)['error'], body


def test_a_base64_style_that_is_not_base64_is_400(server):
    payload = json.dumps({'image': base64.b64encode(png(20, 20)[0]).decode(), 'style_image': '***'}).encode()
    status, _, body = request(server + '/v1/stylize/any/base64', payload, {'Content-Type': 'application/json'})
    assert status == 400 and json.loads(body)['error'] == '"style_image" is not valid base64'
    payload = json.dumps({'image': base64.b64encode(png(20, 20)[0]).decode(), 'style_image': [1, 2]}).encode()
    status, _, body = request(server + '/v1/stylize/any/base64', payload, {'Content-Type': 'application/json'})
    assert status == 400 and 'must be a base64 string' in json.loads(body)['error']


def test_embeddings_are_cached_by_the_style_images_bytes_within_a_bound(arbitrary_stylizer, monkeypatch):
    service = work.Service({'any': arbitrary_stylizer}, work.Limits())
    service.embeddings = work.EmbeddingCache(entries=2)
    calls = []
    embed = arbitrary_stylizer.embed
    monkeypatch.setattr(arbitrary_stylizer, 'embed', lambda pixels, **kwargs: calls.append(pixels.shape) or
                        embed(pixels, **kwargs))
    photo = png(24, 24)[1]
    styles = [png(32, 32 + k, seed=k)[0] for k in range(3)]
    options = {'style_strength': 1.0, 'style_token': None}
    first, token = service._embedding(arbitrary_stylizer, dict(options, style_image=styles[0]), photo)
    again, other = service._embedding(arbitrary_stylizer, dict(options, style_image=styles[0]), photo)
    np.testing.assert_array_equal(again, first)
    assert len(calls) == 1  # the second request's style came from the cache
    assert re.fullmatch('[0-9a-f]{32}', token) and other != token  # random, not the content's hash
    by_token, same = service._embedding(arbitrary_stylizer, dict(options, style_image=None, style_token=token), photo)
    np.testing.assert_array_equal(by_token, first)
    assert same == token and len(calls) == 1
    for style in styles[1:]:
        service._embedding(arbitrary_stylizer, dict(options, style_image=style), photo)
    assert len(service.embeddings.embeddings) == 2 and len(calls) == 3
    with pytest.raises(work.HTTPError, match='style_token is unknown or expired') as gone:
        service._embedding(arbitrary_stylizer, dict(options, style_image=None, style_token=token), photo)
    assert gone.value.status == 410  # its embedding was dropped: the client sends the image again
    service._embedding(arbitrary_stylizer, dict(options, style_image=styles[0]), photo)  # dropped as the least recent
    assert len(calls) == 4
    with pytest.raises(work.HTTPError, match='issued by another model') as elsewhere:
        service.embeddings.by_token(service.embeddings.issue((id(service), b'')), id(arbitrary_stylizer))
    assert elsewhere.value.status == 400


def test_a_style_token_stands_for_the_style_image_sent_before(server):
    (photo, _), (style, _) = png(30, 41, seed=1), png(48, 40, seed=2)
    status, headers, first = request(server + '/v1/stylize/any?format=png', *multipart(image=photo, style_image=style))
    token = headers['x-style-token']
    assert status == 200 and re.fullmatch('[0-9a-f]{32}', token)
    status, headers, again = request(server + '/v1/stylize/any?format=png&style_token=' + token, photo)
    assert status == 200 and again == first and headers['x-style-token'] == token
    payload = json.dumps({'image': base64.b64encode(photo).decode(), 'format': 'png', 'style_token': token})
    status, _, body = request(server + '/v1/stylize/any/base64', payload.encode(), {'Content-Type': 'application/json'})
    assert status == 200 and base64.b64decode(json.loads(body)['image']) == first
    assert json.loads(body)['style_token'] == token
    for query, data, status, message in [
            ('any?style_token=' + '0' * 32, photo, 410, 'style_token is unknown or expired'),
            ('any?style_token=' + token.upper(), photo, 400, 'style_token must be the 32 hex digits'),
            ('tiny?style_token=' + token, photo, 400, 'style_image, style_token and style_strength apply to'),
            ('any?style_token=' + token, multipart(image=photo, style_image=style), 400, 'send the style once')]:
        answer, headers, body = request(server + '/v1/stylize/' + query, *(data if isinstance(data, tuple) else
                                                                         (data,)))
        assert answer == status and message in json.loads(body)['error'], body
        assert 'x-style-token' not in headers


@NEEDS_CHROMIUM
def test_the_page_uploads_a_style_image(server, tmp_path):
    photo, style = tmp_path / 'photo.png', tmp_path / 'style.png'
    photo.write_bytes(png(40, 60, seed=5)[0])
    style.write_bytes(png(50, 50, seed=6)[0])
    with service_page(server, 2) as (playwright_api, page):
        page.select_option('#model', 'any')
        playwright_api.expect(page.locator('#style_pick')).to_be_visible()
        page.set_input_files('#file', str(photo))
        page.click('#go')
        playwright_api.expect(page.locator('#status')).to_have_text('choose a style image first')
        page.set_input_files('#style_file', str(style))
        sent = []
        page.on('request', lambda sending: '/v1/stylize/' in sending.url and sent.append(
            (sending.url, sending.headers.get('content-type', ''))))
        page.click('#go')
        playwright_api.expect(page.locator('#status')).to_have_text(re.compile('^done in'))
        assert page.locator('#result').evaluate('image => image.naturalWidth') == 60
        page.evaluate("() => { document.querySelector('#status').textContent = ''; }")
        page.click('#go')  # the same style again: its token, not the image
        playwright_api.expect(page.locator('#status')).to_have_text(re.compile('^done in'))
        assert sent[0][1].startswith('multipart/form-data') and 'style_token' not in sent[0][0]
        assert re.search('style_token=[0-9a-f]{32}', sent[1][0]) and sent[1][1] == 'image/png'
        page.evaluate("() => { sentStyle.token = '0'.repeat(32); document.querySelector('#status').textContent = ''; }")
        page.click('#go')  # a token the service does not hold (restarted, or the style dropped): 410, then the image
        playwright_api.expect(page.locator('#status')).to_have_text(re.compile('^done in'))
        assert 'style_token=' + '0' * 32 in sent[2][0] and sent[3][1].startswith('multipart/form-data')
        page.select_option('#model', 'tiny')
        playwright_api.expect(page.locator('#style_pick')).to_be_hidden()


def test_demo_serves_the_arbitrary_style_network_once_downloaded(arbitrary_checkpoint, tmp_path, monkeypatch):
    import os
    import shutil
    import serve
    monkeypatch.chdir(tmp_path)
    assert 'any' not in serve.demo_models()
    os.makedirs('pretrained/arbitrary_style_transfer')
    for suffix in ('.index', '.data-00000-of-00001'):
        shutil.copy(arbitrary_checkpoint + suffix, 'pretrained/arbitrary_style_transfer/model.ckpt' + suffix)
    assert serve.demo_models()['any'] == os.path.join('pretrained', 'arbitrary_style_transfer', 'model.ckpt')
