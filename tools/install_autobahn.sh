#!/usr/bin/env bash
# Install Autobahn's WebSocket test suite (autobahntestsuite, Python 2.7 only) into a
# virtualenv of pyenv's Python 2.7, in a cache folder (${BETULA_CACHE:-~/.cache/betula}),
# reused when present. The last line printed is the path of its `wstest`
# (tests/test_autobahn.py finds it there too).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache="${BETULA_CACHE:-$HOME/.cache/betula}"
venv="$cache/autobahn-py27"
wstest="$venv/bin/wstest"
if [ -x "$wstest" ] && [ -e "$venv/.installed" ]; then
    echo "$wstest"
    exit 0
fi
python2="${BETULA_PYTHON27:-}"
if [ -z "$python2" ]; then
    root="$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")"
    python2="$(ls -d "$root"/versions/2.7*/bin/python 2>/dev/null | tail -n 1 || true)"
fi
[ -n "$python2" ] && [ -x "$python2" ] || {
    echo "install_autobahn: no Python 2.7 (pyenv install 2.7.18, or set BETULA_PYTHON27)" >&2
    exit 1; }
export PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONWARNINGS=ignore
# setuptools and pip may be missing from a pyenv 2.7 (ensurepip restores its bundled ones).
"$python2" -c "import setuptools" 2>/dev/null || "$python2" -m ensurepip -q
"$python2" -m virtualenv --version >/dev/null 2>&1 || "$python2" -m pip install -q "virtualenv<20.22"
rm -rf "$venv"
"$python2" -m virtualenv -q "$venv"
"$venv/bin/python" -m pip install -q -c "$here/autobahn-constraints.txt" autobahntestsuite
touch "$venv/.installed"
echo "$wstest"
