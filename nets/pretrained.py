"""Slim's pretrained VGG checkpoints: check them, and download them on first use.

Slim publishes `vgg_16_2016_08_28.tar.gz` (about 490 MB), holding the single-file (V1) checkpoint
`vgg_16.ckpt`. The download resumes where a broken one stopped (HTTP Range), shows a progress bar and is
checked for VGG's variables before it is used.
"""
import os
import tarfile
import urllib.error
import urllib.request

from tqdm import tqdm

from nets import nets_factory
from utils import UsageError, check_checkpoint_variables, checkpoint_exists, expected_variables, log, tf

CHUNK_BYTES = 1 << 20


def expected_conv_variables(loss_model):
    """Name -> shape of the network's convolution weights and biases (what the loss network uses)."""
    network_fn = nets_factory.get_network_fn(loss_model, num_classes=1)
    last_conv_block = [name for name in network_fn.end_points if '/pool' in name][-1]
    return expected_variables(
        lambda: network_fn(tf.placeholder(tf.float32, [1, 32, 32, 3]), final_endpoint=last_conv_block))


def check_vgg_checkpoint(path, loss_model):
    """Raise UsageError unless `path` is a checkpoint holding the loss network's convolution layers."""
    check_checkpoint_variables(path, expected_conv_variables(loss_model), '%s checkpoint' % loss_model,
                               'point loss_model_file at slim\'s %s.ckpt, see pretrained/README.md' % loss_model)


def ensure_vgg_checkpoint(path, url, loss_model, download=True):
    """Make sure the loss network's checkpoint is at `path`, downloading slim's archive if allowed.

    Args:
      path: the checkpoint (slim's single-file V1 `vgg_16.ckpt`, or a V2 prefix).
      url: the .tar.gz archive holding `<loss_model>.ckpt`.
      loss_model: 'vgg_16' or 'vgg_19'.
      download: fetch the archive when the checkpoint is missing.

    Raises:
      UsageError: missing and not downloadable, the download failed, or the file is not that network's.
    """
    if not checkpoint_exists(path):
        if not download:
            raise UsageError('VGG checkpoint not found: %s (download %s, extract %s.ckpt to that path, see '
                             'pretrained/README.md; or run without --no_download)' % (path, url, loss_model))
        archive = os.path.join(os.path.dirname(path) or '.', os.path.basename(url))
        log.info('%s not found: downloading %s', path, url)
        download_file(url, archive)
        extract_checkpoint(archive, '%s.ckpt' % loss_model, path)
        os.remove(archive)
        log.info('%s weights extracted to %s', loss_model, path)
    check_vgg_checkpoint(path, loss_model)


def download_file(url, destination):
    """Download `url` to `destination` with a progress bar, resuming from `destination`.part if present."""
    os.makedirs(os.path.dirname(destination) or '.', exist_ok=True)
    partial = destination + '.part'
    have = os.path.getsize(partial) if os.path.exists(partial) else 0
    request = urllib.request.Request(url, headers={'Range': 'bytes=%d-' % have} if have else {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            if have and response.status != 206:
                have = 0  # the server ignored the range: start again
            size = response.headers.get('Content-Length')
            total = have + int(size) if size else None
            with open(partial, 'ab' if have else 'wb') as out, \
                    tqdm(total=total, initial=have, unit='B', unit_scale=True, unit_divisor=1024,
                         desc=os.path.basename(destination)) as bar:
                for chunk in iter(lambda: response.read(CHUNK_BYTES), b''):
                    out.write(chunk)
                    bar.update(len(chunk))
    except urllib.error.HTTPError as error:
        if not (error.code == 416 and have):  # 416 with a partial file: it is already complete
            raise UsageError('cannot download %s: HTTP %d %s (check loss_model_url in the config, or download it '
                             'by hand, see pretrained/README.md)' % (url, error.code, error.reason)) from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, 'reason', error)
        raise UsageError('download of %s stopped: %s (run again to resume from %s, or download it by hand, see '
                         'pretrained/README.md)' % (url, reason, partial)) from None
    os.replace(partial, destination)


def extract_checkpoint(archive, checkpoint_name, path):
    """Extract the checkpoint `checkpoint_name` (single file, or V2 .index/.data files) to `path`.

    Only those members are read, by our own names, so an archive cannot write anywhere else.
    """
    try:
        with tarfile.open(archive) as tar:
            members = [m for m in tar.getmembers() if m.isfile()
                       and os.path.basename(m.name).startswith(checkpoint_name)]
            if not members:
                raise UsageError('%s holds no %s (check loss_model_url in the config)' % (archive, checkpoint_name))
            for member in members:
                target = path + os.path.basename(member.name)[len(checkpoint_name):]
                with tar.extractfile(member) as source, open(target + '.tmp', 'wb') as out:
                    for chunk in iter(lambda: source.read(CHUNK_BYTES), b''):
                        out.write(chunk)
                os.replace(target + '.tmp', target)
    except (tarfile.TarError, EOFError, OSError) as error:
        os.remove(archive)
        raise UsageError('%s is not a readable .tar.gz archive (%s); it was deleted, run again to download it anew'
                         % (archive, error)) from None
