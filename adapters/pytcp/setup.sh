#!/bin/sh
# Creates adapters/pytcp/.venv and installs PyTCP 2.7.6 into it (pure Python, no
# dependencies). On a fresh Debian 12 machine, first: apt-get install python3 python3-venv
# (python3-venv brings ensurepip, so the venv gets its own pip; PyTCP needs Python >= 3.10,
# Debian 12 has 3.11).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
python3 -c 'import sys; sys.exit(sys.version_info < (3, 10))' ||
    { echo "setup.sh: PyTCP 2.7.6 needs Python >= 3.10" >&2; exit 1; }
python3 -m venv "$here/.venv"
"$here/.venv/bin/python" -m pip install --quiet --disable-pip-version-check pytcp==2.7.6
"$here/.venv/bin/python" -c 'import importlib.metadata as m; print("pytcp", m.version("pytcp"), "in", "'"$here"'/.venv")'
