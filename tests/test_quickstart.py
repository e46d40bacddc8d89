"""The README's quick start on the repository as a user gets it: only the files git tracks, with the images that
ship in img/, a random-weight VGG-16 where the real one would be downloaded, and the commands read from the README
itself, so that the test follows the README when it changes."""
import functools
import os
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from helpers import ROOT, run_command


def _tracked_files():
    try:
        listed = subprocess.run(['git', 'ls-files', '-z'], cwd=ROOT, capture_output=True, check=True, timeout=60)
    except (OSError, subprocess.CalledProcessError):
        pytest.skip('not a git checkout: the tracked files are unknown')
    return [name for name in listed.stdout.decode().split('\0') if name]


def _readme_commands(title):
    """The commands of the README's section `title`, in order, as argument lists."""
    with open(os.path.join(ROOT, 'README.md'), encoding='utf-8') as f:
        section = f.read().split('\n## %s\n' % title)[1].split('\n## ')[0].replace('\\\n', ' ')
    return [line.split('#')[0].split() for line in section.splitlines() if line.lstrip().startswith('python ')]


@pytest.fixture(scope='module')
def clone(tmp_path_factory, vgg_checkpoint, arbitrary_checkpoint):
    folder = tmp_path_factory.mktemp('clone')
    for name in _tracked_files():
        os.makedirs(folder / os.path.dirname(name), exist_ok=True)
        shutil.copy2(os.path.join(ROOT, name), folder / name)
    os.makedirs(folder / 'pretrained' / 'arbitrary_style_transfer')
    for suffix in ('.index', '.data-00000-of-00001'):  # what the first runs would download
        shutil.copy(vgg_checkpoint + suffix, folder / 'pretrained' / ('vgg_16.ckpt' + suffix))
        shutil.copy(arbitrary_checkpoint + suffix, folder / 'pretrained' / 'arbitrary_style_transfer' /
                    ('model.ckpt' + suffix))
    return folder


def test_the_quick_start_runs_on_a_fresh_clone(clone):
    commands = _readme_commands('Quick start')
    assert [command[1] for command in commands] == ['eval.py', 'eval.py', 'train.py', 'eval.py', 'train.py',
                                                    'export.py', 'eval.py', 'stylize.py']
    photo = np.asarray(Image.open(clone / 'img' / 'test.jpg').convert('RGB'))
    git = functools.partial(subprocess.run, cwd=clone, capture_output=True, text=True, check=True)
    git(['git', 'init', '-q'])
    git(['git', 'add', '-A'])  # what a user has before the commands, under the repository's .gitignore
    for command in commands:
        args = command[2:]
        if command[1] == 'train.py':
            if '--train_dir' not in args:
                continue  # the full run needs COCO, which a test cannot download
            args += ['--max_steps', '2']  # the quick start's run, cut short
        if command[1] == 'stylize.py':
            args += ['--max_size', '64', '--iterations', '1']
        done = run_command(command[1], *args, cwd=clone, timeout=900, root=str(clone))
        assert done.returncode == 0, (command, done.stderr[-3000:])
    # the shipped models', the new one's, Magenta's network's
    for result in ('res.jpg', 'scream-test.jpg', 'udnie-test.jpg', 'udnie-any.jpg'):
        pixels = np.asarray(Image.open(clone / 'generated' / result))
        assert pixels.shape == photo.shape and np.abs(pixels.astype(int) - photo).mean() > 5
    assert os.path.getsize(clone / 'models' / 'udnie.pb') > 1000000
    assert Image.open(clone / 'generated' / 'target_style_udnie.jpg').size == (256, 256)
    assert max(Image.open(clone / 'generated' / 'wave-gatys.jpg').size) == 64
    # every result where results go: nothing new in the clone but what git ignores
    untracked = [line for line in git(['git', 'status', '--porcelain']).stdout.splitlines() if line.startswith('??')]
    assert untracked == []


def test_the_shipped_images_are_the_ones_the_configs_and_the_readme_name(clone):
    for style in ('wave', 'scream', 'udnie', 'denoised_starry'):
        with open(clone / 'conf' / ('%s.yml' % style)) as f:
            assert 'style_image: img/%s.jpg' % style in f.read()
        assert Image.open(clone / 'img' / ('%s.jpg' % style)).size > (400, 400)
    with open(clone / 'img' / 'README.md') as f:
        listed = f.read()
    shipped = [os.path.relpath(os.path.join(folder, name), clone / 'img')
               for folder, _, names in os.walk(clone / 'img') for name in names]
    assert 'photos/chelsea.jpg' in shipped and 'test.jpg' in shipped
    for name in shipped:
        assert name == 'README.md' or '`%s`' % name in listed  # every shipped file has its source and licence
    photos = sorted(os.listdir(clone / 'img' / 'photos'))  # the quick start trains on photos alone
    assert len(photos) >= 4 and 'test.jpg' not in photos


def test_the_several_styles_section_runs_on_the_shipped_network_of_two_styles(clone):
    commands = _readme_commands('Several styles in one network')
    assert [command[1] for command in commands] == ['eval.py', 'eval.py']
    photo = np.asarray(Image.open(clone / 'img' / 'test.jpg').convert('RGB')).astype(int)
    results = []
    for command in commands:
        done = run_command(command[1], *command[2:], cwd=clone, root=str(clone))
        assert done.returncode == 0, (command, done.stderr[-3000:])
        results.append(np.asarray(Image.open(clone / command[command.index('--output') + 1])).astype(int))
    scream, mix = results
    assert scream.shape == mix.shape == photo.shape
    assert np.abs(scream - photo).mean() > 5 and np.abs(mix - scream).mean() > 2  # a mix is not the style itself


def test_the_styles_by_region_section_runs_on_the_shipped_masks(clone):
    [command] = _readme_commands('Styles by region')
    done = run_command(command[1], *command[2:], cwd=clone, root=str(clone))
    assert done.returncode == 0, (command, done.stderr[-3000:])
    result = np.asarray(Image.open(clone / command[command.index('--output') + 1])).astype(int)
    assert result.shape == np.asarray(Image.open(clone / 'img' / 'photos' / 'rocket.jpg')).shape
