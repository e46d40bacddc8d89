"""serve.py under abuse, with real sockets on 127.0.0.1: withheld and slow bodies with the server's memory
measured, slow headers under a low file-descriptor limit, hostile bodies, formats and sizes, the 504 that stops
the work, and what start-up refuses. Every wait is for an event, with a generous deadline."""
import base64
import io
import json
import re
import resource
import select
import socket
import sys
import threading
import time

import pytest
from PIL import Image

import export
import serve
from helpers import png, png_header, request, start_server


REQUEST_LINE = re.compile(r'\d\d:\d\d:\d\d (GET|POST|PUT|DELETE|HEAD|OPTIONS|PATCH) /\S* \d{3} \d+ bytes \d+ ms$')


def _stop(process):
    """Stop a server; returns its log (stderr)."""
    process.terminate()
    _, log = process.communicate(timeout=60)
    return log


def _peak_memory_mb(pid):
    """The process's peak resident memory so far (VmHWM), in MB."""
    with open('/proc/%d/status' % pid) as status:
        return next(int(line.split()[1]) for line in status if line.startswith('VmHWM')) / 1024


def _address(url):
    host, port = url.rsplit('/', 1)[-1].split(':')
    return host, int(port)


def _status_line(sock, timeout):
    """The HTTP status code the server sends on `sock` within `timeout` seconds, or None (no answer, or closed)."""
    sock.settimeout(timeout)
    try:
        data = sock.recv(4096)
    except (socket.timeout, ConnectionError):
        return None
    return int(data.split()[1]) if data.startswith(b'HTTP/1.1 ') else None


def _withholding_client(url, size, results):
    """POST a raw image body declared as `size` bytes: wait for an early answer (the way a client sending
    Expect: 100-continue would), else send all but the last byte and wait for the server's answer."""
    sock = socket.create_connection(_address(url), timeout=30)
    try:
        sock.sendall(b'POST /v1/stylize/tiny HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n' % size)
        if select.select([sock], [], [], 1.0)[0]:
            results.append(_status_line(sock, 5))
            return
        try:
            sock.sendall(b'\x89PNG\r\n\x1a\n' + b'\0' * (size - 9))
        except ConnectionError:
            pass
        results.append(_status_line(sock, 60))
    finally:
        sock.close()


def test_withheld_bodies_are_cut_off_and_their_memory_bounded_by_the_queue(trained_model):
    size, queue = 10 << 20, 3
    process, url = start_server('--model', 'tiny=' + trained_model, '--max_request_bytes', str(size + 1),
                                '--queue', str(queue), '--body_timeout', '4')
    try:
        before = _peak_memory_mb(process.pid)
        results = []
        clients = [threading.Thread(target=_withholding_client, args=(url, size, results)) for _ in range(30)]
        for client in clients:
            client.start()
        for client in clients:
            client.join(120)
        growth = _peak_memory_mb(process.pid) - before
        assert sorted(results) == [408] * queue + [429] * (30 - queue)
        # Bodies in flight: at most --queue of them (30 MB here); all 30 read would be 300 MB.
        assert growth < 150, growth
        status, _, body = request(url + '/healthz')
        assert status == 200 and json.loads(body)['in_progress'] == 0
    finally:
        _stop(process)


def test_slow_headers_are_closed_and_connections_capped_under_a_low_descriptor_limit(trained_model):
    process, url = start_server('--model', 'tiny=' + trained_model, '--header_timeout', '10',
                                limits={resource.RLIMIT_NOFILE: 64})
    try:
        slow = []
        for _ in range(70):  # the kernel's short accept queue makes some of these wait a few seconds
            sock = socket.create_connection(_address(url), timeout=30)
            sock.sendall(b'POST /v1/stylize/tiny HTTP/1.1\r\nHost: x\r\n')  # and never the rest
            slow.append(sock)
        refused = [sock for sock in slow if _status_line(sock, 0.5) == 503]
        held = [sock for sock in slow if sock not in refused]
        assert len(refused) >= 30 and len(held) <= 30, (len(refused), len(held))
        deadline = time.time() + 60
        while request(url + '/healthz')[0] != 200:  # once the header timeout has closed the slow ones
            assert time.time() < deadline, 'the server never answered again'
            time.sleep(0.2)
        assert all(_status_line(sock, 10) is None for sock in held)  # closed without an answer
        for sock in slow:
            sock.close()
    finally:
        log = _stop(process)
    assert 'lowered to' in log and 'to fit the file-descriptor limit (ulimit -n 64)' in log
    other = [line for line in log.splitlines() if not REQUEST_LINE.match(line)]  # beside a line per request
    assert 'Traceback' not in log and len(other) < 10, log[-3000:]


def _image(fmt):
    buffer = io.BytesIO()
    Image.new('RGB', (16, 16), 'red').save(buffer, format=fmt)
    return buffer.getvalue()


def _base64_json(extra):
    return ('{"image": "%s", %s}' % (base64.b64encode(png(8, 8)[0]).decode(), extra)).encode()


@pytest.fixture(scope='module')
def small_server(trained_model):
    process, url = start_server('--model', 'tiny=' + trained_model, '--max_image_pixels', '100000000')
    yield url
    log = _stop(process)
    assert 'Traceback' not in log


@pytest.mark.parametrize('raw', [
    b'POST /v1/stylize/tiny HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n',
    b'POST /v1/stylize/tiny HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello',
    b'POST /v1/stylize/tiny HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nZZZ\r\nhello\r\n0\r\n\r\n',
    b'GARBAGE\r\n\r\n',
])
def test_malformed_http_gets_a_json_400(small_server, raw):
    host, port = small_server.split('//')[1].split(':')
    with socket.create_connection((host, int(port)), timeout=30) as connection:
        connection.sendall(raw)
        answer = b''
        while chunk := connection.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b'\r\n\r\n')
    assert head.startswith(b'HTTP/1.1 400') and b'content-type: application/json' in head.lower()
    assert json.loads(body)['error'].startswith('malformed HTTP request')


@pytest.mark.parametrize('path,data,status,message', [
    ('/v1/stylize/tiny/base64', b'{"image": ' + b'[' * 100000 + b']' * 100000 + b'}', 400,
     'holds more than 65536 bytes besides the image'),
    ('/v1/stylize/tiny/base64', b'{"image": ' + b'[' * 30000 + b']' * 30000 + b'}', 400, 'nested too deeply'),
    ('/v1/stylize/tiny/base64', _base64_json('"max_size": 1e400'), 400, 'must be a finite whole number, got inf'),
    ('/v1/stylize/tiny/base64', _base64_json('"max_size": Infinity'), 400, 'max_size must be a finite whole number'),
    ('/v1/stylize/tiny/base64', _base64_json('"strength": NaN'), 400, 'strength must be between 0 and 1'),
    ('/v1/stylize/tiny/base64', _base64_json('"max_size": "' + 'x' * 100000 + '"'), 400, 'a finite whole number'),
    ('/v1/stylize/tiny', _image('ICO'), 415, 'not a JPEG, PNG or WebP image'),
    ('/v1/stylize/tiny', _image('GIF'), 415, 'not a JPEG, PNG or WebP image'),
    ('/v1/stylize/tiny', b'%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n', 415, 'not a JPEG'),
    ('/v1/stylize/tiny', png_header(12000, 12000), 413, 'is too large: 12000x12000 is over the limit of 100000000'),
    ('/v1/stylize/tiny', png_header(15000, 15000), 413, 'too large: over the limit of 100000000'),  # Pillow's limit
    ('/v1/stylize/tiny', _image('WEBP'), 200, None),
    ('/v1/stylize/tiny', _image('JPEG'), 200, None),
    ('/v1/stylize/tiny?format=webp', png(2, 16400)[0], 400, 'a 16400x2 result is larger than WEBP can hold'),
])
def test_hostile_bodies_get_json_4xx_and_never_reach_a_decoder(small_server, path, data, status, message):
    started = time.time()
    got, headers, body = request(small_server + path, data)
    assert got == status, body[:300]
    assert time.time() - started < 30  # the header check answers before any decoding
    if message:
        assert headers['content-type'] == 'application/json' and message in json.loads(body)['error']
        assert len(json.loads(body)['error']) < 300


def test_405_names_the_method_and_answers_carry_security_headers(small_server):
    status, headers, body = request(small_server + '/v1/stylize/tiny')
    assert status == 405 and headers['allow'] == 'POST' and 'takes POST' in json.loads(body)['error']
    assert headers['x-content-type-options'] == 'nosniff'
    status, headers, _ = request(small_server + '/')
    assert "default-src 'none'" in headers['content-security-policy']
    assert "script-src 'sha256-" in headers['content-security-policy'] and headers['x-frame-options'] == 'DENY'
    models = json.loads(request(small_server + '/v1/models')[2])['models']
    assert models == [{'name': 'tiny', 'kind': 'checkpoint', 'styles': 1, 'style_image': False, 'style_names': [],
                       'strokes': [], 'precision': 'float32', 'max_pixels': None}]  # no server paths


def test_a_504_stops_the_work_and_a_full_queue_answers_429(trained_model, tmp_path):
    lite = str(tmp_path / 'tiny.tflite')
    export.main(['--model_file', trained_model, '--format', 'tflite', '--output', lite])
    # 4096 pixels at once: a 300x300 image runs in 175 tile runs, far longer than the 1 s timeout.
    process, url = start_server('--model', 'tiny=' + trained_model, '--model', 'lite=' + lite, '--memory_pixels',
                                '4096', '--timeout', '1', '--queue', '1', '--workers', '1')
    try:
        status, _, body = request(url + '/v1/stylize/lite', png(100, 100)[0])
        assert status == 413 and 'stylizes at most 4096 pixels at once' in json.loads(body)['error']
        assert request(url + '/v1/stylize/lite', png(40, 50)[0])[0] == 200  # within its size: served
        assert json.loads(request(url + '/v1/models')[2])['models'][0] == {
            'name': 'lite', 'kind': 'TFLite model', 'styles': 1, 'style_image': False, 'style_names': [],
            'strokes': [], 'precision': 'float32', 'max_pixels': 4096}
        statuses = []
        first = threading.Thread(target=lambda: statuses.append(request(url + '/v1/stylize/tiny',
                                                                        png(300, 300)[0])[0]))
        first.start()
        deadline = time.time() + 60
        while json.loads(request(url + '/healthz')[2])['in_progress'] == 0:  # the first is admitted
            assert time.time() < deadline
            time.sleep(0.05)
        statuses += [request(url + '/v1/stylize/tiny', png(20, 20)[0])[0] for _ in range(3)]
        first.join(120)
        assert sorted(statuses) == [429, 429, 429, 504]
        while json.loads(request(url + '/healthz')[2])['in_progress'] != 0:  # the worker gives up too
            assert time.time() < deadline
            time.sleep(0.1)
    finally:
        log = _stop(process)
    stopped = [line for line in log.splitlines() if 'stopped a request past its 1 s deadline' in line]
    assert len(stopped) == 1
    done, total = map(int, stopped[0].split('stopped after ')[1].split(' tile runs')[0].split(' of '))
    assert done < total == 175
    assert 'tile run' not in log.replace(stopped[0], '')  # no progress bars in the server's log


def test_start_up_refuses_bad_names(trained_model, tmp_path):
    from helpers import run_command
    shipped = sorted(serve.shipped_models())[0]
    for argv, message in [(['--model', 'a/b=' + trained_model], "model name 'a/b' must be letters, digits"),
                          (['--model', 'x=' + trained_model, '--model', 'x=' + trained_model], "'x' is given twice"),
                          (['--demo', '--model', shipped + '=' + trained_model], "'%s' is given twice" % shipped),
                          (['--demo', '--body_timeout', 'inf'], '--body_timeout must be a positive number')]:
        done = run_command('serve.py', *argv, cwd=tmp_path, timeout=120)
        assert done.returncode == 2 and message in done.stderr, done.stderr


def test_demo_without_shipped_models_says_how_to_restore_them(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(serve, 'SHIPPED_MODELS', str(tmp_path))
    with pytest.raises(SystemExit) as exit_info:
        serve.parse_args(['--demo'])
    assert exit_info.value.code == 2
    assert 'none is there (restore them with git checkout models' in capsys.readouterr().err


def test_the_descriptor_limit_is_raised_as_far_as_each_system_allows(monkeypatch):
    from service import guard
    limits, granted = {'soft': 256, 'hard': resource.RLIM_INFINITY}, []

    def set_limit(kind, values):  # as macOS: an unlimited hard limit, but no soft limit above OPEN_MAX
        if values[0] > guard.MACOS_OPEN_MAX:
            raise ValueError('current limit exceeds maximum limit')
        granted.append(values)
        limits['soft'] = values[0]
    monkeypatch.setattr(resource, 'getrlimit', lambda kind: (limits['soft'], limits['hard']))
    monkeypatch.setattr(resource, 'setrlimit', set_limit)
    assert guard.descriptor_limit() == guard.MACOS_OPEN_MAX
    assert granted == [(guard.MACOS_OPEN_MAX, resource.RLIM_INFINITY)]  # the hard limit left as it was
    limits.update(soft=64, hard=4096)  # as Linux: up to the hard limit
    assert guard.descriptor_limit() == 4096 and limits['soft'] == 4096
    assert guard.connection_limits(100) == (100, 128)
    limits.update(soft=40, hard=40)
    with pytest.raises(serve.UsageError, match=r'ulimit -n 40\) leaves room for 0 connections; raise it to at '):
        guard.connection_limits(100)
    monkeypatch.setitem(sys.modules, 'resource', None)  # as Windows: no such limit
    assert guard.descriptor_limit() is None and guard.connection_limits(100) == (100, 128)
