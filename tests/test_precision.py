"""--precision bf16 and mixed_precision on CPUs with and without native bfloat16: what runs, and what the log says.

The fallback is tested on every machine by telling the detection that the CPU lacks it (FAST_STYLE_NO_BF16), the
engaged path where the CPU has it (the tests of each command check the bfloat16 nodes and pixels)."""
import logging

import numpy as np
import pytest

import eval as eval_py
import utils
from helpers import BF16_FALLBACK, CPU_HAS_BF16, NO_BF16, write_image_file
from images import load_image
from inference.stylizer import Stylizer

ON = 1  # RewriterConfig.ON


@pytest.fixture
def no_bf16(monkeypatch):
    """The environment that tells the detection this CPU lacks native bfloat16, as the commands' tests set it."""
    for name, value in NO_BF16.items():
        monkeypatch.setenv(name, value)


@pytest.mark.parametrize('flags, native', [
    ({'avx2', 'avx512f'}, ()),  # AVX-512 alone: oneDNN would emulate bfloat16, slower than float32
    ({'avx512f', 'avx512_bf16'}, ('avx512_bf16',)),
    ({'amx_bf16', 'amx_tile'}, ('amx_bf16',)),
    (None, None),  # no /proc/cpuinfo: unknown
])
def test_native_bfloat16_is_read_from_the_cpu_flags(monkeypatch, flags, native):
    monkeypatch.setattr(utils, 'cpu_flags', lambda: flags)
    monkeypatch.delenv('FAST_STYLE_NO_BF16', raising=False)
    assert utils.native_bfloat16_flags() == native
    monkeypatch.setenv('FAST_STYLE_NO_BF16', '1')
    assert utils.native_bfloat16_flags() == ()


def test_the_flags_of_this_machine_are_read():
    assert isinstance(utils.cpu_flags(), set) and 'sse2' in utils.cpu_flags()
    assert bool(utils.native_bfloat16_flags()) == CPU_HAS_BF16


def _options(config):
    options = config.graph_options.rewrite_options
    return options.auto_mixed_precision_onednn_bfloat16, options.auto_mixed_precision


def test_a_cpu_without_bfloat16_runs_float32_and_says_so_once(monkeypatch, caplog):
    caplog.set_level(logging.INFO, 'fast_style')
    monkeypatch.setattr(utils, 'cpu_flags', lambda: {'avx2', 'avx512f'})
    monkeypatch.setattr(utils, 'gpu_available', lambda: False)
    assert utils.computing_precision(True) == 'float32' and utils.computing_precision(False) == 'float32'
    assert _options(utils.session_config(True)) == (0, 0)  # Grappler's rewrite is not even asked for
    assert [r.getMessage() for r in caplog.records] == [BF16_FALLBACK]
    assert caplog.records[0].levelno == logging.WARNING


def test_a_cpu_with_bfloat16_runs_it_and_says_so(monkeypatch, caplog):
    caplog.set_level(logging.INFO, 'fast_style')
    monkeypatch.setattr(utils, 'cpu_flags', lambda: {'avx512f', 'avx512_bf16', 'amx_bf16'})
    monkeypatch.setattr(utils, 'gpu_available', lambda: False)
    assert utils.computing_precision(True) == 'bfloat16'
    assert _options(utils.session_config(True)) == (ON, 0)
    assert _options(utils.session_config(False)) == (0, 0)
    assert [r.getMessage() for r in caplog.records] == [
        'precision: bfloat16 convolutions through oneDNN (this CPU has AVX512_BF16, AMX_BF16)']


def test_the_stylizer_told_the_cpu_lacks_bfloat16_gives_float32s_pixels(no_bf16, tmp_path, trained_model):
    image = load_image(write_image_file(str(tmp_path / 'photo.png'), 40, 52, seed=3))[0]
    stylizers = [Stylizer(trained_model, precision=precision) for precision in ('bf16', 'fp32')]
    try:
        assert [stylizer.precision for stylizer in stylizers] == ['float32', 'float32']
        assert np.array_equal(stylizers[0](image), stylizers[1](image))
    finally:
        for stylizer in stylizers:
            stylizer.close()


def test_eval_says_once_which_precision_runs(no_bf16, tmp_path, trained_model, caplog):
    caplog.set_level(logging.INFO, 'fast_style')
    photos = [write_image_file(str(tmp_path / ('photo%d.png' % i)), 20, 24, seed=i) for i in range(2)]
    eval_py.main(['--model_file', trained_model, '--image_file', *photos, '--output', str(tmp_path / 'out'),
                  '--precision', 'bf16'])
    assert [r.getMessage() for r in caplog.records].count(BF16_FALLBACK) == 1
