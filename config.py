"""Style configs (conf/*.yml): the schema of their keys, reading the YAML safely, and checking every value."""
import os

import numpy as np
import yaml

from utils import UsageError, require_file, shorten, unknown_name_hint


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
    'style_scales': (FLOAT_OR_LIST, 1.0),  # several: the style image at each size, a style each (eval.py --stroke)
}
_MAY_BE_EMPTY = ('checkpoint_exclude_scopes',)  # no scope to leave out of the loss network's checkpoint
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
    if not isinstance(value, str):
        return _type_error(path, key, value, 'a string')
    if not value.strip() and key not in _MAY_BE_EMPTY:
        raise UsageError('%s: %s is empty; give a %s, or leave the key out where it has a default'
                         % (path, key, 'path' if key.split('[')[0].endswith(('_file', '_dir', '_path', '_image')) else 'value'))
    return value


def _check_one_or_list(path, key, value, item_kind):
    """A value of item_kind, or a list of 1 to MAX_STYLES of them."""
    if not isinstance(value, list):
        return _check_type(path, key, value, item_kind)
    if not 1 <= len(value) <= MAX_STYLES:
        raise UsageError('%s: %s lists %d values; give 1 to %d' % (path, key, len(value), MAX_STYLES))
    return [_check_type(path, '%s[%d]' % (key, index), item, item_kind) for index, item in enumerate(value)]


def style_list(config):
    """[(style image, style weight)] of a config, one pair per style of its network: one pair for a network of one
    style, one per style image, or one per scale of style_scales (the image repeats; style_scale_list says its
    scale).

    Raises:
      UsageError: style_weight lists another number of weights than style_image lists images.
    """
    images = _listed(config.style_image)
    weights = config.style_weight if isinstance(config.style_weight, list) else [config.style_weight] * len(images)
    if len(weights) != len(images):
        raise UsageError('style_weight lists %d weights for %d style images (give one number, or one per image)'
                         % (len(weights), len(images)))
    return list(zip(images, weights)) * len(_scales(config))


def _listed(value):
    """A key's one value or list of them, as a list."""
    return value if isinstance(value, list) else [value]


def _scales(config):
    return sorted(_listed(config.style_scales))


def style_scale_list(config):
    """The scale of the style image of each style, in style_list's order (smallest first)."""
    return [scale for scale in _scales(config) for _ in _listed(config.style_image)]


# A scale resizes the style image's training crop to image_size x scale pixels a side: at least this, for VGG's
# deepest style layers to see a few pixels, and at most the largest image_size.
MIN_STYLE_CROP = 16


def _check_scales(path, config):
    """Raise UsageError unless style_scales lists distinct positive scales of one style image whose crops VGG can
    take."""
    scales = _scales(config)
    if len(scales) == 1 and scales[0] == 1:
        return
    if isinstance(config.style_image, list) and len(config.style_image) > 1:
        raise UsageError('%s: style_scales trains one style image at several sizes, and style_image lists %d; give '
                         'one style image, or leave style_scales out' % (path, len(config.style_image)))
    named = ['%g' % scale for scale in scales]
    if len(set(named)) < len(named):
        raise UsageError('%s: style_scales lists a scale twice: %s (give distinct scales, e.g. [0.5, 1, 2])'
                         % (path, ', '.join(named)))
    for scale in scales:
        side = round(config.image_size * scale)
        if scale <= 0 or not MIN_STYLE_CROP <= side <= _MAXIMA['image_size']:
            raise UsageError('%s: style_scales %g makes a %d-pixel style crop of image_size %d; each scale must give '
                             '%d to %d pixels (e.g. [0.5, 1, 2])' % (path, scale, side, config.image_size,
                                                                      MIN_STYLE_CROP, _MAXIMA['image_size']))


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
            raise UsageError('%s: unknown key %s (%s)' % (path, shorten(key), unknown_name_hint(key, CONFIG_SCHEMA)))
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
    _check_scales(path, config)
    return config
