"""Packaging of the project for batch.py's workers on Dataflow, Flink or Spark (Beam's --setup_file ./setup.py, see
docs/BATCH.md): every module and package of the tools, and what they need to run a model (requirements.txt and
requirements-beam.txt). Nothing else here needs installing: the commands run from a checkout."""
import glob
import os

import setuptools

ROOT = os.path.dirname(os.path.abspath(__file__))


def requirements(*names):
    """The requirement lines of the files `names`, without comments."""
    lines = []
    for name in names:
        with open(os.path.join(ROOT, name)) as f:
            lines += [line.split('#')[0].strip() for line in f if line.split('#')[0].strip()]
    return lines


setuptools.setup(
    name='fast-style-transfer',
    version='1.0',
    py_modules=sorted(os.path.splitext(os.path.basename(path))[0] for path in glob.glob(os.path.join(ROOT, '*.py'))
                      if os.path.basename(path) != 'setup.py'),
    packages=setuptools.find_packages(ROOT, exclude=['tests', 'tests.*', 'benchmarks', 'benchmarks.*', 'docs']),
    install_requires=requirements('requirements.txt', 'requirements-beam.txt'),
    python_requires='>=3.10',
)
