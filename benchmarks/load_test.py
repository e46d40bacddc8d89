"""Load test of serve.py on this machine's loopback: requests per second, latency and memory.

  python benchmarks/load_test.py [--model models/wave.ckpt] [--sizes 256,512] [--clients 1,8,32] [--requests 24]
                                  [--mixed 16] [--abusive 60]

Starts the service on 127.0.0.1 with its default limits, then for every image size and number of concurrent
clients sends --requests requests (stopping early after --seconds), and prints a table: successful requests per
second, median and 99th-percentile latency, how many were turned away (429, the bounded queue) or timed out, and
the server's resident memory before and after. A row sends --mixed requests from one client, each image of
another size near 512 pixels, where memory that a kernel keeps per input size would show as growth. A last row
repeats 512 pixels with 8 clients while --abusive connections attack: half withhold the last byte of a body of
--abusive_bytes, half send half a request's headers and nothing more; it shows what the honest clients still get
and the server's peak memory. It talks only to the server it started, and stops it at the end.
"""
import argparse
import io
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import numpy as np
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from utils import ArgumentParser  # noqa: E402 (after the path it lives on)


def start_server(model):
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen([sys.executable, os.path.join(ROOT, 'serve.py'), '--port', str(port), '--model',
                                'm=' + model],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = 'http://127.0.0.1:%d' % port
    for _ in range(300):
        try:
            urllib.request.urlopen(url + '/healthz', timeout=1).read()
            return process, url + '/v1/stylize/m'
        except OSError:
            time.sleep(0.3)
    process.kill()
    raise SystemExit('the server did not start')


def resident_mb(pid):
    with open('/proc/%d/status' % pid) as status:
        return next(int(line.split()[1]) for line in status if line.startswith('VmRSS')) / 1024


def post(url, data):
    start = time.time()
    try:
        urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=300).read()
        status = 200
    except urllib.error.HTTPError as error:
        status = error.code
    return status, time.time() - start


def jpeg(side, seed):
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (side, side, 3), np.uint8)).save(
        buffer, format='JPEG', quality=90)
    return buffer.getvalue()


def peak_mb(pid):
    with open('/proc/%d/status' % pid) as status:
        return next(int(line.split()[1]) for line in status if line.startswith('VmHWM')) / 1024


def attack(url, count, body_bytes):
    """Start `count` abusive connections to the service at `url`, half withholding the last byte of a body of
    body_bytes, half sending half of a request's headers; returns their sockets, to close when done."""
    host, port = url.split('/')[2].split(':')
    path = ('/' + url.split('/', 3)[3]).encode()
    sockets = []

    def withhold(sock):
        try:
            sock.sendall(b'POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n' % (path, body_bytes))
            sock.sendall(b'\xff\xd8\xff' + b'\0' * (body_bytes - 4))
        except OSError:  # turned away (429) and closed before the body was sent
            pass
    for index in range(count):
        sock = socket.create_connection((host, int(port)), timeout=120)
        sockets.append(sock)
        if index % 2:
            sock.sendall(b'POST %s HTTP/1.1\r\nHost: x\r\n' % path)
        else:
            threading.Thread(target=withhold, args=(sock,), daemon=True).start()
    return sockets


def run_cell(url, payloads, clients, requests, seconds):
    """Send `requests` requests from `clients` threads, the i-th with payloads[i % len(payloads)]; returns
    (latencies of 200s, other statuses, wall time)."""
    lock, sent, results = threading.Lock(), [0], []
    deadline = time.time() + seconds

    def client():
        while time.time() < deadline:
            with lock:
                if sent[0] >= requests:
                    return
                data = payloads[sent[0] % len(payloads)]
                sent[0] += 1
            result = post(url, data)
            with lock:
                results.append(result)
    start = time.time()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [t for s, t in results if s == 200], [s for s, _ in results if s != 200], time.time() - start


def main():
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--model', default=os.path.join(ROOT, 'models', 'wave.ckpt'),
                        help='a model path for serve.py (default: the shipped wave model)')
    parser.add_argument('--sizes', default='256,512', help='square image sides (default: %(default)s)')
    parser.add_argument('--clients', default='1,8,32', help='concurrent clients (default: %(default)s)')
    parser.add_argument('--requests', type=int, default=24, help='requests per cell (default: %(default)s)')
    parser.add_argument('--seconds', type=float, default=120, help='time limit per cell (default: %(default)s)')
    parser.add_argument('--mixed', type=int, default=16,
                        help='requests of distinct sizes in the last row, 0 for none (default: %(default)s)')
    parser.add_argument('--abusive', type=int, default=60,
                        help='abusive connections in the last row, 0 for none (default: %(default)s)')
    parser.add_argument('--abusive_bytes', type=int, default=19 * 1024 * 1024,
                        help='the body the withholding half declares (default: %(default)s, just under the limit)')
    args = parser.parse_args()
    process, url = start_server(args.model)
    try:
        print('| size | clients | requests/s | p50 ms | p99 ms | turned away (429) / timed out | RSS before -> after |')
        print('|---|---|---|---|---|---|---|')
        cells = []
        for size in map(int, args.sizes.split(',')):
            data = jpeg(size, size)
            post(url, data)  # warm-up: the first run of a size sets up its kernels
            cells += [(str(size), [data], clients) for clients in map(int, args.clients.split(','))]
        if args.mixed:
            sides = [512 + 4 * i for i in range(args.mixed)]
            cells.append(('%d to %d, each once' % (sides[0], sides[-1]), [jpeg(side, side) for side in sides], 1))
        if args.abusive:
            cells.append(('512 under attack (%d abusive connections)' % args.abusive, [jpeg(512, 512)], 8))
        for label, payloads, clients in cells:
            requests = len(payloads) if len(payloads) > 1 else args.requests
            before = resident_mb(process.pid)
            attackers = attack(url, args.abusive, args.abusive_bytes) if 'attack' in label else []
            latencies, others, wall = run_cell(url, payloads, clients, requests, args.seconds)
            after = resident_mb(process.pid)
            for sock in attackers:
                sock.close()
            p50, p99 = (np.percentile(latencies, [50, 99]) * 1000) if latencies else (float('nan'),) * 2
            print('| %s | %d | %.2f | %.0f | %.0f | %d / %d | %.0f -> %.0f MB%s |'
                  % (label, clients, len(latencies) / wall, p50, p99, others.count(429), others.count(504),
                     before, after, ' (peak %.0f)' % peak_mb(process.pid) if attackers else ''), flush=True)
    finally:
        process.terminate()
        process.wait(30)


if __name__ == '__main__':
    main()
