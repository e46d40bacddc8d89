"""Writing the user's files without ever losing one.

Every output goes to a temporary file (or folder) beside its destination and is renamed into place only once it
is complete, so a failed write (disk full, a file-size limit, Ctrl-C, a crash) leaves the old file as it was and
no half-written one behind. Folders made for an output that then failed are removed again when still empty.
Nothing here deletes a file or folder that the command did not create, except what the user asked to replace
(--overwrite) after Outputs has checked that it is the kind of thing the command writes. Commands write through
an Outputs, never through the functions below it directly.

A command's Outputs checks everything before it writes anything: every output is claimed (and every folder a run
holds is locked) before the first write, and a claim after it is a programming error (RuntimeError), so that no
side file can be written ahead of a check that then refuses the run; a refused run leaves the file system as it
was. Files inside a folder or under a checkpoint prefix the run claimed are covered by that claim.
"""
import contextlib
import glob
import os
import shutil
import tempfile

from images import check_encodable, encode_image, output_format
from utils import UsageError, tf


@contextlib.contextmanager
def exclusive_folder(path, busy_message):
    """Hold an exclusive lock on the folder `path` for the block: a flock on the folder itself, so that no lock file
    is left behind, and the system releases it when the process ends, however it ends. Another process holding it
    raises UsageError(busy_message) at once. Where there is no flock (Windows, file systems without locks), nothing
    is locked."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    descriptor = os.open(path, os.O_RDONLY)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UsageError(busy_message) from None
        except OSError:
            pass  # a file system without locks (some network ones): the run goes on unlocked, as before
        yield
    finally:
        os.close(descriptor)


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


STAGING_NAME_CHARS = 64
NAME_MAX = 255  # bytes in one file name on Linux, macOS and Windows file systems


def _what(option):
    """What a message asks the user to choose again: the option itself, or for an output a config names, a path."""
    return option if option.startswith('--') else 'path'


def _check_place(path, option):
    """Raise UsageError, before any work, when `path` could never be written: its name is too long, or what
    stands where its folders would be is a file."""
    name = os.path.basename(os.path.abspath(path))
    if len(os.fsencode(name)) > NAME_MAX:
        raise UsageError('%s %s...: the name is %d bytes, over the %d a file name may have; choose a shorter one'
                         % (option, name[:40], len(os.fsencode(name)), NAME_MAX))
    folder = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(folder) and os.path.dirname(folder) != folder:
        folder = os.path.dirname(folder)
    if not os.path.isdir(folder):
        raise UsageError('%s %s: %s is a file, so no folder can be made there; choose another %s'
                         % (option, path, folder, _what(option)))


@contextlib.contextmanager
def _staged(path, make):
    """Make the parent folders and a temporary entry beside `path` with make(folder, prefix); yield its path; on
    failure remove it and the folders made, and raise UsageError naming `path`."""
    folder = os.path.dirname(os.path.abspath(path))
    created = _missing_folders(folder)
    staging = None
    try:
        os.makedirs(folder, exist_ok=True)
        # The temporary name adds a prefix and suffix: a shortened base keeps it within the file system's limit.
        staging = make(folder, '.%s.' % os.path.basename(path)[:STAGING_NAME_CHARS])
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
def _replacing(path):
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


@contextlib.contextmanager
def _replacing_folder(path):
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
def _replacing_checkpoint(prefix):
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


def _identities(path):
    """What makes two paths one file: its real path (links and '..' resolved, also for a path not yet there) and,
    for an existing file, its device and inode (hard links)."""
    keys = {('path', os.path.normcase(os.path.realpath(path)))}
    with contextlib.suppress(OSError):
        status = os.stat(path)
        keys.add(('inode', status.st_dev, status.st_ino))
    return keys


def contains(folder, path):
    """True when `path` is `folder` or lies inside it (after resolving links)."""
    folder, path = os.path.realpath(folder), os.path.realpath(path)
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _checkpoint_files(prefix):
    return glob.glob(glob.escape(prefix) + '.*')


class Outputs:
    """The one way a command writes files: it knows every input and output of the run.

    A command makes one at start-up with the paths it reads, claims its outputs before any work (so a refusal
    costs nothing) and writes through it; a write to a path not claimed yet claims it first. An output is refused
    when it is one of the inputs or an earlier output of the run through any link (real paths and inodes are
    compared), when it is a folder that holds an input or the working directory, or when something is already
    there: that is replaced only with overwrite (--overwrite) or where the command names the file as its own, and
    only where `replaceable` says it is the kind of file the command writes (a file for images, an earlier export
    for exports). Every write is complete or nothing (the module's docstring).
    """

    def __init__(self, inputs=(), overwrite=False, own=()):
        """inputs: the paths the run reads (files, folders, checkpoint prefixes); overwrite: --overwrite; own: the
        files this command exists to rewrite, or folders whose files it does (a benchmark's report in docs/, its
        resumable work folder): replaced without --overwrite."""
        self.overwrite = overwrite
        self._own = [(path, _identities(path)) for path in own]
        self._inputs = [(path, _identities(path)) for path in inputs]
        self._inputs += [(name, _identities(name)) for path in inputs if not os.path.exists(path)
                         for name in _checkpoint_files(path)]  # a checkpoint prefix: its files
        self._claimed = []  # (path, identities, source, kind) of every output of the run, kind as in _covers
        self._writing = False  # set at the first write: no claim or lock after it

    def claim(self, path, option='--output', source=None, replaceable=os.path.isfile, kind='a file', folder=False,
              checkpoint=False, resumable=None):
        """Check that the run may write `path` (see the class); raises UsageError naming `option` if not.

        Args:
          path: a file, a folder (folder=True) or a checkpoint prefix (checkpoint=True: its files count).
          source: the input this output comes from, for the message about two outputs in one place.
          replaceable: whether what is at `path` may be replaced (with overwrite); kind says what that is.
          resumable: for a folder the run adds to (training's): whether what is there is an earlier run's, to
            which it may add without overwrite; anything else there is refused.
        """
        self._before_writing('claim %s' % path)
        _check_place(path, option)
        keys = _identities(path)
        folder = folder or os.path.isdir(path)  # replacing a folder replaces all it holds
        self.check_not_input(path, option, folder)
        if folder and contains(path, os.getcwd()):
            raise UsageError('%s %s is or holds the working directory; choose a new path' % (option, path))
        for other, other_keys, other_source, _ in self._claimed:
            if keys & other_keys:
                raise UsageError('%s and %s would both be written to %s; rename one, or write them to different '
                                 'places' % (other_source or other, source or path, other))
        if resumable is not None and os.path.lexists(path) and not resumable(path):
            raise UsageError('%s %s exists and is not %s: it holds other files; refusing to write into it (choose '
                             'a new path)' % (option, path, kind))
        if resumable is None and (os.path.lexists(path) or (checkpoint and _checkpoint_files(path))):
            if not replaceable(path):
                raise UsageError('%s %s exists and is not %s; refusing to replace it, even with --overwrite (choose '
                                 'a new path, or move it away yourself)' % (option, path, kind))
            if not (self.overwrite or self._is_own(path, keys)):
                raise UsageError('%s %s exists; pass --overwrite to replace it, or choose another %s'
                                 % (option, path, _what(option)))
        self._claimed.append((path, keys, source, 'folder' if folder else 'checkpoint' if checkpoint else 'file'))

    def _before_writing(self, what):
        """Raise RuntimeError when the run has begun writing: every check comes before the first write."""
        if self._writing:
            raise RuntimeError('%s after the run began writing: claim every output and lock every folder before '
                               'the first write' % what)

    @contextlib.contextmanager
    def locked(self, folder, busy_message, cannot_create):
        """Hold the claimed folder `folder` exclusively for the block (exclusive_folder), made first if missing and
        removed again afterwards if this made it and it is still empty; a check, so before the first write.
        cannot_create: the message when the folder cannot be made, with %s for the reason."""
        self._before_writing('lock %s' % folder)
        created = _missing_folders(folder)
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as error:
            raise UsageError(cannot_create % error.strerror) from None
        try:
            with exclusive_folder(folder, busy_message):
                yield
        finally:
            _remove_empty(created)

    def check_not_input(self, path, option='--output', folder=False):
        """Raise UsageError if `path` is one of the inputs (by real path and inode) or, as a folder, holds one."""
        keys = _identities(path)
        for input_path, input_keys in self._inputs:
            if keys & input_keys or (folder and contains(path, input_path)):
                raise UsageError('%s %s %s the input %s: writing it would replace that; choose another %s'
                                 % (option, path, 'is' if keys & input_keys else 'holds', input_path,
                                    _what(option)))

    def _is_own(self, path, keys):
        return any(keys & own_keys or (os.path.isdir(own) and contains(own, path)) for own, own_keys in self._own)

    def _covers(self, path, keys):
        """Whether a claim covers `path`: its own, or one of a folder holding it or of the checkpoint prefix whose
        file it is."""
        for claimed, claimed_keys, _, kind in self._claimed:
            if keys & claimed_keys or (kind == 'folder' and contains(claimed, path)):
                return True
            if kind == 'checkpoint' and os.path.realpath(path).startswith(os.path.realpath(claimed) + '.'):
                return True
        return False

    def _ensure(self, path, **claim_options):
        """Claim `path` unless a claim covers it (a file in a claimed folder is still checked as a file); then the
        run is writing."""
        keys = _identities(path)
        if not any(keys & other_keys for _, other_keys, _, _ in self._claimed):
            if self._writing and not self._covers(path, keys):
                raise RuntimeError('%s was not claimed before the run began writing' % path)
            writing, self._writing = self._writing, False  # a file inside a claimed folder: checked all the same
            try:
                self.claim(path, **claim_options)
            finally:
                self._writing = writing
        self._writing = True

    def image(self, path, pixels, alpha=None, quality=95, **claim_options):
        """Write uint8 RGB pixels (H, W, 3) in the format the extension names (.jpg, .png, .webp, .bmp, .tif),
        with alpha (H, W) where the format has it, JPEG and WebP at `quality`."""
        check_encodable(path, *pixels.shape[:2], option=claim_options.get('option', '--output'))
        self.data(path, encode_image(pixels, output_format(path), alpha, quality), **claim_options)

    def data(self, path, data, **claim_options):
        """Write bytes to the file `path`."""
        with self.file(path, **claim_options) as temporary, open(temporary, 'wb') as f:
            f.write(data)

    def file(self, path, **claim_options):
        """A context manager yielding a temporary path, to be written completely (see _replacing)."""
        self._ensure(path, **claim_options)
        return _replacing(path)

    @contextlib.contextmanager
    def resumable(self, path, **claim_options):
        """Yield `path`.part, the staging file of a download that a later run resumes (the command appends to it),
        `path` claimed first. When the block fails, a .part it left empty goes, with the folders made for it; one
        with data stays for the next run. move() puts it in place once complete."""
        self._ensure(path, **claim_options)
        partial = path + '.part'
        created = _missing_folders(os.path.dirname(os.path.abspath(path)))
        existed = os.path.lexists(partial)
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        try:
            yield partial
        except BaseException:
            if not existed and os.path.isfile(partial) and os.path.getsize(partial) == 0:
                os.remove(partial)
            _remove_empty(created)
            raise

    def move(self, staged, path, **claim_options):
        """Move a file that a command staged itself beside `path` (a resumable download's .part) into place."""
        self._ensure(path, **claim_options)
        with open(staged, 'rb') as written:
            os.fsync(written.fileno())
        os.replace(staged, path)

    @staticmethod
    def scratch():
        """A context manager yielding a new, empty folder in the system's temporary space for a command's
        intermediate files (never beside the user's), deleted with everything in it afterwards."""
        return tempfile.TemporaryDirectory(prefix='fast-style-')

    def folder(self, path, **claim_options):
        """A context manager yielding a path at which to make the folder (see _replacing_folder)."""
        self._ensure(path, folder=True, **claim_options)
        return _replacing_folder(path)

    def checkpoint(self, prefix, **claim_options):
        """A context manager yielding a prefix at which to save a checkpoint (see _replacing_checkpoint)."""
        self._ensure(prefix, checkpoint=True, **claim_options)
        return _replacing_checkpoint(prefix)


def write_anywhere(path, data, inputs, overwrite):
    """Write bytes to `path` on any file system Apache Beam knows (batch.py's workers), complete or not at all: on
    this machine through an Outputs of `inputs` (so never over one of them, nor over a file without overwrite); on
    a remote one (gs://, s3://, ...) to a temporary name beside it, renamed into place once complete, the temporary
    one removed on failure. Raises UsageError where the write is refused or fails."""
    if '://' not in path or path.startswith('file://'):
        Outputs(inputs, overwrite).data(path, data)
        return
    from apache_beam.io.filesystems import FileSystems
    folder, name = path.rsplit('/', 1)
    staging = '%s/.%s.%s.partial' % (folder, name[:STAGING_NAME_CHARS], os.urandom(8).hex())
    try:
        if not overwrite and FileSystems.exists(path):
            raise UsageError('%s exists; pass --overwrite to replace it' % path)
        with FileSystems.create(staging) as f:
            f.write(data)
        FileSystems.rename([staging], [path])
    except (OSError, IOError, ValueError) as error:  # Beam's file systems raise their own IOError subclasses
        with contextlib.suppress(Exception):
            FileSystems.delete([staging])
        raise UsageError('cannot write %s (%s); nothing was changed there' % (path, error)) from None
