"""benchmarks/init_from_curve.py end to end on tiny data: both runs trained (at once, --parallel) to a
milestone, measured, and the report and figure written; a second start resumes from what is done."""
import json
import os

from benchmarks import init_from_curve
from helpers import write_config, write_image_file
from images import read_image


def test_both_runs_train_at_once_to_each_milestone_and_are_measured(workspace, trained_model, capfd):
    write_image_file('held_out.jpg', 40, 56, seed=7)
    argv = ['--config', write_config('tiny.yml'), '--init_from', trained_model, '--photos', 'train',
            '--test', 'held_out.jpg', '--steps', '1', '--work', 'work', '--output', 'report.md',
            '--figure', 'curve.jpg', '--parallel']
    init_from_curve.main(argv)
    err = capfd.readouterr().err
    assert '[init_from] ' in err and '[scratch] ' in err  # both runs' logs, each line marked
    with open('work/results.json') as f:
        results = json.load(f)
    assert set(results) == {'photo', 'init_from-0', 'init_from-1', 'scratch-1'}
    assert all(len(values) == 2 and values[1] > 0 for key, values in results.items() if key != 'photo')
    assert read_image('work/scratch-1.jpg').shape == (40, 56, 3) and os.path.getsize('curve.jpg') > 0
    init_from_curve.main(argv + ['--steps', '1,2', '--overwrite'])  # resumes: only step 2 is trained
    err = capfd.readouterr().err
    assert 'resumed from work/init_from/tiny/fast-style-model.ckpt-1' in err
    assert 'training steps 2 to 2' in err and 'training steps 1 to' not in err
    with open('work/results.json') as f:
        results = json.load(f)
    with open('report.md') as f:
        report = f.read()
    assert '| 2 | %.4g | %.4g | %.4g | %.4g |' % (*results['init_from-2'], *results['scratch-2']) in report
