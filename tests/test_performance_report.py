"""benchmarks/performance.py's report, gathered over runs: a run of some groups replaces their rows and keeps the
others', each row naming its run and each run its machine. The measurements are stand-ins (they are measured by
running the script); what is tested is the report and its results."""
import json
import os
import sys

from helpers import ROOT, usage_error
from utils import cli_main

sys.path.insert(0, ROOT)
from benchmarks import performance  # noqa: E402


def _table(report):
    """{measurement: (run, ours' seconds cell)} of the report's table."""
    rows = [line.split(' | ') for line in report.splitlines() if line.startswith('| ') and ' row |' in line]
    return {cells[1]: (cells[0][2:], cells[2]) for cells in rows}


def _stand_ins(monkeypatch, seconds):
    """Every group measures one row taking seconds[0], the baseline twice as long."""
    def group(name):
        return lambda bench, paths: bench.row(name + ' row', ({'times': [seconds[0]]}, 1.0),
                                              ({'times': [2 * seconds[0]]}, 2.0))
    monkeypatch.setattr(performance, 'GROUPS', {name: group(name) for name in performance.GROUPS})
    monkeypatch.setattr(performance, 'make_inputs', lambda scratch: {})
    monkeypatch.setattr(performance.Bench, 'measure', _roof_stand_in)


def _roof_stand_in(bench, name, variant, *args):
    """The roof child's result: a matrix product at 200 GFLOP/s and a convolution at 100, in every precision."""
    assert name == 'roof'
    return {'times': [], 'rates': {'matmul': 200.0, 'conv': 100.0}}, 0.5


def test_a_run_of_some_groups_replaces_their_rows_and_keeps_the_others(monkeypatch, tmp_path, capsys):
    report = tmp_path / 'PERFORMANCE.md'
    monkeypatch.setattr(performance, 'REPORT', str(report))
    seconds, machine = [1.0], ['machine one']
    _stand_ins(monkeypatch, seconds)
    monkeypatch.setattr(performance, 'machine_description', lambda: machine[0])
    performance.measure_all(['--repeats', '1'])
    everything = {name + ' row': ('A', '1.000 (1.000-1.000)') for name in performance.GROUPS}
    assert _table(report.read_text()) == everything
    assert ('- **A** (forward, eval, export, train, gatys, arbitrary, masks, batch): '
            '`python benchmarks/performance.py --repeats 1`') in report.read_text()

    seconds[0], machine[0] = 3.0, 'machine two'
    performance.measure_all(['--only', 'train,train'])  # each group once
    text = report.read_text()
    assert _table(text) == dict(everything, **{'train row': ('B', '3.000 (3.000-3.000)')})
    assert list(_table(text)) == list(everything)  # in the groups' order, the new row where the old one was
    assert '- **B** (train): `python benchmarks/performance.py --only train,train` on' in text
    assert 'Machine: machine two.' in text and 'The runs were on 2 machines' in text
    assert '| B | train row | 3.000 (3.000-3.000) | 1.00 |  | 6.000 (6.000-6.000) | 2.00 | 0.50 | 0.50 |' in text
    results = json.loads((tmp_path / 'PERFORMANCE.json').read_text())
    assert [run['machine'] for run in results['runs']] == ['machine one', 'machine two']

    performance.measure_all([])  # every group again: the earlier runs have no rows left, and go
    text = report.read_text()
    assert set(_table(text).values()) == {('A', '3.000 (3.000-3.000)')} and '**B**' not in text
    assert 'The runs were on' not in text


def test_results_it_cannot_read_are_refused_before_measuring(monkeypatch, tmp_path, capsys):
    report, results = tmp_path / 'PERFORMANCE.md', tmp_path / 'PERFORMANCE.json'
    monkeypatch.setattr(performance, 'REPORT', str(report))
    _stand_ins(monkeypatch, [1.0])
    monkeypatch.setattr(performance, 'machine_description', lambda: 'machine')
    report.write_text('# Performance\n')
    for broken in ('{', '[]', '{"runs": [], "rows": [{"group": "train", "cells": [], "run": 0}]}',
                   '{"runs": [{"command": 1}], "rows": []}', '[' * 100000):
        results.write_text(broken)
        assert ('PERFORMANCE.json is not the results of benchmarks/performance.py' in
                usage_error(cli_main(performance.measure_all), ['--only', 'eval'], capsys))
        assert report.read_text() == '# Performance\n' and results.read_text() == broken
    performance.measure_all(['--only', 'eval', '--overwrite'])  # afresh: the one group measured
    assert list(_table(report.read_text())) == ['eval row']
    mine = tmp_path / 'mine.md'
    mine.write_text('notes')
    command = cli_main(performance.measure_all)
    assert 'mine.md exists; pass --overwrite' in usage_error(command, ['--output', str(mine)], capsys)
    assert mine.read_text() == 'notes' and not os.path.exists(tmp_path / 'mine.json')
    assert 'unknown group forwad' in usage_error(command, ['--only', 'forwad'], capsys)


def test_a_row_that_counts_its_work_is_held_against_the_run_s_roof(monkeypatch, tmp_path, capsys):
    report = tmp_path / 'PERFORMANCE.md'
    monkeypatch.setattr(performance, 'REPORT', str(report))
    _stand_ins(monkeypatch, [1.0])
    monkeypatch.setattr(performance, 'machine_description', lambda: 'machine')
    traced = {'times': [0.5, 0.4, 0.6], 'flops': 50e9, 'kinds': {'matrix ops': 0.8, 'padding': 0.15, 'casts': 0.001,
                                                                'normalization': 0.049}}

    def measured(bench, paths):
        bench.row('traced row', (traced, 1.0))
        bench.row('untraced row', ({'times': [2.0], 'flops': 100e9}, 1.0))
    monkeypatch.setitem(performance.GROUPS, 'forward', measured)
    performance.measure_all(['--only', 'forward', '--overwrite'])
    text = report.read_text()
    assert 'Roof: measured float32 200 GFLOP/s (matrix product 200, 3x3 convolution 100)' in text
    # 50 GFLOP in 0.5 s: 100 GFLOP/s, half the roof; the matrix ops, in 80 % of the time, at 0.62 of it
    assert '| A | traced row | 50.0 | 100 | 0.50 | 80 % | 0.62 | padding 15 %, normalization 5 % |' in text
    assert '| A | untraced row | 100.0 | 50 | 0.25 | not traced |  |  |' in text
    assert performance.report.load(str(tmp_path / 'PERFORMANCE.json'), performance.GROUPS)['rows'][0]['machine']
