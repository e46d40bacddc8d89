"""Style configs: the shipped ones carry docs/ORIGINAL.md's values; every kind of bad config gets its own message."""
import glob
import os

import pytest

from config import load_config
from helpers import ROOT
from utils import UsageError

SPEC_STYLE_WEIGHTS = {'candy': 50, 'cubist': 180, 'denoised_starry': 250, 'feathers': 220, 'mosaic': 100,
                      'scream': 250, 'udnie': 200, 'wave': 220}


def test_shipped_configs_are_the_classic_eight():
    paths = sorted(glob.glob(os.path.join(ROOT, 'conf', '*.yml')))
    assert [os.path.basename(p)[:-4] for p in paths] == sorted(SPEC_STYLE_WEIGHTS)
    for path in paths:
        config = load_config(path)
        name = config.naming
        assert config.style_weight == SPEC_STYLE_WEIGHTS[name]
        assert (config.content_weight, config.tv_weight, config.image_size, config.batch_size, config.epoch) == (
            1.0, 0.0, 256, 4, 2)
        assert config.style_image == 'img/%s.jpg' % name
        assert config.content_layers == ['vgg_16/conv3/conv3_3']
        assert config.style_layers == ['vgg_16/conv1/conv1_2', 'vgg_16/conv2/conv2_2', 'vgg_16/conv3/conv3_3',
                                       'vgg_16/conv4/conv4_3']
        assert (config.loss_model, config.checkpoint_exclude_scopes, config.loss_model_file, config.train_dir) == (
            'vgg_16', 'vgg_16/fc', 'pretrained/vgg_16.ckpt', 'train2014/')


def _write(tmp_path, text):
    path = tmp_path / 'c.yml'
    path.write_text(text)
    return str(path)


BASE = 'style_image: s.jpg\nnaming: x\ncontent_weight: 1\nstyle_weight: 2\n'


def test_defaults_fill_optional_keys(tmp_path):
    config = load_config(_write(tmp_path, BASE))
    assert config.train_dir == 'train2014/' and config.model_path == 'models' and config.content_weight == 1.0
    assert config.loss_model_url.endswith('vgg_16_2016_08_28.tar.gz')
    assert config.mixed_precision is False


@pytest.mark.parametrize('text,message', [
    ('style_image: [unclosed\n', r'not valid YAML \(line \d+\): .*c.yml \(fix its syntax'),
    ('- just\n- a list\n', 'must be a YAML mapping'),
    (BASE + 'style_wieght: 3\n', r"unknown key 'style_wieght' \(did you mean 'style_weight'\?\)"),
    (BASE + 'zzz: 3\n', r"unknown key 'zzz' \(valid keys: style_image, naming"),
    ('naming: x\ncontent_weight: 1\nstyle_weight: 2\n', r"missing key 'style_image'"),
    (BASE + 'image_size: 25.5\n', r'image_size must be a whole number, got 25.5'),
    (BASE.replace('style_weight: 2', 'style_weight: high'), r"style_weight must be a number, got 'high'"),
    (BASE + 'content_layers: vgg_16/conv3/conv3_3\n', 'content_layers must be a non-empty list of strings'),
    (BASE + 'batch_size: 0\n', 'batch_size must be positive'),
    (BASE + 'tv_weight: -1\n', r'tv_weight must be a finite number >= 0'),
    (BASE + 'naming: 7\n', 'naming must be a string'),
    (BASE + 'mixed_precision: yes please\n', r"mixed_precision must be true or false, got 'yes please'"),
    (BASE + 'image_size: 2147483648\n', 'image_size must be at most 8192, got 2147483648'),
    (BASE + 'batch_size: 99999999999999999999\n', 'batch_size must be at most 4096, got 99999999999999999999'),
    (BASE + 'checkpoint_secs: 1.0e+300\n', r'checkpoint_secs must be at most 1000000000.0, got 1e\+300'),
    (BASE + 'max_image_pixels: 0\n', 'max_image_pixels must be positive'),
])
def test_bad_configs_get_their_own_message(tmp_path, text, message):
    with pytest.raises(UsageError, match=message):
        load_config(_write(tmp_path, text))


def test_missing_config_and_folder(tmp_path):
    with pytest.raises(UsageError, match='config file not found: .*nope.yml'):
        load_config(str(tmp_path / 'nope.yml'))
    with pytest.raises(UsageError, match='config file is a folder'):
        load_config(str(tmp_path))


def test_yaml_tags_that_build_objects_are_refused(tmp_path):
    with pytest.raises(UsageError, match='not valid YAML'):
        load_config(_write(tmp_path, BASE + 'model_path: !!python/object/apply:os.system ["true"]\n'))


_ALIAS_BOMB = ''.join('%s: &%s [%s]\n' % (name, name, ','.join(['*' + previous] * 9))
                      for previous, name in zip('abcdefgh', 'bcdefghi'))


@pytest.mark.parametrize('text,message', [
    ('a: &a ["lol", "lol"]\n' + _ALIAS_BOMB + BASE, r'uses a YAML alias \(\*a\)'),
    (BASE + 'content_layers: ' + '[' * 20000 + ']' * 20000 + '\n', 'not valid YAML|nests'),
    (BASE + 'content_layers: [[[[[x]]]]]\n', 'nests lists or mappings more than 4 deep'),
    (BASE + 'naming: "' + 'x' * 70000 + '"\n', r'config file is \d+ bytes, over the 65536'),
    (BASE + 'image_size: ' + '9' * 5000 + '\n', 'not valid YAML'),
])
def test_hostile_configs_are_refused_quickly_in_one_short_line(tmp_path, text, message):
    import resource
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(UsageError, match=message) as error:
        load_config(_write(tmp_path, text))
    assert len(str(error.value)) < 300 and '\n' not in str(error.value)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100 * 1024  # KB: nothing was expanded


def test_long_values_are_cut_in_messages(tmp_path):
    with pytest.raises(UsageError) as error:
        load_config(_write(tmp_path, BASE + 'naming: [' + ', '.join(['1'] * 5000) + ']\n'))
    assert 'naming must be a string, got [1, 1,' in str(error.value) and len(str(error.value)) < 200
