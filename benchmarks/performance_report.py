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
NOT_MEASURED = 'not measured: this CPU has no native bfloat16'
RUN_KEYS = ('command', 'date', 'minutes', 'machine')


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
        cells_fit = len(row['cells']) == CELLS and all(isinstance(cell, str) for cell in row['cells'])
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
        lines.append('- **%s** (%s): `%s` on %s%s. Machine: %s.'
                     % (run_label(index), ', '.join(groups), run['command'], run['date'], took, run['machine']))
    machines = len({run['machine'] for run in runs})
    if machines > 1:
        lines += ['', 'The runs were on %d machines: compare times only between runs on the same machine; a ratio '
                      'holds within its own run.' % machines]
    lines += ['', table_header(COLUMNS)]
    lines += [markdown_row([run_label(row['run'])] + row['cells']) for row in results['rows']]
    lines += ['', '## GPU', '', 'Not yet measured: no GPU was available to these runs. Run the same command on a GPU '
              'machine to fill this table.', '']
    return '\n'.join(lines)


def save(results, intro, report, outputs):
    """Write the results beside `report`, then the report made of them (markdown), through files.Outputs. The
    results go first because they are the source: if the second write fails, the next run merges into them and
    remakes the report; the other order could leave rows in the report that the next run would drop."""
    outputs.data(results_path(report), (json.dumps(results, indent=1) + '\n').encode())
    outputs.data(report, markdown(results, intro).encode())
