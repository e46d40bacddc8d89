"""Every file a command writes goes through files.Outputs, by construction.

Each command's options are classified here (what it reads, what it writes, plain values): an option added without
its class fails the first test. Each command then runs with every option that writes, under an audit hook that
records what Python opens for writing and every rename: a write must go to a staging entry of files.py (a
hidden `.NAME.*.partial` beside the output) and a rename must land on a path the run claimed through Outputs.
TensorFlow's own writers (checkpoints, summaries, SavedModel) write in C++ inside a claimed folder or a staging
folder; they are covered by their claims.
"""
import argparse
import os
import sys

import pytest
from PIL import Image

import eval as eval_py
import export
import files
import serve
import stylize
import train
from helpers import ROOT, make_video, usage_error, write_config, write_image_file
from utils import cli_main

sys.path.insert(0, os.path.join(ROOT, 'models', 'recipe'))
sys.path.insert(0, os.path.join(ROOT, 'docs'))
import crops  # noqa: E402
import figure  # noqa: E402
from benchmarks import init_from_curve, performance, scaling  # noqa: E402

READS, WRITES = 'reads', 'writes'
# Every option of every command: READS a path, WRITES a path, or a plain value (None).
OPTIONS = {
    'eval': (eval_py.parse_args, {
        'model_file': READS, 'image_file': READS, 'video': READS, 'output': WRITES, 'overwrite': None,
        'skip_existing': None, 'format': None, 'quality': None, 'preserve_colors': None, 'strength': None,
        'max_pixels': None, 'precision': None, 'batch_size': None, 'smooth': None, 'style': None, 'style_mix': None,
        'consistency': None, 'style_image': READS, 'style_strength': None, 'style_size': None, 'no_download': None,
        'mask': READS, 'stroke': None}),
    'stylize': (stylize.parse_args, {
        'content': READS, 'mask': READS, 'style': READS, 'loss_model_file': READS, 'output': WRITES, 'frames_dir': WRITES,
        'overwrite': None, 'style_blend': None, 'max_size': None, 'width': None, 'height': None,
        'style_scale': None, 'max_memory': None, 'preserve_colors': None, 'loss_model_url': None,
        'no_download': None, 'content_layers': None, 'style_layers': None, 'style_layer_weights': None,
        'content_weight': None, 'style_weight': None, 'tv_weight': None, 'init': None, 'precision': None,
        'seed': None, 'optimizer': None, 'learning_rate': None, 'iterations': None, 'save_every': None,
        'sizes': None, 'stage_dir': WRITES}),
    'export': (export.parse_args, {
        'model_file': READS, 'output': WRITES, 'overwrite': None, 'format': None, 'fp16': None, 'name': None}),
    'train': (train.parse_args, {  # the config's paths: model_path/naming WRITES, style_image, train_dir READ
        'conf': READS, 'train_dir': READS, 'init_from': READS, 'preview': READS, 'epoch': None, 'max_steps': None,
        'no_download': None,
        'frozen_styles': None,
        'distribute': None, 'devices': None, 'worker_timeout': None}),
    'serve': (serve.parse_args, {  # writes no file
        'model': READS, 'demo': None, 'host': None, 'port': None, 'precision': None, 'workers': None,
        'queue': None, 'timeout': None, 'max_request_bytes': None, 'max_image_pixels': None,
        'memory_pixels': None, 'body_timeout': None, 'header_timeout': None, 'max_connections': None}),
    'crops': (crops.parse_args, {
        'photos': READS, 'output': WRITES, 'per_photo': None, 'size': None, 'min_scale': None, 'seed': None}),
    'figure': (figure.main, {
        'images': READS, 'output': WRITES, 'overwrite': None, 'height': None, 'gap': None, 'columns': None,
        'square': None, 'crop': None}),
    'init_from_curve': (init_from_curve.main, {
        'config': READS, 'init_from': READS, 'photos': READS, 'test': READS, 'work': WRITES, 'output': WRITES,
        'figure': WRITES, 'overwrite': None, 'steps': None, 'parallel': None, 'report_only': None}),
    'performance': (performance.measure_all, {  # its report and results only: the measuring runs in a scratch folder
        'output': WRITES, 'overwrite': None, 'repeats': None, 'rounds': None, 'only': None}),
    'scaling': (scaling.parse_args, {  # its plot only: the measuring runs in a scratch folder
        'plot': WRITES, 'overwrite': None, 'repeats': None, 'eval_sides': None, 'whole_sides': None,
        'gatys_sides': None}),
}
try:
    import batch
except ImportError:  # no Apache Beam: batch.py's test is skipped
    batch = None
else:
    OPTIONS['batch'] = (lambda argv: batch.parse_args(argv), {  # Beam's options are Beam's: values, or a bucket
        'model_file': READS, 'input': READS, 'output': WRITES, 'overwrite': None, 'format': None, 'quality': None,
        'preserve_colors': None, 'strength': None, 'max_pixels': None, 'precision': None, 'style': None,
        'style_mix': None, 'style_image': READS, 'style_strength': None, 'style_size': None, 'no_download': None,
        'mask': READS, 'stroke': None})


class _Parsed(Exception):
    pass


def _options(build, monkeypatch):
    """The dests of every option of the parser that `build` (a parse_args or main) makes."""
    parsers = []

    def capture(self, args=None, namespace=None):
        parsers.append(self)
        raise _Parsed
    monkeypatch.setattr(argparse.ArgumentParser, 'parse_known_args', capture)  # parse_args calls it
    with pytest.raises(_Parsed):
        build([])
    monkeypatch.undo()
    return {action.dest for action in parsers[0]._actions if action.dest != 'help'}


@pytest.mark.parametrize('command', sorted(OPTIONS))
def test_every_option_is_classified(command, monkeypatch):
    build, classes = OPTIONS[command]
    assert _options(build, monkeypatch) == set(classes), 'classify the new option in OPTIONS, and walk it below'


# ------------------------------------------------------------------------------------------------------------------
# The audit: what Python writes while a command runs
# ------------------------------------------------------------------------------------------------------------------

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
_recorded = None  # a list while a command runs under the audit


def _audit(event, args):
    if _recorded is None:
        return
    if event == 'open' and isinstance(args[0], (str, bytes, os.PathLike)):
        path, mode, flags = args
        if (mode and set(mode) & set('wax+')) or (flags or 0) & _WRITE_FLAGS:
            _recorded.append(('write', os.fsdecode(path)))
    elif event == 'os.rename':
        _recorded.append(('rename', os.fsdecode(args[1])))


sys.addaudithook(_audit)  # an audit hook cannot be removed; it records only while _recorded is a list


def _is_staging(path):
    """Inside an Outputs staging entry: a hidden `.NAME.*.partial...` file or folder."""
    return any(part.startswith('.') and '.partial' in part for part in os.path.abspath(path).split(os.sep))


def _run_audited(monkeypatch, command, argv):
    """Run a command's main(argv) in process; returns (claimed real paths, recorded writes and renames)."""
    global _recorded
    claimed, real_claim = [], files.Outputs.claim

    def recording_claim(self, path, *args, **kwargs):
        claimed.append(os.path.realpath(path))
        return real_claim(self, path, *args, **kwargs)
    monkeypatch.setattr(files.Outputs, 'claim', recording_claim)
    _recorded = []
    try:
        command(argv)
    finally:
        global _last_audit
        recorded, _recorded = _recorded, None
        _last_audit = claimed, recorded  # for a command that ends with an exit status
    return claimed, recorded


_last_audit = None


def _assert_through_outputs(claimed, recorded):
    assert claimed and recorded, 'the command wrote nothing: the walk does not exercise it'
    for kind, path in recorded:
        if path.endswith('.pyc') or path == os.devnull:
            continue
        if kind == 'write':
            assert _is_staging(path), 'written outside files.Outputs: %s' % path
        else:
            real = os.path.realpath(path)
            assert _is_staging(path) or any(real == c or real.startswith(c + '.') for c in claimed), \
                'renamed onto a path no Outputs claimed: %s' % path


def test_eval_writes_images_and_videos_through_outputs(tmp_path, trained_model, monkeypatch):
    photos = [write_image_file(str(tmp_path / 'in' / name), 16, 20, seed=i)
              for i, name in enumerate(('a.png', 'b.jpg'))]
    for argv in (['--image_file', photos[0], '--output', str(tmp_path / 'one.png')],
                 ['--image_file', str(tmp_path / 'in'), '--output', str(tmp_path / 'many') + '/']):
        _assert_through_outputs(*_run_audited(monkeypatch, eval_py.main, ['--model_file', trained_model, *argv]))
    make_video(tmp_path / 'clip.mp4', seconds=1)
    _assert_through_outputs(*_run_audited(monkeypatch, eval_py.main, [
        '--model_file', trained_model, '--video', str(tmp_path / 'clip.mp4'), '--output', str(tmp_path / 'v.mp4')]))


@pytest.mark.skipif(batch is None, reason='needs Apache Beam (requirements-beam.txt)')
def test_batch_writes_its_results_and_failures_file_through_outputs(tmp_path, trained_model, monkeypatch):
    write_image_file(str(tmp_path / 'in' / 'sub' / 'a.png'), 16, 20)
    (tmp_path / 'in' / 'broken.jpg').write_bytes(b'not an image')
    with pytest.raises(SystemExit):  # the broken image: exit status 1
        claimed, recorded = _run_audited(monkeypatch, batch.main, [
            '--model_file', trained_model, '--input', str(tmp_path / 'in'), '--output', str(tmp_path / 'out')])
    assert sorted(os.listdir(tmp_path / 'out')) == ['batch_failures.jsonl', 'sub']
    _assert_through_outputs(*_last_audit)


def test_stylize_writes_its_result_and_frames_through_outputs(tmp_path, vgg_checkpoint, monkeypatch):
    content = write_image_file(str(tmp_path / 'c.jpg'), 24, 32, seed=1)
    style = write_image_file(str(tmp_path / 's.jpg'), 32, 32, seed=2)
    claimed, recorded = _run_audited(monkeypatch, stylize.main, [
        '--content', content, '--style', style, '--loss_model_file', vgg_checkpoint, '--max_size', '32',
        '--optimizer', 'adam', '--iterations', '2', '--save_every', '1', '--frames_dir', str(tmp_path / 'frames'),
        '--output', str(tmp_path / 'out.jpg')])
    _assert_through_outputs(claimed, recorded)
    assert sorted(os.listdir(tmp_path / 'frames')) == ['res_1.jpg', 'res_2.jpg']
    _assert_through_outputs(*_run_audited(monkeypatch, stylize.main, [  # coarse to fine: the stages kept
        '--content', content, '--style', style, '--loss_model_file', vgg_checkpoint, '--sizes', '24,32',
        '--iterations', '1', '--stage_dir', str(tmp_path / 'stages'), '--output', str(tmp_path / 'staged.png')]))
    assert len(os.listdir(tmp_path / 'stages')) == 1


@pytest.mark.parametrize('fmt', sorted(export.SUFFIXES))
def test_export_writes_every_format_through_outputs(tmp_path, trained_model, monkeypatch, fmt):
    _assert_through_outputs(*_run_audited(monkeypatch, export.main, [
        '--model_file', trained_model, '--format', fmt, '--output', str(tmp_path / ('m' + export.SUFFIXES[fmt]))]))


def test_train_claims_its_folder_and_writes_its_target_through_outputs(workspace, monkeypatch):
    claimed, recorded = _run_audited(monkeypatch, train.main, ['-c', write_config('tiny.yml'), '--max_steps', '1',
                                                               '--preview', 'style.jpg'])
    _assert_through_outputs(claimed, recorded)
    assert os.path.realpath('models/tiny') in claimed and os.path.realpath('generated/target_style_tiny.jpg') in claimed
    assert os.path.realpath('generated/preview_tiny/step-1.jpg') in claimed


def test_train_refuses_a_model_folder_holding_other_files(workspace, capsys):
    os.makedirs('models/tiny')
    with open('models/tiny/notes.txt', 'w') as f:
        f.write('mine')
    with pytest.raises(SystemExit):
        train.main(['-c', write_config('tiny.yml'), '--max_steps', '1'])
    assert 'the model folder (model_path/naming) models/tiny exists and is not a model folder of train.py' in \
        capsys.readouterr().err
    assert os.listdir('models/tiny') == ['notes.txt']


def test_the_tools_write_through_outputs(tmp_path, monkeypatch):
    photos = [write_image_file(str(tmp_path / 'p' / name), 40, 48, seed=i) for i, name in enumerate(('a.jpg',
                                                                                                     'b.jpg'))]
    _assert_through_outputs(*_run_audited(monkeypatch, crops.main, [
        '--photos', str(tmp_path / 'p'), '--output', str(tmp_path / 'crops'), '--per_photo', '2', '--size', '16']))
    _assert_through_outputs(*_run_audited(monkeypatch, figure.main, [*photos, '--output', str(tmp_path / 'f.jpg'),
                                                                     '--height', '16']))


def test_the_scaling_benchmark_writes_its_plot_through_outputs_and_replaces_no_other_file(tmp_path, monkeypatch,
                                                                                          capsys):
    """The measuring stood in for (each size: seconds and GB growing with its pixels): what is walked is the plot."""
    monkeypatch.setattr(performance, 'make_inputs', lambda scratch: {'model': 'm', 'vgg': 'v'})
    monkeypatch.setattr(performance, 'machine_description', lambda: 'machine')
    monkeypatch.setattr(performance.Bench, 'measure', lambda bench, name, variant, weights, side: (
        {'times': [side * side / 1e6] * bench.repeats}, 0.5 + side * side / 1e7))
    plot = tmp_path / 'docs' / 'scaling.png'
    argv = ['--plot', str(plot), '--eval_sides', '256,4096', '--gatys_sides', '256,512']
    _assert_through_outputs(*_run_audited(monkeypatch, scaling.main, argv))
    assert '| Gatys iteration | 512 | 0.26 | 0.26 | 1.000 | 0.53 | 2.007 |' in capsys.readouterr().out
    with Image.open(plot) as picture:
        assert picture.format == 'PNG'
    mine = tmp_path / 'mine.png'
    mine.write_bytes(b'my picture')
    assert '--plot %s exists; pass --overwrite' % mine in usage_error(cli_main(scaling.main), argv[2:] + [
        '--plot', str(mine)], capsys)
    assert mine.read_bytes() == b'my picture'
    for refused, message in ((['--whole_sides', '100000'], '--whole_sides 100000 needs about 5001 GB'),
                             (['--repeats', '0'], 'expected a whole number of at least 1'),
                             (['--gatys_sides', '256,-1'], 'expected whole numbers of at least 1')):
        new = tmp_path / 'new.png'  # refused before the measuring and before the plot's claim: nothing written
        assert message in usage_error(cli_main(scaling.main), argv[2:] + refused + ['--plot', str(new)], capsys)
        assert not new.exists()


@pytest.fixture
def curve_work(tmp_path):
    """init_from_curve's work folder with results at steps 0 and 25, its config and the arguments of a report."""
    work = tmp_path / 'work'
    for key in ('init_from-25', 'scratch-25'):
        write_image_file(str(work / (key + '.jpg')), 24, 32, seed=len(key))
    (work / 'results.json').write_text('{"photo": [0, 9.5], "init_from-0": [1, 2], "init_from-25": [3, 4], '
                                       '"scratch-25": [5, 6]}')
    write_image_file(str(tmp_path / 'style.jpg'), 24, 24)
    config = write_config(tmp_path / 'c.yml', style_image=str(tmp_path / 'style.jpg'))
    return ['--report_only', '--work', str(work), '--config', config, '--steps', '25']


def test_the_init_from_benchmark_writes_its_report_and_figure_through_outputs(tmp_path, curve_work, monkeypatch):
    report, picture = tmp_path / 'docs' / 'r.md', tmp_path / 'docs' / 'f.jpg'
    _assert_through_outputs(*_run_audited(monkeypatch, init_from_curve.main, curve_work + [
        '--output', str(report), '--figure', str(picture)]))
    assert '| 25 | 3 | 4 | 5 | 6 |' in report.read_text() and picture.stat().st_size > 0


def test_a_benchmark_replaces_only_its_own_report_without_overwrite(tmp_path, curve_work, monkeypatch, capsys):
    mine = tmp_path / 'notes.md'
    mine.write_text('my notes')
    assert 'notes.md exists; pass --overwrite' in usage_error(init_from_curve.main, curve_work + [
        '--output', str(mine), '--figure', str(tmp_path / 'f.jpg')], capsys)
    assert mine.read_text() == 'my notes' and not (tmp_path / 'f.jpg').exists()  # refused before any write
    # The default report and figure are the benchmark's own (docs/INIT_FROM.md): rewritten as they are.
    report, picture = tmp_path / 'INIT_FROM.md', tmp_path / 'curve.jpg'
    report.write_text('an earlier table')
    write_image_file(str(picture), 8, 8)
    monkeypatch.setattr(init_from_curve, 'REPORT', str(report))
    monkeypatch.setattr(init_from_curve, 'FIGURE', str(picture))
    init_from_curve.main(curve_work)
    assert report.read_text().startswith('# Training from a trained network')
    init_from_curve.main(curve_work + ['--output', str(mine), '--overwrite'])
    assert mine.read_text().startswith('# Training from a trained network')


def test_a_benchmark_writes_into_no_folder_of_other_files(tmp_path, curve_work, capsys):
    other = tmp_path / 'other'
    other.mkdir()
    (other / 'keep.txt').write_text('mine')
    work_at = curve_work.index('--work') + 1
    argv = curve_work[:work_at] + [str(other)] + curve_work[work_at + 1:]
    assert "is not this benchmark's work folder" in usage_error(
        init_from_curve.main, argv + ['--output', str(tmp_path / 'r.md'), '--figure', str(tmp_path / 'f.jpg')], capsys)
    assert os.listdir(other) == ['keep.txt']
