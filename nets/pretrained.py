"""Pretrained weights: slim's VGG checkpoints (checked, downloaded on first use), `vgg16.npy` dicts, and Magenta's
arbitrary-style checkpoint (downloaded on first use).

Slim publishes `vgg_16_2016_08_28.tar.gz` (about 490 MB), holding the single-file (V1) checkpoint
`vgg_16.ckpt`. The download resumes where a broken one stopped (HTTP Range), shows a progress bar and is
checked for VGG's variables before it is used.

`vgg16.npy` is the other common format: a pickled dict {'conv1_1': [weights HWIO, biases], ..., 'fc8': [...]}
for BGR input minus the means B 103.939, G 116.779, R 123.68. It is read with an unpickler that builds numpy
arrays, lists and dicts and nothing else, so a hostile file cannot run code.
"""
import os
import pickle
import tarfile
import urllib.error
import urllib.request

import numpy as np
from tqdm import tqdm

from checkpoints import (check_checkpoint_variables, check_variable_shapes, checkpoint_exists, expected_variables,
                         get_init_fn)
from nets import nets_factory
from preprocessing import vgg_preprocessing
from files import Outputs
from utils import UsageError, log, require_file, slim, tf

CHUNK_BYTES = 1 << 20
# Magenta's published arbitrary-style network, and where eval.py keeps it.
ARBITRARY_URL = 'https://storage.googleapis.com/download.magenta.tensorflow.org/models/arbitrary_style_transfer.tar.gz'
ARBITRARY_CHECKPOINT = os.path.join('pretrained', 'arbitrary_style_transfer', 'model.ckpt')
# vgg16.npy's BGR means, in our RGB order.
NPY_MEANS = (123.68, 116.779, 103.939)


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


def default_checkpoint(loss_model):
    """Where the commands keep slim's checkpoint of `loss_model`, and the only place they download it to."""
    return os.path.join('pretrained', '%s.ckpt' % loss_model)


def downloadable(path, loss_model):
    """True when a missing checkpoint at `path` may be downloaded: at the default place only, so that a mistyped
    path is reported instead of starting a 500 MB download into some other folder."""
    return os.path.abspath(path) == os.path.abspath(default_checkpoint(loss_model))


def missing_vgg(path, url, loss_model, download=True):
    """None when the loss network's weights are at `path` (a checkpoint or a vgg16.npy) or will be downloaded
    there, else the problem as a sentence with its fix (for a command to report with its other missing
    prerequisites)."""
    if path.endswith('.npy'):
        return None if os.path.isfile(path) else ('VGG weights not found: %s (pass a vgg16.npy, or a slim %s.ckpt, '
                                                  'see pretrained/README.md)' % (path, loss_model))
    if checkpoint_exists(path) or (download and downloadable(path, loss_model)):
        return None
    if not downloadable(path, loss_model):
        return ('VGG weights not found: %s (put slim\'s %s.ckpt there, see pretrained/README.md; only the default '
                '%s is downloaded on first use)' % (path, loss_model, default_checkpoint(loss_model)))
    return ('VGG weights not found: %s (download %s and extract %s.ckpt to that path, see pretrained/README.md; or '
            'run without --no_download)' % (path, url, loss_model))


def ensure_vgg_checkpoint(path, url, loss_model, download=True):
    """Make sure the loss network's checkpoint is at `path`, downloading slim's archive if allowed.

    Args:
      path: the checkpoint (slim's single-file V1 `vgg_16.ckpt`, or a V2 prefix).
      url: the .tar.gz archive holding `<loss_model>.ckpt`.
      loss_model: 'vgg_16' or 'vgg_19'.
      download: fetch the archive when the checkpoint is missing (commands allow it at the default path only:
        see downloadable).

    A vgg16.npy is never downloaded; vgg_weights checks it as it reads it.

    Raises:
      UsageError: missing and not downloadable, the download failed, or the file is not that network's.
    """
    if path.endswith('.npy'):
        return
    if not checkpoint_exists(path):
        if not download:
            raise UsageError('VGG checkpoint not found: %s (download %s, extract %s.ckpt to that path, see '
                             'pretrained/README.md; or run without --no_download)' % (path, url, loss_model))
        fetch_checkpoint(path, url, '%s.ckpt' % loss_model, 'loss_model_url in the config')
        log.info('%s weights extracted to %s', loss_model, path)
    check_vgg_checkpoint(path, loss_model)


def arbitrary_missing(path):
    """The message for Magenta's checkpoint missing at `path` when it is not to be downloaded."""
    return ("Magenta's arbitrary-style checkpoint not found: %s (download %s and extract arbitrary_style_transfer/ "
            "into pretrained/, see pretrained/README.md; or run without --no_download)" % (path, ARBITRARY_URL))


def ensure_arbitrary_checkpoint(path, download=True):
    """Make sure Magenta's arbitrary-style checkpoint is at `path`: downloaded when missing, at the default path
    only (a mistyped path is reported, not a reason to download elsewhere) and if `download`.

    Raises:
      UsageError: missing and not to be downloaded, or the download failed.
    """
    if checkpoint_exists(path) or os.path.isdir(path):
        return
    if os.path.abspath(path) != os.path.abspath(ARBITRARY_CHECKPOINT):
        return  # not ours to fetch: the model loader reports it missing
    if not download:
        raise UsageError(arbitrary_missing(path))
    fetch_checkpoint(path, ARBITRARY_URL, 'model.ckpt', 'the URL')
    log.info("Magenta's arbitrary-style network extracted to %s", path)


def fetch_checkpoint(path, url, checkpoint_name, url_source):
    """Download the .tar.gz archive `url` beside `path` and extract its checkpoint `checkpoint_name` to `path`, then
    delete the archive; an archive of that name already there (put by the user) is used instead, and kept.
    url_source: where the URL came from, for the message when it is wrong."""
    archive = os.path.join(os.path.dirname(path) or '.', os.path.basename(url))
    by_hand = os.path.isfile(archive)  # put there by the user: used as it is, and kept
    # A cache of downloads, filled in a transaction of its own, once the command's checks have passed.
    outputs = Outputs([archive] if by_hand else [])
    if not by_hand:
        outputs.claim(archive)
    outputs.claim(path, checkpoint=True)  # its files, for a V2 checkpoint
    if by_hand:
        log.info('%s not found: extracting it from %s', path, archive)
    else:
        log.info('%s not found: downloading %s', path, url)
        download_file(url, archive, outputs, url_source)
    extract_checkpoint(archive, checkpoint_name, path, outputs, remove_broken=not by_hand, url_source=url_source)
    if not by_hand:
        os.remove(archive)  # this run's own download


def download_file(url, destination, outputs, url_source='loss_model_url in the config'):
    """Download `url` to `destination` with a progress bar, resuming from `destination`.part if present (the
    download's own staging file, kept between runs: files.Outputs.resumable); `outputs` moves it into place when
    complete. url_source: where the URL came from, for the message when it is wrong."""
    with outputs.resumable(destination) as partial:
        have = os.path.getsize(partial) if os.path.exists(partial) else 0
        request = urllib.request.Request(url, headers={'Range': 'bytes=%d-' % have} if have else {})
        try:
            _fetch(request, partial, have, os.path.basename(destination))
        except urllib.error.HTTPError as error:
            if not (error.code == 416 and have):  # 416 with a partial file: it is already complete
                raise UsageError('cannot download %s: HTTP %d %s (check %s, or download it by hand, see '
                                 'pretrained/README.md)' % (url, error.code, error.reason, url_source)) from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, 'reason', error)
            again = ('run again to resume from %s' % partial if os.path.exists(partial) and os.path.getsize(partial)
                     else 'check the connection and run again')
            raise UsageError('download of %s stopped: %s (%s, or download it by hand, see pretrained/README.md)'
                             % (url, reason, again)) from None
    outputs.move(partial, destination)


def _fetch(request, partial, have, name):
    """Append the answer to `request` to the file `partial`, which holds its first `have` bytes."""
    with urllib.request.urlopen(request, timeout=60) as response:
        if have and response.status != 206:
            have = 0  # the server ignored the range: start again
        size = response.headers.get('Content-Length')
        total = have + int(size) if size else None
        with open(partial, 'ab' if have else 'wb') as out, \
                tqdm(total=total, initial=have, unit='B', unit_scale=True, unit_divisor=1024, desc=name) as bar:
            for chunk in iter(lambda: response.read(CHUNK_BYTES), b''):
                out.write(chunk)
                bar.update(len(chunk))


def extract_checkpoint(archive, checkpoint_name, path, outputs, remove_broken=True,
                       url_source='loss_model_url in the config'):
    """Extract the checkpoint `checkpoint_name` (single file, or V2 .index/.data files) to `path` through
    `outputs` (files.Outputs); a broken archive is deleted with remove_broken (a download of this run's).

    Only those members are read, by our own names, so an archive cannot write anywhere else; a .meta graph beside
    the checkpoint is left out (nothing here reads one).
    """
    try:
        with tarfile.open(archive) as tar:
            members = [m for m in tar.getmembers() if m.isfile()
                       and os.path.basename(m.name).startswith(checkpoint_name) and not m.name.endswith('.meta')]
            if not members:
                raise UsageError('%s holds no %s (check %s)' % (archive, checkpoint_name, url_source))
            for member in members:
                target = path + os.path.basename(member.name)[len(checkpoint_name):]
                with tar.extractfile(member) as source, outputs.file(target) as temporary, \
                        open(temporary, 'wb') as out:
                    for chunk in iter(lambda: source.read(CHUNK_BYTES), b''):
                        out.write(chunk)
    except (tarfile.TarError, EOFError, OSError) as error:
        if not remove_broken:
            raise UsageError('%s is not a readable .tar.gz archive (%s); replace it with the published archive'
                             % (archive, error)) from None
        os.remove(archive)
        raise UsageError('%s is not a readable .tar.gz archive (%s); it was deleted, run again to download it anew'
                         % (archive, error)) from None


class _ArraysOnlyUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays, lists, dicts, strings and numbers; any other class or function is refused."""
    ALLOWED = {('numpy.core.multiarray', '_reconstruct'), ('numpy._core.multiarray', '_reconstruct'),
               ('numpy.core.multiarray', 'scalar'), ('numpy._core.multiarray', 'scalar'),
               ('numpy', 'ndarray'), ('numpy', 'dtype'), ('_codecs', 'encode')}

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError('refused to load %s.%s' % (module, name))
        return super().find_class(module, name)


def _read_npy_object(path):
    """The object saved in an .npy file of dtype object, through _ArraysOnlyUnpickler."""
    with open(path, 'rb') as f:
        version = np.lib.format.read_magic(f)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
            np.lib.format.read_array_header_2_0
        _, _, dtype = read_header(f)
        if not dtype.hasobject:
            raise ValueError('a plain %s array, not a dict' % dtype)
        obj = _ArraysOnlyUnpickler(f, encoding='latin1').load()
    return obj.item() if isinstance(obj, np.ndarray) and obj.shape == () else obj


def load_vgg16_npy(path, loss_model='vgg_16'):
    """Read a vgg16.npy dict as slim variable values for our RGB network.

    The convolution layers become `vgg_16/convB/convB_J/{weights,biases}`; conv1_1's input channels are
    reversed (BGR -> RGB), so that the same weights give the same features with RGB input. The fully
    connected layers are not used and not kept.

    Raises:
      UsageError: the file is not an .npy dict of VGG-16's convolution layers, or wants to run code.
    """
    what = 'a VGG-16 npy dict (layer name -> [weights, biases]) or a slim vgg_16.ckpt'
    try:
        layers = _read_npy_object(path)
    except Exception as error:  # numpy's header parser and pickle raise many kinds on a malformed file
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UsageError('%s is not %s: %s' % (path, what, reason)) from None
    if not isinstance(layers, dict):
        raise UsageError('%s is not %s: it holds a %s' % (path, what, type(layers).__name__))
    values = {}
    for name, params in layers.items():
        if not (isinstance(name, str) and name.startswith('conv')):
            continue
        if not (isinstance(params, (list, tuple)) and len(params) == 2):
            raise UsageError('%s is not %s: %r is not [weights, biases]' % (path, what, name))
        weights, biases = (np.asarray(p, np.float32) for p in params)
        if name == 'conv1_1':
            weights = weights[:, :, ::-1, :]
        scope = '%s/%s/%s' % (loss_model, name.split('_')[0], name)
        values[scope + '/weights'], values[scope + '/biases'] = weights, biases
    check_variable_shapes({name: value.shape for name, value in values.items()}, expected_conv_variables(loss_model),
                          path, 'VGG-16 npy dict', 'pass a vgg16.npy or a slim vgg_16.ckpt')
    return values


def vgg_weights(path, loss_model='vgg_16', exclude_scopes=''):
    """Check a weight file of either format; return (init_fn factory, the input means that go with it).

    Args:
      path: a slim checkpoint (V1 or V2) or a `.npy` dict.
      loss_model: the network the weights are for.
      exclude_scopes: for checkpoints, scopes not to restore.

    Returns:
      (make_init_fn, means): make_init_fn() -> init_fn(session) restores the model variables of the current
      graph; call it once the network is built. means: the RGB means to subtract from images.
    """
    if path.endswith('.npy'):
        require_file(path, 'VGG weights', 'pass a slim vgg_16.ckpt or a vgg16.npy')
        values = load_vgg16_npy(path, loss_model)

        def make_npy_init_fn():
            variables = [v for v in slim.get_model_variables() if v.op.name in values]

            def init_fn(sess):
                for variable in variables:
                    variable.load(values[variable.op.name], sess)
            return init_fn
        return make_npy_init_fn, NPY_MEANS
    if not checkpoint_exists(path):
        raise UsageError('VGG weights not found: %s (pass a slim vgg_16.ckpt, see pretrained/README.md, or a '
                         'vgg16.npy)' % path)
    check_vgg_checkpoint(path, loss_model)
    return (lambda: get_init_fn(path, exclude_scopes)), vgg_preprocessing.MEANS


def save_random_vgg(prefix, loss_model='vgg_16', seed=0, write_version=None):
    """A checkpoint of the network's convolution layers with random weights and slim's names: a stand-in
    for the real one in tests and benchmarks (same names and shapes, so the same speed). write_version: a
    tf.train.SaverDef version (default: V2)."""
    network_fn = nets_factory.get_network_fn(loss_model, num_classes=1)
    with tf.Graph().as_default():
        tf.set_random_seed(seed)
        network_fn(tf.placeholder(tf.float32, [1, 32, 32, 3]), final_endpoint='%s/pool5' % loss_model)
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            saver = tf.train.Saver(write_version=write_version or tf.train.SaverDef.V2)
            return saver.save(sess, prefix, write_meta_graph=False)
