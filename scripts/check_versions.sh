#!/usr/bin/env bash
# dopatut with the oldest releases it claims to support (pyproject.toml's lower bounds, pinned in
# .ci/oldest.txt), or with the newest on the registry, in a virtual environment of its own: the unit tests
# and two chapters. CI runs `oldest`; run `newest` when a new torch comes out.
#
#   scripts/check_versions.sh oldest|newest [venv folder] [install|test|all]
#
# `install` only builds the venv and `test` only runs the tests in it: CI installs in the background while its
# main leg runs, then tests (the download is network time, not CPU time).
#
# Either downloads a CUDA build of torch (about 2.7 GB; about a minute here) and takes about 5 minutes.
# Set DOPATUT_CACHE to a cache that already holds the book's foundations to skip training them again.
set -euo pipefail
cd "$(dirname "$0")/.."
which=${1:-}
venv=${2:-_build/venv-$which}
phase=${3:-all}
case $phase in install|test|all) ;; *) echo "phase must be install, test or all; got '$phase'" >&2; exit 2 ;; esac
case $which in
  oldest) pins=(-c .ci/oldest.txt) ;;
  newest) pins=(--upgrade --upgrade-strategy eager) ;;
  *) echo "usage: scripts/check_versions.sh oldest|newest [venv folder] [install|test|all]; got '$which'" >&2; exit 2 ;;
esac
start=$(date +%s)
if [ "$phase" != test ]; then
rm -rf "$venv"
python3 -m venv "$venv"
# This machine's pip config caps torch at the pinned 2.14.1 (/etc/xdg/pip); the oldest releases lie below it,
# the newest need pip to read no config at all (PIP_CONFIG_FILE=/dev/null), for this command only.
if [ "$which" = newest ]; then export PIP_CONFIG_FILE=/dev/null; fi
PIP_CONSTRAINT= "$venv/bin/pip" install -q "${pins[@]}" ".[test]"
"$venv/bin/python" -c "import sys, torch, torchvision, numpy, scipy, matplotlib, ipywidgets, zarr
print('$which:', 'python', sys.version.split()[0], 'torch', torch.__version__, 'torchvision', torchvision.__version__,
      'numpy', numpy.__version__, 'scipy', scipy.__version__, 'matplotlib', matplotlib.__version__,
      'ipywidgets', ipywidgets.__version__, 'zarr', zarr.__version__)"
echo "$which: installed in $(( $(date +%s) - start )) s"
fi
if [ "$phase" = install ]; then exit 0; fi
# Not the simulated Colab: Colab brings its own, recent torch, so that test belongs with the pinned releases.
"$venv/bin/python" -m pytest -q -p no:cacheprovider tests --ignore=tests/test_colab.py
"$venv/bin/python" -m pytest -q -p no:cacheprovider --nbmake book/01_modes.ipynb book/02_foundation.ipynb
echo "$which: passed in $(( $(date +%s) - start )) s"
