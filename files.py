"""Writing the user's files without ever losing one.

Every output goes to a temporary file (or folder) beside its destination and is renamed into place only once it
is complete, so a failed write (disk full, a file-size limit, Ctrl-C, a crash) leaves the old file as it was and
no half-written one behind. Folders made for an output that then failed are removed again when still empty.
Nothing here deletes a file or folder that the command did not create, except an earlier export that an export
replaces, after the caller has checked that it is one.
"""
import contextlib
import os
import shutil
import tempfile

from utils import UsageError, encode_image, output_format, tf


def _missing_folders(folder):
    """The folders that os.makedirs(folder) would create, deepest first."""
    missing = []
    folder = os.path.abspath(folder)
    while folder and not os.path.exists(folder):
        missing.append(folder)
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    return missing


def _remove_empty(folders):
    for folder in folders:  # deepest first; rmdir refuses folders that are not empty
        with contextlib.suppress(OSError):
            os.rmdir(folder)


def _new_file_mode(path):
    """The mode a plain open() would give: the old file's if there is one, else 0o666 less the umask."""
    try:
        return os.stat(path).st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


@contextlib.contextmanager
def _staged(path, make):
    """Make the parent folders and a temporary entry beside `path` with make(folder, prefix); yield its path; on
    failure remove it and the folders made, and raise UsageError naming `path`."""
    folder = os.path.dirname(os.path.abspath(path))
    created = _missing_folders(folder)
    staging = None
    try:
        os.makedirs(folder, exist_ok=True)
        staging = make(folder, '.%s.' % os.path.basename(path))
        yield staging
    except BaseException as error:
        if staging is not None:
            with contextlib.suppress(OSError):
                shutil.rmtree(staging) if os.path.isdir(staging) else os.remove(staging)
        _remove_empty(created)
        if isinstance(error, (OSError, tf.errors.OpError)):  # TensorFlow's own writers raise the latter
            reason = getattr(error, 'strerror', None) or str(error).strip().split('\n')[0]
            raise UsageError('cannot write %s (%s); nothing was changed there: choose a writable output with room'
                             % (path, reason)) from None
        raise


@contextlib.contextmanager
def replacing(path):
    """Yield a temporary file path beside `path`, ending in the same extension (some writers pick the format by
    it); once the block has written it completely, it replaces `path` in one rename.

    Raises:
      UsageError: the folder cannot be made, or the write or the rename fails (the temporary file is removed).
    """
    extension = os.path.splitext(path)[1]
    mode = _new_file_mode(path)

    def make(folder, prefix):
        handle, temporary = tempfile.mkstemp(prefix=prefix, suffix='.partial' + extension, dir=folder)
        os.close(handle)
        return temporary
    with _staged(path, make) as temporary:
        yield temporary
        os.chmod(temporary, mode)
        with open(temporary, 'rb') as written:
            os.fsync(written.fileno())  # on disk before it takes the old file's place
        os.replace(temporary, path)


def write_bytes(path, data):
    """Write `data` to `path` through a temporary file beside it; a failure leaves any old file intact."""
    with replacing(path) as temporary, open(temporary, 'wb') as f:
        f.write(data)


@contextlib.contextmanager
def replacing_folder(path):
    """Yield a path (not yet existing) inside a staging folder beside `path`; once the block has made the folder
    there, it takes `path`'s place. An old folder at `path` (which the caller has checked may be replaced) is
    moved aside first and deleted only after the new one is in place; if that fails, it is put back.
    """
    def make(folder, prefix):
        return tempfile.mkdtemp(prefix=prefix, suffix='.partial', dir=folder)
    with _staged(path, make) as staging:
        new = os.path.join(staging, 'new')
        yield new
        old = os.path.join(staging, 'old')
        if os.path.lexists(path):
            os.rename(path, old)
        try:
            os.rename(new, path)
        except OSError:
            if os.path.lexists(old):
                os.rename(old, path)
            raise
        shutil.rmtree(staging)


@contextlib.contextmanager
def replacing_checkpoint(prefix):
    """Yield a checkpoint prefix inside a staging folder beside `prefix`; once the block has saved a checkpoint
    there, its files take the places of `<prefix>.index` and `<prefix>.data-*`. The data goes first, so that an
    index, which readers open first, never names data that is not there yet.
    """
    def make(folder, name_prefix):
        return tempfile.mkdtemp(prefix=name_prefix, suffix='.partial', dir=folder)
    with _staged(prefix, make) as staging:
        staged = os.path.join(staging, 'weights')
        yield staged
        for name in sorted(os.listdir(staging), key=lambda name: name.endswith('.index')):
            with open(os.path.join(staging, name), 'rb') as written:
                os.fsync(written.fileno())
            os.replace(os.path.join(staging, name), prefix + name[len('weights'):])
        shutil.rmtree(staging)


def same_file(a, b):
    """True when the two paths name one existing file (also through links)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def refuse_overwriting_inputs(outputs, inputs, option='--output'):
    """Raise UsageError if any output path is one of the input files.

    Args:
      outputs: the paths a command will write.
      inputs: the paths it reads (images, videos, models).
      option: the option that chose the outputs, for the message.
    """
    existing = [path for path in inputs if os.path.exists(path)]
    for output in outputs:
        for source in existing:
            if same_file(output, source):
                raise UsageError('the output %s is the input %s: writing it would replace that file; choose another '
                                 '%s' % (output, source, option))


def refuse_collisions(pairs, fix):
    """Raise UsageError if two inputs would be written to one output.

    Args:
      pairs: (input path, output path) in order.
      fix: what the user can do, for the message.
    """
    seen = {}
    for source, output in pairs:
        key = os.path.normcase(os.path.abspath(output))
        if key in seen:
            raise UsageError('%s and %s would both be written to %s; %s' % (seen[key], source, output, fix))
        seen[key] = source


def contains(folder, path):
    """True when `path` is `folder` or lies inside it (after resolving links)."""
    folder, path = os.path.realpath(folder), os.path.realpath(path)
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def write_image(path, pixels, alpha=None, quality=95):
    """Write uint8 RGB pixels to `path` in the format its extension names, creating folders; a failed write leaves
    any old file intact.

    Args:
      path: the file; .jpg, .png, .webp, .bmp or .tif.
      pixels: uint8 (H, W, 3).
      alpha: uint8 (H, W) to keep where the format has an alpha channel (PNG, WebP, TIFF), or None.
      quality: JPEG and WebP quality, 1..100.
    """
    write_bytes(path, encode_image(pixels, output_format(path), alpha, quality))
