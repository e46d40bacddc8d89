"""The HTTP service, started for real on 127.0.0.1: endpoints, errors, limits, concurrency, and the page."""
import base64
import io
import json
import os
import re
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from PIL import Image

import export
from helpers import (BF16_FALLBACK, CPU_HAS_BF16, NEEDS_CHROMIUM, NO_BF16, ROOT, png, request, service_page,
                     start_server)
from images import encode_image
from inference import color
from inference.stylizer import Stylizer


@pytest.fixture(scope='module')
def server(trained_model, tmp_path_factory):
    frozen = str(tmp_path_factory.mktemp('served') / 'tiny.pb')
    export.main(['--model_file', trained_model, '--output', frozen])
    process, url = start_server('--model', 'tiny=' + trained_model, '--model', 'frozen=' + frozen,
                                 '--max_request_bytes', '300000', '--max_pixels', '40000')
    yield url
    process.terminate()
    process.wait(30)


def test_health_models_and_page(server):
    status, _, body = request(server + '/healthz')
    assert status == 200 and json.loads(body)['status'] == 'ok'
    assert [m['name'] for m in json.loads(request(server + '/v1/models')[2])['models']] == ['frozen', 'tiny']
    status, headers, body = request(server + '/')
    assert status == 200 and headers['content-type'].startswith('text/html') and b'/v1/stylize/' in body


def test_raw_bytes_in_image_out_with_evals_pixels(server, trained_model):
    data, pixels = png(30, 41)
    status, headers, body = request(server + '/v1/stylize/tiny', data)
    assert status == 200 and headers['content-type'] == 'image/png'
    assert headers['x-image-size'] == '41x30' and float(headers['x-stylize-ms']) > 0
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(body))), Stylizer(trained_model)(pixels))


def test_base64_round_trip_equals_eval(server, trained_model):
    data, pixels = png(25, 33, seed=1)
    payload = json.dumps({'image': base64.b64encode(data).decode(), 'format': 'png'}).encode()
    status, _, body = request(server + '/v1/stylize/frozen/base64', payload, {'Content-Type': 'application/json'})
    answer = json.loads(body)
    assert status == 200 and (answer['width'], answer['height'], answer['format']) == (33, 25, 'png')
    assert answer['ms'] > 0
    result = np.asarray(Image.open(io.BytesIO(base64.b64decode(answer['image']))))
    reference = Stylizer(trained_model)(pixels).astype(int)
    assert np.abs(result.astype(int) - reference).max() <= 1  # the frozen graph: eval's pixels up to rounding


def test_multipart_formats_and_options(server):
    data, pixels = png(40, 40, seed=2, mode='RGBA')
    boundary = 'xYzBoundary'
    head = ('--%s\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n'
            'Content-Type: image/png\r\n\r\n' % boundary)
    multipart = head.encode() + data + ('\r\n--%s--\r\n' % boundary).encode()
    status, headers, body = request(server + '/v1/stylize/tiny?max_size=20', multipart,
                                     {'Content-Type': 'multipart/form-data; boundary=' + boundary,
                                      'Accept': 'image/webp'})
    assert status == 200 and headers['content-type'] == 'image/webp'
    assert Image.open(io.BytesIO(body)).size == (20, 20)
    status, headers, body = request(server + '/v1/stylize/tiny?strength=0&format=png', data)
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(body))), pixels)  # alpha kept, photo returned
    status, headers, _ = request(server + '/v1/stylize/tiny?preserve_colors=true&format=jpeg', data)
    assert status == 200 and headers['content-type'] == 'image/jpeg'
    stylized = np.asarray(Image.open(io.BytesIO(request(server + '/v1/stylize/tiny?format=png', data)[2])))
    for quality in (20, 95):  # eval.py's --quality, default 95: the same JPEG of the same pixels
        query = '?format=jpeg' + ('&quality=%d' % quality if quality != 95 else '')
        status, _, body = request(server + '/v1/stylize/tiny' + query, data)
        assert status == 200 and body == encode_image(stylized[..., :3], 'JPEG', quality=quality)


def test_preserve_colors_and_strength_give_evals_pixels(server, trained_model):
    data, pixels = png(30, 26, seed=9)
    stylized = Stylizer(trained_model)(pixels)
    status, _, body = request(server + '/v1/stylize/tiny?preserve_colors=true&strength=0.6&format=png', data)
    assert status == 200
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(body))),
                                  color.finish(stylized, pixels, preserve_colors=True, strength=0.6))
    # (test_inference checks eval's colour preservation itself against an independent YCbCr.)


def test_the_pixel_budget_never_runs_two_large_images_at_once():
    from service.work import PixelBudget
    budget, lock, running, peak = PixelBudget(100), threading.Lock(), [0], [0]
    together = threading.Barrier(3, timeout=30)

    def work(wait_for_others):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        if wait_for_others:
            together.wait()  # three small images must be able to run at once
        else:
            time.sleep(0.05)
        with lock:
            running[0] -= 1
    deadline = time.monotonic() + 60
    large = [threading.Thread(target=budget.run, args=(80, lambda: work(False), deadline)) for _ in range(4)]
    for thread in large:
        thread.start()
    for thread in large:
        thread.join()
    assert peak[0] == 1
    peak[0] = 0
    small = [threading.Thread(target=budget.run, args=(30, lambda: work(True), deadline)) for _ in range(3)]
    for thread in small:
        thread.start()
    for thread in small:
        thread.join()
    assert peak[0] == 3 and budget.in_use == 0


@pytest.mark.parametrize('told_no_bf16', [False, True])
def test_precision_bf16_reaches_the_served_model_or_the_log_says_float32(trained_model, told_no_bf16):
    process, url = start_server('--model', 'tiny=' + trained_model, '--precision', 'bf16',
                                env=NO_BF16 if told_no_bf16 else None)
    try:
        data, pixels = png(48, 40, seed=10)
        status, _, body = request(url + '/v1/stylize/tiny?format=png', data)
        models = json.loads(request(url + '/v1/models')[2])['models']
    finally:
        process.terminate()
        process.wait(30)
    log = process.stderr.read()
    difference = np.abs(np.asarray(Image.open(io.BytesIO(body))).astype(int) - Stylizer(trained_model)(pixels))
    assert status == 200 and re.search(r'POST /v1/stylize/tiny 200 \d+ bytes \d+ ms', log)  # a line per request
    if CPU_HAS_BF16 and not told_no_bf16:
        assert 0 < difference.mean() < 3  # bfloat16 convolutions: close, not the same
        assert models[0]['precision'] == 'bfloat16' and 'precision: bfloat16 convolutions' in log
        assert re.search(r'serving tiny on http://\S+ in bfloat16 ', log)
    else:
        assert difference.max() == 0 and models[0]['precision'] == 'float32' and log.count(BF16_FALLBACK) == 1
        assert re.search(r'serving tiny on http://\S+ in float32 ', log)


def _multipart(parts):
    """A multipart body of (field name, file name or None for a text field, bytes) parts, and its headers."""
    body = b''
    for name, filename, data in parts:
        disposition = 'form-data; name="%s"' % name + ('; filename="%s"' % filename if filename else '')
        body += ('--B\r\nContent-Disposition: %s\r\n\r\n' % disposition).encode() + data + b'\r\n'
    return body + b'--B--\r\n', {'Content-Type': 'multipart/form-data; boundary=B'}


@pytest.mark.parametrize('path,data,headers,status,message', [
    ('/v1/stylize/nope', b'x', {}, 404, "unknown model 'nope' (available: frozen, tiny)"),
    ('/v1/stylize/tiny', b'not an image', {}, 415, 'the request body is not a JPEG, PNG or WebP image'),
    ('/v1/stylize/tiny', b'', {}, 400, 'the request body is empty'),
    ('/v1/stylize/tiny', b'\x89PNG\r\n\x1a\n' + b'\0' * 30, {}, 400, 'the request body is not a readable image'),
    ('/v1/stylize/tiny', b'\0' * 400000, {}, 413, 'over the limit of 300000'),
    ('/v1/stylize/tiny', 'BIG', {}, 413, 'is over the limit of 40000 pixels'),
    ('/v1/stylize/tiny?strength=2', 'SMALL', {}, 400, 'strength must be between 0 and 1'),
    ('/v1/stylize/tiny?max_size=-3', 'SMALL', {}, 400, 'max_size must be positive'),
    ('/v1/stylize/tiny?max_size=big', 'SMALL', {}, 400, "max_size must be a finite whole number, got 'big'"),
    ('/v1/stylize/tiny?format=gif', 'SMALL', {}, 400, 'format must be one of png, jpeg, webp'),
    ('/v1/stylize/tiny?preserve_colors=maybe', 'SMALL', {}, 400, 'preserve_colors must be true or false'),
    ('/v1/stylize/tiny/base64', b'{"image": "%%%"}', {}, 400, '"image" is not valid base64'),
    ('/v1/stylize/tiny/base64', b'[1, 2]', {}, 400, 'needs "image": a base64 string'),
    ('/v1/stylize/tiny/base64', b'{not json', {}, 400, 'the body must be JSON'),
    ('/v1/stylize/tiny', b'--b\r\n\r\n', {'Content-Type': 'multipart/form-data; boundary=b'}, 400, 'multipart'),
    ('/v1/stylize/tiny?qualty=90', 'SMALL', {}, 400, "unknown option 'qualty' (did you mean 'quality'?)"),
    ('/v1/stylize/tiny?x=1', 'SMALL', {}, 400, "unknown option 'x' (the options are: max_size, strength,"),
    ('/v1/stylize/tiny?quality=0', 'SMALL', {}, 400, 'quality must be between 1 and 100, got 0'),
    ('/v1/stylize/tiny?strength=1&strength=0', 'SMALL', {}, 400, "option 'strength' is given twice; give it once"),
    ('/v1/stylize/tiny/base64', b'{"image": "", "strength": 1, "strength": 0}', {}, 400,
     "key 'strength' in the JSON body is given twice; give it once"),
    ('/v1/stylize/tiny/base64', b'{"image": "", "style": {"a": 1, "a": 2}}', {}, 400,
     "key 'a' in the JSON body is given twice"),
    ('/v1/stylize/tiny/base64', b'{"image": "", "strenght": 0.5}', {}, 400,
     "unknown option 'strenght' (did you mean 'strength'?)"),
    ('/v1/stylize/tiny', 'TWO_PHOTOS', {}, 400, 'the multipart body holds 2 photos and 0 style images; send one'),
    ('/v1/stylize/tiny', 'TEXT_FIELD', {}, 400, "the multipart body has the text field 'strength': only files go in"),
    ('/v1/nothing', None, {}, 404, 'no such endpoint'),
])
def test_errors_are_json_with_the_right_status(server, path, data, headers, status, message):
    parts = {'TWO_PHOTOS': [('image', 'a.png'), ('file', 'b.png')],
             'TEXT_FIELD': [('image', 'a.png'), ('strength', None)]}
    if data in parts:
        data, headers = _multipart([(name, filename, png(8, 8)[0] if filename else b'0.5')
                                    for name, filename in parts[data]])
    data = {'BIG': png(250, 200)[0], 'SMALL': png(8, 8)[0]}.get(data, data)
    got, response_headers, body = request(server + path, data, headers)
    assert got == status and response_headers['content-type'] == 'application/json'
    assert message in json.loads(body)['error']


def _concurrently(url, data, clients):
    """The statuses of `clients` requests sent at the same moment from as many threads."""
    barrier, statuses = threading.Barrier(clients), []

    def client():
        barrier.wait()
        statuses.append(request(url, data)[0])
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses


def test_concurrent_requests(server):
    assert _concurrently(server + '/v1/stylize/tiny', png(48, 48, seed=3)[0], 8) == [200] * 8


def test_cli_errors(tmp_path):
    run = lambda *args: subprocess.run([sys.executable, os.path.join(ROOT, 'serve.py'), *args],  # noqa: E731
                                       capture_output=True, text=True, timeout=120)
    result = run()
    assert result.returncode == 2 and 'name at least one --model NAME=PATH' in result.stderr
    result = run('--model', 'candy')
    assert result.returncode == 2 and '--model takes NAME=PATH' in result.stderr
    result = run('--model', 'x=' + str(tmp_path / 'none'))
    assert result.returncode == 2 and 'model file not found' in result.stderr


def _wait_for_result_width(page, width):
    """Wait until the result image shown has `width` (a timeout fails the test): Chromium reports 0 while a new
    image decodes, and the status line can change first."""
    page.wait_for_function("width => document.querySelector('#result').naturalWidth === width", arg=width,
                           timeout=15000)


@NEEDS_CHROMIUM
def test_the_page_in_a_real_browser(server, tmp_path):
    photo = tmp_path / 'photo.png'
    photo.write_bytes(png(40, 60, seed=5)[0])
    with service_page(server, 2) as (playwright_api, page):
        page.select_option('#model', 'tiny')
        page.set_input_files('#file', str(photo))
        page.click('#go')
        playwright_api.expect(page.locator('#status')).to_have_text(re.compile('^done in'))
        _wait_for_result_width(page, 60)
        assert ' ms (60x40)' in page.text_content('#status')
        assert page.locator('#max_size').evaluate('input => getComputedStyle(input).width') == '96px'  # style


@NEEDS_CHROMIUM
def test_the_page_stylizes_the_camera_live(server):
    camera = ('--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream')
    with service_page(server, 2, *camera) as (playwright_api, page):
        page.select_option('#model', 'tiny')
        page.fill('#max_size', '64')  # Chromium's test camera films 640x480
        answers = []
        page.on('response', lambda response: answers.append(response.headers.get('content-type')))
        page.click('#camera')
        status = page.locator('#status')
        playwright_api.expect(status).to_have_text(re.compile(r'^live: [\d.]+ frames/s, last \d+ ms \(64x48\)$'))
        assert answers and set(answers) == {'image/jpeg'}  # frames come back as JPEG, not PNG
        playwright_api.expect(status).not_to_have_text(status.text_content())  # frame after frame
        assert page.locator('#live').is_visible() and page.locator('#original').is_hidden()
        _wait_for_result_width(page, 64)  # the newest frame may still be decoding (width 0) when polled once
        assert page.locator('#go').is_disabled()
        page.click('#camera')
        playwright_api.expect(status).to_have_text('camera off')
        assert page.locator('#live').evaluate("video => video.srcObject.getTracks().every(track => "
                                              "track.readyState === 'ended')")
        assert page.locator('#live').is_hidden() and page.locator('#camera').text_content() == 'Camera'
    with service_page(server, 2) as (playwright_api, page):  # no camera at all: said, not thrown
        page.click('#camera')
        playwright_api.expect(page.locator('#status')).to_have_text(re.compile('^no camera: '))
        assert page.locator('#status').get_attribute('class') == 'error'
