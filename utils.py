"""Shared helpers: a quiet TensorFlow, user-facing errors and command-line helpers, session options and precision.

Every entry point imports this module first, so that TensorFlow is loaded once, in graph mode, without its
start-up banners. Set TF_CPP_MIN_LOG_LEVEL yourself to see TensorFlow's own logs again.
"""
import argparse
import contextlib
import difflib
import functools
import importlib
import logging
import os
import sys
import warnings

import numpy as np


@contextlib.contextmanager
def stderr_to_devnull():
    """Send file descriptor 2 to /dev/null: TensorFlow's C++ banners bypass Python's sys.stderr."""
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


_MUTED_BY_US = 'FAST_STYLE_MUTED_TF'  # set beside TF_CPP_MIN_LOG_LEVEL, so that our child processes mute too


def _import_tensorflow():
    level = os.environ.get('TF_CPP_MIN_LOG_LEVEL')
    quiet = level is None or (level == '2' and os.environ.get(_MUTED_BY_US) == '1')
    if quiet:
        os.environ['TF_CPP_MIN_LOG_LEVEL'], os.environ[_MUTED_BY_US] = '2', '1'
        warnings.filterwarnings('ignore', category=DeprecationWarning)
        warnings.filterwarnings('ignore', category=FutureWarning)
        warnings.filterwarnings('ignore', message='`layer.apply` is deprecated')  # tf_slim's layers
        warnings.filterwarnings('ignore', message='To make it possible to preserve tf.data options')
        warnings.filterwarnings('ignore', message=r'\s*Warning: tf.lite.Interpreter is deprecated')
        with stderr_to_devnull():
            import tensorflow.compat.v1 as tf1
            import tf_slim as slim_module  # its import prints through TensorFlow's C++ logger too
            # Looking for devices now, still muted, keeps the "failed call to cuInit" line of machines
            # without a GPU out of the first session's start.
            tf1.config.list_physical_devices()
        tf1.get_logger().setLevel(logging.ERROR)
        logging.getLogger('absl').setLevel(logging.WARNING)  # the TFLite converter's notes
    else:
        import tensorflow.compat.v1 as tf1
        import tf_slim as slim_module
    tf1.disable_v2_behavior()
    return tf1, slim_module


_import_tensorflow = functools.lru_cache(maxsize=None)(_import_tensorflow)


class _Imported:
    """A stand-in for TensorFlow or TF-Slim that imports them at the first attribute used: a command answers
    --help, a mistake in its arguments or a missing file in a fraction of a second, before TensorFlow's import
    (several seconds) starts."""

    def __init__(self, index, name):
        self._index, self._name = index, name

    def __getattr__(self, attribute):
        return getattr(_import_tensorflow()[self._index], attribute)

    def __repr__(self):
        return '<%s, imported at its first use>' % self._name


# Import TensorFlow and TF-Slim from here (`from utils import slim, tf`), never directly: the first use decides
# whether the banners are muted.
tf, slim = _Imported(0, 'tensorflow.compat.v1'), _Imported(1, 'tf_slim')


def tensorflow_module(name):
    """A module of TensorFlow's own (its protocol buffers, say), imported after TensorFlow's quiet import."""
    _import_tensorflow()
    return importlib.import_module(name)

log = logging.getLogger('fast_style')


def native_logs_muted():
    """Mute file descriptor 2 when TensorFlow's INFO logs are off (as utils sets them unless told otherwise), for
    native code that logs without TensorFlow's logger, such as the TFLite interpreter."""
    return stderr_to_devnull() if os.environ.get('TF_CPP_MIN_LOG_LEVEL', '0') != '0' else contextlib.nullcontext()


def setup_logging():
    """Log our progress lines to stderr as 'time message'."""
    logging.basicConfig(format='%(asctime)s %(message)s', datefmt='%H:%M:%S', level=logging.INFO)


# --------------------------------------------------------------------------------------------------------------
# Errors a user can fix
# --------------------------------------------------------------------------------------------------------------

class UsageError(Exception):
    """A problem with the user's input: reported as one line, exit status 2, no traceback."""


def cli_main(main):
    """Wrap an entry point: UsageError and Ctrl-C become one line on stderr instead of a traceback."""
    @functools.wraps(main)
    def wrapper(argv=None):
        try:
            return main(argv)
        except UsageError as error:
            print('error: %s' % error, file=sys.stderr)
            sys.exit(2)
        except KeyboardInterrupt:
            print('interrupted', file=sys.stderr)
            sys.exit(130)
    return wrapper


def run_and_exit(main):
    """Run a command's main() and end the process with its exit status, skipping the interpreter's teardown.

    Tearing down a process that imported TensorFlow takes about a second (its modules and C++ state are destroyed
    one by one), which a short command such as a cold eval.py would wait for after its files are written and
    closed. Our streams are flushed first; an unexpected exception still ends the usual way, with its traceback.
    """
    try:
        main()
        status = 0
    except SystemExit as done:
        status = done.code
    if isinstance(status, str):
        print(status, file=sys.stderr)
        status = 1
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status or 0)


def add_precision_option(parser):
    """--precision, as eval.py, serve.py and stylize.py share it (on a parser or an argument group)."""
    parser.add_argument('--precision', choices=PRECISIONS, default='fp32',
                        help='bf16: convolutions in bfloat16 (float16 on GPUs), about 1.7x faster on CPUs with '
                             'AVX512_BF16 or AMX, pixels within a few grey levels; other CPUs run float32 and say '
                             'so (default: %(default)s)')


def add_colour_options(parser, strength=True):
    """--preserve_colors and (with strength) --strength, as eval.py and stylize.py share them."""
    parser.add_argument('--preserve_colors', action='store_true',
                        help="keep the photo's colours: take only the stylized luminance (YCbCr)")
    if strength:
        parser.add_argument('--strength', type=float, default=1.0,
                            help='blend with the photo: 1 is fully stylized, 0 the photo (default: %(default)s)')


def float_list(text):
    """An option's comma-separated finite numbers (nan and inf are refused where they enter)."""
    try:
        values = [float(item) for item in text.split(',')]
    except ValueError:
        values = None
    if values is None or not np.all(np.isfinite(values)):
        raise argparse.ArgumentTypeError('expected comma-separated finite numbers, got %s' % shorten(text))
    return values


def int_list(text):
    """An option's comma-separated whole numbers."""
    try:
        return [int(item) for item in text.split(',')]
    except ValueError:
        raise argparse.ArgumentTypeError('expected comma-separated whole numbers, got %s' % shorten(text)) from None


def positive_int(text):
    """An option's whole number of at least 1 (a count of runs)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError('expected a whole number of at least 1, got %s' % shorten(text))
    return value


def positive_int_list(text):
    """An option's comma-separated whole numbers, each at least 1 (sides in pixels)."""
    values = int_list(text)
    if min(values) < 1:
        raise argparse.ArgumentTypeError('expected whole numbers of at least 1, got %s' % shorten(text))
    return values


def _not_blank(convert):
    """An argparse type that refuses an empty (or blank) value before `convert` (None: the text) sees it: an unset
    shell variable ('--init_from "$MODEL"') would otherwise pass for the option not given, or for a path here."""
    def check(text):
        if isinstance(text, str) and not text.strip():
            raise argparse.ArgumentTypeError('an empty value; give one, or leave the option out')
        return convert(text) if convert else text
    check.__name__ = getattr(convert, '__name__', 'value')  # argparse names the type in "invalid int value"
    check.refuses_blank = True
    return check


class ArgumentParser(argparse.ArgumentParser):
    """argparse with our conventions: a mistake is one line, exit status 2 (argparse prints the whole usage first);
    an option's value is never empty; options are spelt out in full (argparse would take --model_fil for
    --model_file, and a prefix that is unambiguous today becomes ambiguous when an option is added)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault('allow_abbrev', False)
        super().__init__(*args, **kwargs)

    def parse_known_args(self, args=None, namespace=None):
        for action in self._actions:  # those of argument groups too: they share the list
            if action.nargs != 0 and not getattr(action.type, 'refuses_blank', False):
                action.type = _not_blank(action.type)
        return super().parse_known_args(args, namespace)

    def error(self, message):
        unknown = [word for word in message.partition('unrecognized arguments: ')[2].split() if word.startswith('-')]
        if unknown:
            known = [option for action in self._actions for option in action.option_strings]
            close = difflib.get_close_matches(unknown[0].split('=')[0], known, n=1)
            message += '; did you mean %s?' % close[0] if close else ''
        print('error: %s (see %s --help)' % (message, self.prog), file=sys.stderr)
        sys.exit(2)


def require_file(path, what, fix):
    """Raise UsageError naming `what` and how to `fix` it when `path` is not an existing file."""
    if not os.path.isfile(path):
        reason = 'is a folder' if os.path.isdir(path) else 'not found'
        raise UsageError('%s %s: %s (%s)' % (what, reason, path, fix))


def shorten(value, limit=60):
    """repr(value) cut to about `limit` characters, so that an error message stays one readable line."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 5] + '...' + text[-2:]


def unknown_name_hint(name, known, listed='valid keys'):
    """For an unknown key or option `name`: "did you mean 'x'?" when one of `known` is close, else the list."""
    close = difflib.get_close_matches(str(name), list(known), n=1)
    return 'did you mean %r?' % close[0] if close else '%s: %s' % (listed, ', '.join(known))


# --------------------------------------------------------------------------------------------------------------
# Sessions and devices
# --------------------------------------------------------------------------------------------------------------

def gpu_available():
    return bool(tf.config.list_physical_devices('GPU'))


PRECISIONS = ('fp32', 'bf16')
NATIVE_BFLOAT16_FLAGS = ('avx512_bf16', 'amx_bf16')
NO_BF16_VARIABLE = 'FAST_STYLE_NO_BF16'  # set (not '0') to run as on a CPU without native bfloat16
_announced = set()


def cpu_flags():
    """The CPU's feature flags as /proc/cpuinfo lists them, or None where there is no such file (not Linux)."""
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('flags'):
                    return set(line.split(':', 1)[1].split())
    except OSError:
        pass
    return None


def native_bfloat16_flags():
    """This CPU's flags that compute bfloat16 natively (AVX512_BF16, AMX): a tuple, empty where it has none (or
    FAST_STYLE_NO_BF16 is set), None where they cannot be read.

    oneDNN also rewrites to bfloat16 on AVX-512 CPUs without these, emulating it more slowly than float32, and not
    at all without AVX-512: the pixels change or the speed does not, so only these flags count."""
    if os.environ.get(NO_BF16_VARIABLE, '0') != '0':
        return ()
    flags = cpu_flags()
    return None if flags is None else tuple(flag for flag in NATIVE_BFLOAT16_FLAGS if flag in flags)


def _announce(level, message):
    """Log `message` once per process: every session of a command asks, the person needs to read it once."""
    if message not in _announced:
        _announced.add(message)
        log.log(level, message)


def computing_precision(reduced_precision):
    """The float type convolutions will compute in: 'float32', 'bfloat16' (CPUs with native support) or 'float16'
    (GPUs). Asked for reduced precision, says which in one log line; on a CPU without native bfloat16 it is
    float32, and the line says why."""
    if not reduced_precision:
        return 'float32'
    if gpu_available():
        _announce(logging.INFO, 'precision: float16 convolutions on the GPU, float32 where precision matters')
        return 'float16'
    native = native_bfloat16_flags()
    if native == ():
        _announce(logging.WARNING, 'this CPU has no bfloat16 support (AVX512_BF16/AMX): running float32')
        return 'float32'
    _announce(logging.INFO, 'precision: bfloat16 convolutions through oneDNN (%s)' % (
        'this CPU has ' + ', '.join(flag.upper() for flag in native) if native
        else 'no /proc/cpuinfo to confirm native support'))
    return 'bfloat16'


def session_config(reduced_precision=False, inference=False):
    """Session options. reduced_precision lets Grappler's mixed-precision pass run convolutions and matrix
    products in 16-bit floats while keeping float32 where precision matters (normalization statistics,
    reductions, losses, variables), where computing_precision says the machine has them: bfloat16 through oneDNN
    on CPUs with AVX512_BF16 or AMX, float16 on GPUs. inference: Grappler runs its passes once instead of twice;
    on the transform network the second round finds nothing more, and costs a cold eval.py about a fifth of a
    second before its first image."""
    rewriter_config_pb2 = tensorflow_module('tensorflow.core.protobuf.rewriter_config_pb2')
    config = tf.ConfigProto()
    options = config.graph_options.rewrite_options
    if inference:
        options.meta_optimizer_iterations = rewriter_config_pb2.RewriterConfig.ONE
    precision = computing_precision(reduced_precision)
    if precision == 'float16':
        options.auto_mixed_precision = rewriter_config_pb2.RewriterConfig.ON
    elif precision == 'bfloat16':
        options.auto_mixed_precision_onednn_bfloat16 = rewriter_config_pb2.RewriterConfig.ON
    return config
