"""First run without VGG weights: slim's archive is downloaded (resuming a partial file), extracted and checked.

A small HTTP server on 127.0.0.1 that honours Range requests stands in for TF-Slim's download site.
"""
import http.server
import io
import os
import tarfile
import threading

import pytest

from helpers import save_random_vgg
from nets import pretrained
from utils import UsageError, tf


class _ArchiveHandler(http.server.BaseHTTPRequestHandler):
    files = {}      # path -> bytes
    requests = []   # (path, Range header) of every GET

    def do_GET(self):  # noqa: N802 (the http.server API)
        self.requests.append((self.path, self.headers.get('Range')))
        data = self.files.get(self.path)
        if data is None:
            self.send_error(404, 'Not Found')
            return
        start = int(self.headers['Range'][len('bytes='):].split('-')[0]) if self.headers.get('Range') else 0
        self.send_response(206 if start else 200)
        if start:
            self.send_header('Content-Range', 'bytes %d-%d/%d' % (start, len(data) - 1, len(data)))
        self.send_header('Content-Length', str(len(data) - start))
        self.end_headers()
        self.wfile.write(data[start:])

    def log_message(self, *args):
        pass


def _tar_gz(members):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode='w:gz', compresslevel=1) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture(scope='module')
def server(tmp_path_factory):
    """Serves /vgg_16_2016_08_28.tar.gz (slim's layout: one V1 file, vgg_16.ckpt) and /empty.tar.gz."""
    prefix = save_random_vgg(str(tmp_path_factory.mktemp('v1') / 'vgg_16.ckpt'), write_version=tf.train.SaverDef.V1)
    with open(prefix, 'rb') as f:
        _ArchiveHandler.files['/vgg_16_2016_08_28.tar.gz'] = _tar_gz({'vgg_16.ckpt': f.read()})
    _ArchiveHandler.files['/empty.tar.gz'] = _tar_gz({'README': b'nothing here'})
    httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), _ArchiveHandler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield 'http://127.0.0.1:%d' % httpd.server_address[1]
    httpd.shutdown()


def test_downloads_extracts_and_checks(tmp_path, server):
    _ArchiveHandler.requests.clear()
    path = str(tmp_path / 'pretrained' / 'vgg_16.ckpt')
    pretrained.ensure_vgg_checkpoint(path, server + '/vgg_16_2016_08_28.tar.gz', 'vgg_16')
    assert os.path.isfile(path)
    assert os.listdir(tmp_path / 'pretrained') == ['vgg_16.ckpt']  # the archive is removed afterwards
    assert _ArchiveHandler.requests == [('/vgg_16_2016_08_28.tar.gz', None)]
    pretrained.ensure_vgg_checkpoint(path, server + '/vgg_16_2016_08_28.tar.gz', 'vgg_16')  # present: no request
    assert len(_ArchiveHandler.requests) == 1


def test_resumes_a_partial_download(tmp_path, server):
    _ArchiveHandler.requests.clear()
    data = _ArchiveHandler.files['/vgg_16_2016_08_28.tar.gz']
    half = len(data) // 2
    (tmp_path / 'vgg_16_2016_08_28.tar.gz.part').write_bytes(data[:half])
    path = str(tmp_path / 'vgg_16.ckpt')
    pretrained.ensure_vgg_checkpoint(path, server + '/vgg_16_2016_08_28.tar.gz', 'vgg_16')
    assert _ArchiveHandler.requests == [('/vgg_16_2016_08_28.tar.gz', 'bytes=%d-' % half)]
    pretrained.check_vgg_checkpoint(path, 'vgg_16')


def test_download_errors(tmp_path, server):
    path = str(tmp_path / 'vgg_16.ckpt')
    with pytest.raises(UsageError, match=r'cannot download .*/missing.tar.gz: HTTP 404 .*loss_model_url'):
        pretrained.ensure_vgg_checkpoint(path, server + '/missing.tar.gz', 'vgg_16')
    with pytest.raises(UsageError, match=r'empty.tar.gz holds no vgg_16.ckpt'):
        pretrained.ensure_vgg_checkpoint(path, server + '/empty.tar.gz', 'vgg_16')
    with pytest.raises(UsageError, match=r'VGG checkpoint not found: .*vgg_16.ckpt \(download .*pretrained/README.md'):
        pretrained.ensure_vgg_checkpoint(path, server + '/vgg_16_2016_08_28.tar.gz', 'vgg_16', download=False)
    closed = 'http://127.0.0.1:9/vgg_16_2016_08_28.tar.gz'  # the discard port: nothing listens
    with pytest.raises(UsageError, match=r'download of .* stopped: .*\(check the connection and run again, or '):
        pretrained.ensure_vgg_checkpoint(path, closed, 'vgg_16')  # nothing arrived: nothing to resume from
    (tmp_path / 'vgg_16_2016_08_28.tar.gz.part').write_bytes(b'half')
    with pytest.raises(UsageError, match=r'download of .* stopped: .*\(run again to resume from .*\.part'):
        pretrained.ensure_vgg_checkpoint(path, closed, 'vgg_16')
    assert (tmp_path / 'vgg_16_2016_08_28.tar.gz.part').read_bytes() == b'half'  # kept, to resume from
    for url in (closed, server + '/missing.tar.gz'):  # a failed first download leaves no folder behind
        with pytest.raises(UsageError):
            pretrained.ensure_vgg_checkpoint(str(tmp_path / 'new' / 'deeper' / 'vgg_16.ckpt'), url, 'vgg_16')
        assert not (tmp_path / 'new').exists()


def test_train_downloads_on_first_run(workspace, server, caplog):
    import train
    from helpers import write_config
    caplog.set_level('INFO')
    config = write_config('tiny.yml', loss_model_file='pretrained/vgg_16.ckpt',
                          loss_model_url=server + '/vgg_16_2016_08_28.tar.gz')
    train.main(['-c', config, '--max_steps', '1'])
    assert 'vgg_16 weights extracted to pretrained/vgg_16.ckpt' in caplog.text
    assert os.path.isfile('models/tiny/fast-style-model.ckpt-1.index')


def test_stylize_downloads_the_default_weights_and_only_those(tmp_path, server, monkeypatch, capsys, caplog):
    import stylize
    from helpers import usage_error, write_image_file
    caplog.set_level('INFO')
    monkeypatch.chdir(tmp_path)
    photo = write_image_file('photo.jpg', 40, 48)
    url = server + '/vgg_16_2016_08_28.tar.gz'
    err = usage_error(stylize.main, ['--content', photo, '--style', photo, '--loss_model_file',
                                     'pretrianed/vgg_16.ckpt', '--loss_model_url', url], capsys)
    assert 'VGG weights not found: pretrianed/vgg_16.ckpt' in err and not os.path.exists('pretrianed')
    err = usage_error(stylize.main, ['--content', photo, '--style', photo, '--no_download'], capsys)
    assert 'VGG weights not found: pretrained/vgg_16.ckpt (download' in err and not os.path.exists('pretrained')
    stylize.main(['--content', photo, '--style', photo, '--loss_model_url', url, '--max_size', '32',
                  '--iterations', '1', '--output', 'out.jpg'])
    assert 'vgg_16 weights extracted to pretrained/vgg_16.ckpt' in caplog.text and os.path.isfile('out.jpg')


def test_eval_downloads_magentas_arbitrary_style_network_to_the_default_path_only(
        tmp_path, server, arbitrary_checkpoint, monkeypatch, capsys, caplog):
    import eval as eval_py
    from helpers import usage_error, write_image_file
    folder = 'arbitrary_style_transfer/'
    members = {folder + 'model.ckpt' + suffix: open(arbitrary_checkpoint + suffix, 'rb').read()
               for suffix in ('.index', '.data-00000-of-00001')}
    _ArchiveHandler.files['/arbitrary_style_transfer.tar.gz'] = _tar_gz({**members, folder + 'model.ckpt.meta': b''})
    monkeypatch.setattr(pretrained, 'ARBITRARY_URL', server + '/arbitrary_style_transfer.tar.gz')
    monkeypatch.chdir(tmp_path)
    caplog.set_level('INFO')
    photo = write_image_file('photo.jpg', 40, 48)
    err = usage_error(eval_py.main, ['--model_file', 'pretrianed/model.ckpt', '--image_file', photo,
                                     '--style_image', photo], capsys)
    assert 'model file not found: pretrianed/model.ckpt' in err and not os.path.exists('pretrianed')
    eval_py.main(['--image_file', photo, '--style_image', photo, '--output', 'out.jpg'])
    assert "Magenta's arbitrary-style network extracted to pretrained/arbitrary_style_transfer/model.ckpt" \
        in caplog.text and os.path.isfile('out.jpg')
    assert sorted(os.listdir('pretrained/arbitrary_style_transfer')) == ['model.ckpt.data-00000-of-00001',
                                                                        'model.ckpt.index']
