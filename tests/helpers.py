"""Test helpers that make tiny data: a random-weight VGG checkpoint, images, configs, a workspace."""
import contextlib
import io
import os
import shutil
import socket
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zlib

import numpy as np
import pytest
import yaml
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHROMIUM = shutil.which('chromium') or shutil.which('chromium-browser')  # for the page's browser tests
NEEDS_CHROMIUM = pytest.mark.skipif(CHROMIUM is None, reason='no chromium installed (apt-get install chromium)')
sys.path.insert(0, ROOT)


def _cpu_has_native_bfloat16():
    """Read apart from utils' detection, so that a test fails when bfloat16 does not engage on a CPU that has it."""
    try:
        with open('/proc/cpuinfo') as f:
            flags = next((line.split(':', 1)[1].split() for line in f if line.startswith('flags')), [])
    except OSError:
        return True  # no /proc/cpuinfo: the commands try bfloat16
    return 'avx512_bf16' in flags or 'amx_bf16' in flags


CPU_HAS_BF16 = _cpu_has_native_bfloat16()
NO_BF16 = {'FAST_STYLE_NO_BF16': '1'}  # the environment that tells the commands this CPU lacks native bfloat16
BF16_FALLBACK = 'this CPU has no bfloat16 support (AVX512_BF16/AMX): running float32'

from utils import tf  # noqa: E402,F401  (first: loads TensorFlow quietly)
from nets.pretrained import save_random_vgg  # noqa: E402,F401  (re-exported for the tests)


def write_image_file(path, height, width, mode='RGB', seed=0):
    """A smooth random image (noise blurred by upscaling), so that JPEG keeps it recognisable."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (max(height // 4, 1), max(width // 4, 1), 3), dtype=np.uint8)
    image = Image.fromarray(small).resize((width, height), Image.BILINEAR).convert(mode)
    os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
    image.save(path)
    return path


def write_config(path, **values):
    """A style config with tiny training settings; keyword arguments override or (None) remove keys."""
    config = {
        'style_image': 'style.jpg', 'naming': 'tiny', 'model_path': 'models',
        'content_weight': 1.0, 'style_weight': 50.0, 'tv_weight': 1.0,
        'image_size': 32, 'batch_size': 2, 'epoch': 1, 'loss_model': 'vgg_16',
        'content_layers': ['vgg_16/conv3/conv3_3'],
        'style_layers': ['vgg_16/conv1/conv1_2', 'vgg_16/conv2/conv2_2', 'vgg_16/conv3/conv3_3',
                         'vgg_16/conv4/conv4_3'],
        'checkpoint_exclude_scopes': 'vgg_16/fc', 'loss_model_file': 'vgg/vgg_16.ckpt', 'train_dir': 'train',
    }
    config.update(values)
    with open(path, 'w') as f:
        yaml.safe_dump({k: v for k, v in config.items() if v is not None}, f)
    return str(path)


def make_workspace(folder, vgg_prefix):
    """A training workspace: style.jpg, train/ with mixed JPEG/PNG images of odd sizes, vgg/ linking the VGG."""
    folder = str(folder)
    write_image_file(os.path.join(folder, 'style.jpg'), 48, 40, seed=1)
    sizes = [(40, 50), (33, 47), (64, 36), (45, 45)]
    for i, (h, w) in enumerate(sizes):
        write_image_file(os.path.join(folder, 'train', 'img%d.jpg' % i), h, w, seed=10 + i)
    write_image_file(os.path.join(folder, 'train', 'sub', 'gray.png'), 50, 41, mode='L', seed=20)
    write_image_file(os.path.join(folder, 'train', 'sub', 'rgba.png'), 37, 52, mode='RGBA', seed=21)
    os.makedirs(os.path.join(folder, 'vgg'))
    for suffix in ('.index', '.data-00000-of-00001'):
        os.symlink(vgg_prefix + suffix, os.path.join(folder, 'vgg', 'vgg_16.ckpt' + suffix))
    return folder


def usage_error(main, argv, capsys):
    """Run a command's main expecting a user error: exit status 2 and one 'error: ...' line; returns the line."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2
    assert len(err.splitlines()) == 1 and err.startswith('error: ')
    return err


def run_command(script, *args, cwd, limits=None, timeout=600, root=ROOT, env=None):
    """Run one of our commands as a user would, in a child process with TensorFlow's logging left to the command
    (as in a shell); `limits` maps resource.RLIMIT_* to a value set in the child; `root` is the copy of the project
    whose script runs; `env` adds environment variables. Returns the CompletedProcess."""
    return subprocess.run([sys.executable, os.path.join(root, script), *args], cwd=str(cwd), env=_user_environment(env),
                          preexec_fn=_limits_setter(limits), capture_output=True, text=True, timeout=timeout)


def _user_environment(extra=None):
    """The environment a user's shell gives our commands: without the TF_CPP_MIN_LOG_LEVEL that importing utils set
    in this process, so that the command mutes TensorFlow itself."""
    env = {key: value for key, value in os.environ.items()
           if key not in ('TF_CPP_MIN_LOG_LEVEL', 'FAST_STYLE_MUTED_TF')}
    return {**env, **(extra or {})}


def _limits_setter(limits):
    """A function for a child process to set resource limits {resource.RLIMIT_*: value} (soft and hard)."""
    import resource

    def set_limits():
        for kind, value in (limits or {}).items():
            resource.setrlimit(kind, (value, value))
    return set_limits


def make_video(path, seconds=2, fps=10, size=(48, 32)):
    """A test-pattern video with a sine-tone audio track (H.264 and AAC in MP4)."""
    import imageio_ffmpeg
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), '-v', 'error', '-y', '-f', 'lavfi', '-i',
                    'testsrc=duration=%d:size=%dx%d:rate=%d' % (seconds, size[0], size[1], fps), '-f', 'lavfi',
                    '-i', 'sine=frequency=440:duration=%d' % seconds, '-shortest', '-pix_fmt', 'yuv420p',
                    '-c:v', 'libx264', '-c:a', 'aac', str(path)], check=True, timeout=300)


def free_port():
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        return probe.getsockname()[1]


def start_server(*args, limits=None, env=None):
    """Start serve.py on a free port with args (and resource limits, environment variables); returns (process, base
    URL) once /healthz answers. Its log is in process.stderr."""
    port = free_port()
    process = subprocess.Popen([sys.executable, os.path.join(ROOT, 'serve.py'), '--port', str(port), *args],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               preexec_fn=_limits_setter(limits), env=_user_environment(env))
    deadline = time.time() + 300  # a loaded machine starts TensorFlow slowly
    while time.time() < deadline:
        try:
            urllib.request.urlopen('http://127.0.0.1:%d/healthz' % port, timeout=1).read()
            return process, 'http://127.0.0.1:%d' % port
        except OSError:
            if process.poll() is not None:
                raise RuntimeError(process.stderr.read())
            time.sleep(0.3)
    process.kill()
    raise RuntimeError('the server did not start')


@contextlib.contextmanager
def serving(*args):
    """serve.py with args for the duration of the block, which gets its base URL; stopped after, with no traceback
    in its log."""
    process, url = start_server(*args)
    try:
        yield url
    finally:
        process.terminate()
        process.wait(30)
    assert 'Traceback' not in process.stderr.read()


def request(url, data=None, headers=None, method=None):
    """(status, headers, body) of an HTTP request, errors included."""
    prepared = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(prepared, timeout=60) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
    except urllib.error.HTTPError as error:
        return error.code, {k.lower(): v for k, v in error.headers.items()}, error.read()


def png(height, width, seed=0, mode='RGB'):
    """(PNG bytes, pixels) of a random image."""
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 4 if mode == 'RGBA' else 3), np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode).save(buffer, format='PNG')
    return buffer.getvalue(), pixels


@contextlib.contextmanager
def browser_page(*args):
    """Playwright's API and a fresh page of a headless Chromium started with the extra command-line `args`, closed
    afterwards (tests mark NEEDS_CHROMIUM)."""
    playwright_api = pytest.importorskip('playwright.sync_api')
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
            '--no-first-run', '--disable-sync', *args])
        try:
            yield playwright_api, browser.new_page()
        finally:
            browser.close()


@contextlib.contextmanager
def service_page(url, models, *args):
    """browser_page (with `args`) opened at the service's page `url` once its `models` models are listed; yields
    (Playwright's API, the page). The page runs under its own Content-Security-Policy: on leaving, nothing of it may
    have been blocked."""
    with browser_page(*args) as (playwright_api, page):
        violations = []
        page.on('console', lambda message: violations.append(message.text)
                if 'Content Security Policy' in message.text else None)
        page.goto(url + '/')
        playwright_api.expect(page.locator('#model option')).to_have_count(models)  # waits without eval, which
        yield playwright_api, page                                                  # the policy forbids
        assert violations == []


def png_header(width, height):
    """The start of a PNG that says it is width x height (with a valid header checksum) and holds almost nothing."""
    header = struct.pack('>IIBBBBB', width, height, 8, 2, 0, 0, 0)
    chunk = b'IHDR' + header
    idat = zlib.compress(b'\0' * 64)
    return (b'\x89PNG\r\n\x1a\n' + struct.pack('>I', len(header)) + chunk + struct.pack('>I', zlib.crc32(chunk))
            + struct.pack('>I', len(idat)) + b'IDAT' + idat + struct.pack('>I', zlib.crc32(b'IDAT' + idat)))


BOUNDARY = 'aRbItRaRy'


def multipart(**files):
    """A multipart body of PNG file fields, and its headers."""
    body = b''.join(('--%s\r\nContent-Disposition: form-data; name="%s"; filename="%s.png"\r\nContent-Type: '
                     'image/png\r\n\r\n' % (BOUNDARY, name, name)).encode() + data + b'\r\n'
                    for name, data in files.items())
    return body + ('--%s--\r\n' % BOUNDARY).encode(), {'Content-Type': 'multipart/form-data; boundary=' + BOUNDARY}


def eval_pixels(model_file, photo, output, *options):
    """eval.py's result for one photo with these options, as int pixels (written to `output`)."""
    import eval as eval_py
    eval_py.main(['--model_file', model_file, '--image_file', photo, '--output', str(output), *options])
    return np.asarray(Image.open(output).convert('RGB')).astype(int)
