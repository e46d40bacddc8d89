"""docs/PERFORMANCE.md and the results it is made from, kept beside it as PERFORMANCE.json.

A run of some groups (performance.py --only) replaces those groups' rows and keeps the others, so the report is
gathered over several runs without merging tables by hand. Each row names the run that measured it, and each run
its command, date and machine: times compare between runs on one machine, and a ratio always holds within its run.
"""
import json
import os
import statistics
import string

from utils import UsageError

COLUMNS = ('run', 'measurement', 'ours: s, median (min-max)', 'ours: peak GB', 'rate',
           'baseline: s, median (min-max)', 'baseline: peak GB', 'time ratio', 'memory ratio')
CELLS = len(COLUMNS) - 1  # a row's cells without its run
MACHINE_COLUMNS = ('run', 'measurement', 'work: GFLOP', 'achieved GFLOP/s', 'of the roof',
                   'matrix ops: share of op time', 'matrix ops alone: of the roof', 'the rest of the op time')
NOT_MEASURED = 'not measured: this CPU has no native bfloat16'
RUN_KEYS = ('command', 'date', 'minutes', 'machine', 'roof')


def _spread(times):
    return '%.3f (%.3f-%.3f)' % (statistics.median(times), min(times), max(times))


def cells(what, ours, baseline, rate):
    """A row's cells but its run: the measurement, ours (times, peak, rate), the baseline's, and the ratios.

    Args:
      what: the measurement's name; ours, baseline: (result dict with 'times', peak GB), ours None when not
        measured, baseline None when there is none; rate: (median seconds, result) -> text such as '0.63 img/s'.
    """
    if ours is None:
        return [what, NOT_MEASURED] + [''] * (CELLS - 2)
    (result, peak), median = ours, statistics.median(ours[0]['times'])
    row = [what, _spread(result['times']), '%.2f' % peak, rate(median, result) if rate else '']
    if not baseline:
        return row + [''] * (CELLS - len(row))
    base_median = statistics.median(baseline[0]['times'])
    return row + [_spread(baseline[0]['times']), '%.2f' % baseline[1], '%.2f' % (median / base_median),
                  '%.2f' % (peak / baseline[1])]


def machine_cells(what, result, roof):
    """A row's cells of the table against the machine, but its run.

    Args:
      what: the measurement's name; result: its result dict, with 'times', 'flops' (the work of one run) and, where
        a run was traced, 'kinds' (share of op time per kind); roof: the machine's GFLOP/s in the row's precision.
    """
    seconds = statistics.median(result['times'])
    achieved = result['flops'] / seconds / 1e9
    row = [what, '%.1f' % (result['flops'] / 1e9), '%.0f' % achieved, '%.2f' % (achieved / roof)]
    kinds = dict(result.get('kinds') or {})
    if not kinds:
        return row + ['not traced'] + [''] * 2
    matrix = kinds.pop('matrix ops', 0.0)
    rest = ', '.join('%s %.0f %%' % (kind, 100 * share) for kind, share in kinds.items() if share >= 0.005)
    alone = '%.2f' % (achieved / matrix / roof) if matrix else ''
    return row + ['%.0f %%' % (100 * matrix), alone, rest]


def markdown_row(row):
    return '| ' + ' | '.join(cell.replace('|', '\\|') for cell in row) + ' |'


def table_header(columns):
    return '%s\n|%s' % (markdown_row(columns), '---|' * len(columns))


def empty():
    return {'runs': [], 'rows': []}


def results_path(report):
    """Where the results of the report `report` are kept: beside it, as .json."""
    return os.path.splitext(report)[0] + '.json'


def load(path, groups):
    """The results kept at `path`: {'runs': [{command, date, minutes, machine}], 'rows': [{group, cells, run (an
    index into runs)}]}; none when there is no file.

    Raises:
      UsageError: the file is not results of this script (of the groups `groups`).
    """
    if not os.path.exists(path):
        return empty()
    try:
        with open(path, encoding='utf-8') as f:
            results = json.load(f)
        _check(results, groups)
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, RecursionError) as error:
        raise UsageError('%s is not the results of benchmarks/performance.py (%s): move it away, or pass --overwrite '
                         'to start the report afresh' % (path, error)) from None
    return results


def _check(results, groups):
    """Raises ValueError, KeyError or TypeError where `results` is not as load() returns them."""
    runs = results['runs']
    for run in runs:
        if set(run) != set(RUN_KEYS):
            raise ValueError('a run has the keys %s, not %s' % (sorted(run), list(RUN_KEYS)))
    for row in results['rows']:
        machine = row.get('machine', [''] * (len(MACHINE_COLUMNS) - 1))
        cells_fit = all(len(given) == len(columns) - 1 and all(isinstance(cell, str) for cell in given)
                        for given, columns in ((row['cells'], COLUMNS), (machine, MACHINE_COLUMNS)))
        run_fits = isinstance(row['run'], int) and 0 <= row['run'] < len(runs)
        if row['group'] not in groups or not cells_fit or not run_fits:
            raise ValueError('a row of group %r, run %r, does not fit' % (row['group'], row['run']))


def merged(results, run, groups, rows, order):
    """`results` with `run` and its `rows` ({group, cells}) in place of every earlier row of `groups`; a run left
    without rows is dropped. Rows go in the groups' `order`, each group's in the order measured."""
    runs = results['runs'] + [run]
    kept = [row for row in results['rows'] if row['group'] not in groups]
    every = kept + [dict(row, run=len(runs) - 1) for row in rows]
    every.sort(key=lambda row: order.index(row['group']))
    used = sorted({row['run'] for row in every})
    return {'runs': [runs[index] for index in used],
            'rows': [dict(row, run=used.index(row['run'])) for row in every]}


def run_label(index):
    return string.ascii_uppercase[index % 26] * (index // 26 + 1)


def markdown(results, intro):
    """The report: a title, `intro` (paragraphs), the runs, the table and the GPU note."""
    runs = results['runs']
    lines = ['# Performance', '', intro.strip(), '', '## Runs', '']
    for index, run in enumerate(runs):
        groups = dict.fromkeys(row['group'] for row in results['rows'] if row['run'] == index)  # in the table's order
        took = ' in %d minutes' % run['minutes'] if run['minutes'] is not None else ''
        lines.append('- **%s** (%s): `%s` on %s%s. Machine: %s. Roof: %s.'
                     % (run_label(index), ', '.join(groups), run['command'], run['date'], took, run['machine'],
                        run['roof']))
    machines = len({run['machine'] for run in runs})
    if machines > 1:
        lines += ['', 'The runs were on %d machines: compare times only between runs on the same machine; a ratio '
                      'holds within its own run.' % machines]
    lines += ['', table_header(COLUMNS)]
    lines += [markdown_row([run_label(row['run'])] + row['cells']) for row in results['rows']]
    lines += ['', '## Against the machine', '', MACHINE_INTRO, '', table_header(MACHINE_COLUMNS)]
    lines += [markdown_row([run_label(row['run'])] + row['machine']) for row in results['rows'] if 'machine' in row]
    lines += ['', '## GPU', '', 'Not yet measured: no GPU was available to these runs. Run the same command on a GPU '
              'machine to fill this table.', '']
    return '\n'.join(lines)


MACHINE_INTRO = (
    "Each row's work is counted from its graph (benchmarks/roofline.py): the convolutions' and matrix products' "
    "floating-point operations (2 per multiply-add), forward and gradient, at the shapes they ran at. Achieved "
    "GFLOP/s is that work over the row's median time; the roof is its run's measured peak in the row's precision "
    "(the best of a 4096 x 4096 matrix product and a 3x3 convolution of 128 maps at 256 x 256, in TensorFlow). The "
    "shares of op time come from one traced run (TensorFlow's step stats, summed over both cores' ops), and the "
    "matrix ops alone are the work over their share of the time: how close the kernels themselves run to the roof. "
    "The rest is memory-bound work a faster kernel would not shorten. TFLite's interpreter is not traced.")


def save(results, intro, report, outputs):
    """Write the results beside `report`, then the report made of them (markdown), through files.Outputs. The
    results go first because they are the source: if the second write fails, the next run merges into them and
    remakes the report; the other order could leave rows in the report that the next run would drop."""
    outputs.data(results_path(report), (json.dumps(results, indent=1) + '\n').encode())
    outputs.data(report, markdown(results, intro).encode())
