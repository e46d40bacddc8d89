"""Shared helpers: a quiet TensorFlow, user-facing errors, style configs, session options and image files.

Every entry point imports this module first, so that TensorFlow is loaded once, in graph mode, without its
start-up banners. Set TF_CPP_MIN_LOG_LEVEL yourself to see TensorFlow's own logs again.
"""
import argparse
import contextlib
import difflib
import functools
import io
import logging
import os
import sys
import warnings

import numpy as np
import yaml
from PIL import Image, ImageOps, UnidentifiedImageError


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


def _import_tensorflow():
    quiet = 'TF_CPP_MIN_LOG_LEVEL' not in os.environ
    if quiet:
        os.environ['TF_CPP_MIN_LOG_LEVEL'] = '2'
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


# Import TensorFlow and TF-Slim from here (`from utils import slim, tf`), never directly: the first import
# decides whether the banners are muted.
tf, slim = _import_tensorflow()

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


class ArgumentParser(argparse.ArgumentParser):
    """argparse with our error convention: one line, exit status 2 (argparse prints the whole usage first)."""

    def error(self, message):
        print('error: %s (see %s --help)' % (message, self.prog), file=sys.stderr)
        sys.exit(2)


def require_file(path, what, fix):
    """Raise UsageError naming `what` and how to `fix` it when `path` is not an existing file."""
    if not os.path.isfile(path):
        reason = 'is a folder' if os.path.isdir(path) else 'not found'
        raise UsageError('%s %s: %s (%s)' % (what, reason, path, fix))


# --------------------------------------------------------------------------------------------------------------
# Style configs (conf/*.yml)
# --------------------------------------------------------------------------------------------------------------

REQUIRED = object()
STR_LIST = 'list of strings'
STR_OR_LIST = 'a string or a list of strings'
FLOAT_OR_LIST = 'a number or a list of numbers'
MAX_STYLES = 64  # a network of several styles: each adds two (N, C) variables a layer and its Gram targets

# key: (type, default). Types are checked; numbers must also be non-negative (sizes and counts positive).
CONFIG_SCHEMA = {
    'style_image': (STR_OR_LIST, REQUIRED),  # several: one network of several styles
    'naming': (str, REQUIRED),
    'model_path': (str, 'models'),
    'content_weight': (float, REQUIRED),
    'style_weight': (FLOAT_OR_LIST, REQUIRED),  # one for all styles, or one per style
    'tv_weight': (float, 0.0),
    'image_size': (int, 256),
    'batch_size': (int, 4),
    'epoch': (int, 2),
    'loss_model': (str, 'vgg_16'),
    'content_layers': (STR_LIST, ['vgg_16/conv3/conv3_3']),
    'style_layers': (STR_LIST, ['vgg_16/conv1/conv1_2', 'vgg_16/conv2/conv2_2',
                                'vgg_16/conv3/conv3_3', 'vgg_16/conv4/conv4_3']),
    'checkpoint_exclude_scopes': (str, 'vgg_16/fc'),
    'loss_model_file': (str, 'pretrained/vgg_16.ckpt'),
    'loss_model_url': (str, 'http://download.tensorflow.org/models/vgg_16_2016_08_28.tar.gz'),
    'train_dir': (str, 'train2014/'),
    'keep_checkpoints': (int, 5),
    'checkpoint_secs': (float, 600.0),
    'max_bad_fraction': (float, 0.05),
    'max_image_pixels': (int, 50_000_000),  # a training image decoding to more is skipped: bounds the memory
    'mixed_precision': (bool, False),
}
_POSITIVE_KEYS = ('image_size', 'batch_size', 'epoch', 'keep_checkpoints', 'max_image_pixels')
# The largest values that make sense (an image side, a batch, passes, checkpoints kept, a training image's pixels):
# larger ones overflow TensorFlow's int32 shapes or ask for more memory than any machine has.
_MAXIMA = {'image_size': 8192, 'batch_size': 4096, 'epoch': 1_000_000, 'keep_checkpoints': 1_000_000,
           'max_image_pixels': 1_000_000_000, 'checkpoint_secs': 1e9}


class Config(dict):
    """A validated style config; keys read as attributes (config.style_weight)."""
    __getattr__ = dict.__getitem__


def _check_type(path, key, value, kind):
    if kind in (STR_OR_LIST, FLOAT_OR_LIST):
        return _check_one_or_list(path, key, value, str if kind is STR_OR_LIST else float)
    if kind is STR_LIST:
        ok = isinstance(value, list) and value and all(isinstance(item, str) for item in value)
        return value if ok else _type_error(path, key, value, 'a non-empty list of strings')
    if kind is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        return _type_error(path, key, value, 'a number')
    if kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        return _type_error(path, key, value, 'a whole number')
    if kind is bool:
        return value if isinstance(value, bool) else _type_error(path, key, value, 'true or false')
    return value if isinstance(value, str) else _type_error(path, key, value, 'a string')


def _check_one_or_list(path, key, value, item_kind):
    """A value of item_kind, or a list of 1 to MAX_STYLES of them."""
    if not isinstance(value, list):
        return _check_type(path, key, value, item_kind)
    if not 1 <= len(value) <= MAX_STYLES:
        raise UsageError('%s: %s lists %d values; give 1 to %d' % (path, key, len(value), MAX_STYLES))
    return [_check_type(path, '%s[%d]' % (key, index), item, item_kind) for index, item in enumerate(value)]


def style_list(config):
    """[(style image, style weight)] of a config: one pair for a network of one style, one per style else.

    Raises:
      UsageError: style_weight lists another number of weights than style_image lists images.
    """
    images = config.style_image if isinstance(config.style_image, list) else [config.style_image]
    weights = config.style_weight if isinstance(config.style_weight, list) else [config.style_weight] * len(images)
    if len(weights) != len(images):
        raise UsageError('style_weight lists %d weights for %d style images (give one number, or one per image)'
                         % (len(weights), len(images)))
    return list(zip(images, weights))


def _type_error(path, key, value, expected):
    raise UsageError('%s: %s must be %s, got %s (%s)' % (path, key, expected, shorten(value), type(value).__name__))


def _check_range(path, key, value):
    if key in _POSITIVE_KEYS and value <= 0:
        raise UsageError('%s: %s must be positive, got %s' % (path, key, shorten(value)))
    if isinstance(value, float) and not (np.isfinite(value) and value >= 0):
        raise UsageError('%s: %s must be a finite number >= 0, got %r' % (path, key, value))
    if key in _MAXIMA and value > _MAXIMA[key]:
        raise UsageError('%s: %s must be at most %s, got %s' % (path, key, _MAXIMA[key], shorten(value)))
    if key == 'max_bad_fraction' and value > 1:
        raise UsageError('%s: max_bad_fraction is a share of the training images, 0..1, got %r' % (path, value))


MAX_CONFIG_BYTES = 64 * 1024  # a style config is about 1 KB
MAX_CONFIG_DEPTH = 4  # the keys' values are scalars or lists of strings: two levels; room for a clear error
_SAFE_LOADER = getattr(yaml, 'CSafeLoader', yaml.SafeLoader)  # libyaml's parser where PyYAML was built with it


def _read_yaml(path):
    """The YAML document in `path`, read with the safe loader after checking its size, that it has no aliases
    (a few hundred bytes of nested aliases expand to gigabytes) and that it is not deeply nested.

    Raises:
      UsageError: too large, not YAML or UTF-8, with aliases, or nested too deeply.
    """
    if os.path.getsize(path) > MAX_CONFIG_BYTES:
        raise UsageError('config file is %d bytes, over the %d a style config may have: %s (see conf/candy.yml)'
                         % (os.path.getsize(path), MAX_CONFIG_BYTES, path))
    try:
        with open(path, encoding='utf-8') as f:
            text = f.read()
        depth = 0
        for event in yaml.parse(text, Loader=_SAFE_LOADER):
            if isinstance(event, yaml.AliasEvent):
                raise UsageError('config file uses a YAML alias (*%s): %s (write the value out instead)'
                                 % (event.anchor[:40], path))
            depth += isinstance(event, yaml.CollectionStartEvent) - isinstance(event, yaml.CollectionEndEvent)
            if depth > MAX_CONFIG_DEPTH:
                raise UsageError('config file nests lists or mappings more than %d deep: %s (see conf/candy.yml)'
                                 % (MAX_CONFIG_DEPTH, path))
        return yaml.load(text, Loader=_SAFE_LOADER)
    except RecursionError:
        raise UsageError('config file nests too deeply to read: %s (see conf/candy.yml)' % path) from None
    except (yaml.YAMLError, UnicodeDecodeError, ValueError) as error:  # ValueError: an integer of 4300+ digits
        where = getattr(error, 'problem_mark', None)
        at = ' (line %d)' % (where.line + 1) if where else ''
        raise UsageError('config file is not valid YAML%s: %s (fix its syntax; see conf/candy.yml)'
                         % (at, path)) from None


def shorten(value, limit=60):
    """repr(value) cut to about `limit` characters, so that an error message stays one readable line."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 5] + '...' + text[-2:]


def load_config(path):
    """Read and validate a YAML style config.

    Args:
      path: the .yml file.

    Returns:
      A Config with every key of CONFIG_SCHEMA, defaults filled in.

    Raises:
      UsageError: the file is missing, too large or not YAML, or a key is unknown, missing or of the wrong type.
    """
    require_file(path, 'config file', 'pass an existing .yml, e.g. -c conf/candy.yml')
    raw = _read_yaml(path)
    if not isinstance(raw, dict):
        raise UsageError('config file must be a YAML mapping of key: value lines: %s (see conf/candy.yml)' % path)
    config = Config()
    for key in raw:
        if key not in CONFIG_SCHEMA:
            close = difflib.get_close_matches(str(key), CONFIG_SCHEMA, n=1)
            hint = 'did you mean %r?' % close[0] if close else 'valid keys: %s' % ', '.join(CONFIG_SCHEMA)
            raise UsageError('%s: unknown key %s (%s)' % (path, shorten(key), hint))
    for key, (kind, default) in CONFIG_SCHEMA.items():
        if key not in raw:
            if default is REQUIRED:
                raise UsageError('%s: missing key %r (add a line "%s: ...", see conf/candy.yml)' % (path, key, key))
            config[key] = default
            continue
        config[key] = _check_type(path, key, raw[key], kind)
        for value in config[key] if kind in (STR_OR_LIST, FLOAT_OR_LIST) and isinstance(config[key], list) \
                else [config[key]]:
            _check_range(path, key, value)
    try:
        style_list(config)
    except UsageError as error:
        raise UsageError('%s: %s' % (path, error)) from None
    return config


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
    from tensorflow.core.protobuf import rewriter_config_pb2
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


# --------------------------------------------------------------------------------------------------------------
# Image files
# --------------------------------------------------------------------------------------------------------------

IMAGE_FORMATS = {'.jpg': 'JPEG', '.jpeg': 'JPEG', '.png': 'PNG', '.bmp': 'BMP', '.webp': 'WEBP',
                 '.tif': 'TIFF', '.tiff': 'TIFF'}
_ALPHA_FORMATS = ('PNG', 'WEBP', 'TIFF')
_IMAGE_ERRORS = (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError)


def _to_8_bit(image):
    """Grayscale images of more than 8 bits (16-bit PNG, 32-bit TIFF) as 8-bit 'L', scaled, not clipped."""
    values = np.asarray(image, np.float64)
    if values.max(initial=0) > 255:
        values = values / 257.0
    return Image.fromarray(np.clip(np.round(values), 0, 255).astype(np.uint8), 'L')


def load_image(source, what='image', min_side=None, max_pixels=None, formats=None):
    """Read an image (a file path, or a binary file object) as RGB and, where it has one, its alpha channel.

    EXIF orientation is applied; grayscale, palette, 16-bit, CMYK and other modes become 8-bit RGB. With
    min_side, a JPEG much larger than that is decoded at 1/2, 1/4 or 1/8 scale, and any other image is shrunk by
    a whole factor once decoded, both sides staying >= min_side. With max_pixels, an image that would decode to
    more pixels is refused from its header, before anything is decoded. With formats (Pillow's names, e.g.
    ('JPEG', 'PNG')), no other decoder is tried.

    Returns:
      (rgb, alpha): uint8 (H, W, 3) and uint8 (H, W) or None.

    Raises:
      UsageError: the file is missing, is not an image that Pillow can decode, or is too large.
    """
    name = source if isinstance(source, str) else what
    if isinstance(source, str):
        require_file(source, what, 'check the path')
    try:
        with Image.open(source, formats=formats) as image:
            if min_side:
                image.draft('RGB', (min_side, min_side))  # a JPEG's size is now the reduced one it decodes to
            if max_pixels and image.width * image.height > max_pixels:
                raise UsageError('%s is too large: %dx%d is over the limit of %d pixels'
                                 % (what, image.width, image.height, max_pixels))
            factor = min(image.size) // min_side if min_side else 1
            image = ImageOps.exif_transpose(image)
            if image.mode in ('I', 'I;16', 'I;16B', 'I;16L', 'F'):
                image = _to_8_bit(image)
            alpha = None
            if 'A' in image.getbands() or 'transparency' in image.info:
                image = image.convert('RGBA')
                alpha = np.asarray(_reduced(image, factor))[..., 3].copy()
            return np.asarray(_reduced(image.convert('RGB'), factor)), alpha
    except Image.DecompressionBombError:  # Pillow's own limit, far above any max_pixels we use
        raise UsageError('%s is too large: over the limit of %d pixels'
                         % (what, max_pixels or Image.MAX_IMAGE_PIXELS)) from None
    except _IMAGE_ERRORS as error:
        raise UsageError('%s is not a readable image: %s (%s)' % (what, name, error)) from None


def _reduced(image, factor):
    """The image shrunk by a whole factor (each pixel the mean of a factor x factor box)."""
    return image.reduce(factor) if factor > 1 else image


_TRANSPOSING_ORIENTATIONS = (5, 6, 7, 8)  # EXIF orientations that swap width and height


def image_size(path, what='image'):
    """(height, width) of an image file as load_image will return it (EXIF orientation applied), read from its
    header without decoding the pixels.

    Raises:
      UsageError: the file is missing or not an image that Pillow can read.
    """
    require_file(path, what, 'check the path')
    try:
        with Image.open(path) as image:
            width, height = image.size
            if image.getexif().get(0x0112) in _TRANSPOSING_ORIENTATIONS:
                width, height = height, width
    except _IMAGE_ERRORS as error:
        raise UsageError('%s is not a readable image: %s (%s)' % (what, path, error)) from None
    return height, width


def read_image(path, what='image'):
    """An image file as uint8 RGB (H, W, 3); see load_image."""
    return load_image(path, what)[0]


def output_format(path):
    """The Pillow format for an output path, chosen by its extension."""
    ext = os.path.splitext(path)[1].lower()
    if ext not in IMAGE_FORMATS:
        raise UsageError('cannot write %r: unknown image extension %r (use one of %s)'
                         % (path, ext, ', '.join(sorted(IMAGE_FORMATS))))
    return IMAGE_FORMATS[ext]


ENCODER_MAX_SIDE = {'JPEG': 65500, 'WEBP': 16383}  # libjpeg's and libwebp's largest side; PNG, BMP, TIFF: far more


def too_large_for(fmt, height, width):
    """Why a height x width image cannot be encoded as `fmt` (Pillow's name), or None if it can."""
    limit = ENCODER_MAX_SIDE.get(fmt)
    if limit and max(height, width) > limit:
        return 'a %dx%d result is larger than %s can hold (%d pixels a side)' % (width, height, fmt, limit)
    return None


def check_encodable(path, height, width, option='--output'):
    """Raise UsageError, before any work, when a height x width image cannot be written in the format that
    `path`'s extension names (unknown extension, or a side over the encoder's limit)."""
    reason = too_large_for(output_format(path), height, width)
    if reason:
        raise UsageError('%s %s: %s; write it as .png or .tif, or make it smaller' % (option, path, reason))


def _pil_image(pixels, alpha, fmt):
    image = Image.fromarray(np.asarray(pixels, dtype=np.uint8))
    if alpha is not None and fmt in _ALPHA_FORMATS:
        image.putalpha(Image.fromarray(alpha))
    return image


def encode_image(pixels, fmt, alpha=None, quality=95):
    """uint8 RGB pixels (and alpha where the format has it) as the bytes of a JPEG, PNG, WEBP, BMP or TIFF file."""
    buffer = io.BytesIO()
    _pil_image(pixels, alpha, fmt).save(buffer, format=fmt, **({'quality': quality} if fmt in ('JPEG', 'WEBP') else {}))
    return buffer.getvalue()
