#!/usr/bin/env bash
# A CPython 3.13 or newer with the GIL (sub-interpreters with their own GIL and their
# queues: _interpreters, _interpqueues) ready to run Betula's subinterpreter worker mode
# from this checkout: the first of $BETULA_SUBINTERP_PYTHON, python3.13 on the PATH, pyenv's
# newest 3.13. Installs Betula's dependencies and Flask (the suite's WSGI framework app) into
# it (and Starlette and FastAPI, to show which loads there and which cannot) and builds
# betula/_h1scan for it in place. The last line printed is its path.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
candidates=("${BETULA_SUBINTERP_PYTHON:-}" "$(command -v python3.13 || true)")
if command -v pyenv >/dev/null 2>&1; then
    for found in $(ls -d "$(pyenv root)"/versions/3.1[3-9].* 2>/dev/null | grep -v 't$' | sort -rV); do
        candidates+=("$found/bin/python3")
    done
fi
python=""
for candidate in "${candidates[@]}"; do
    if [ -n "$candidate" ] && "$candidate" -c "import _interpreters, _interpqueues" 2>/dev/null; then
        python="$candidate"
        break
    fi
done
if [ -z "$python" ]; then
    echo "no CPython 3.13 with sub-interpreters found (set BETULA_SUBINTERP_PYTHON)" >&2
    exit 1
fi
"$python" -m pip install -q --disable-pip-version-check setuptools "httptools>=0.6" \
    "h2>=4.1,<5" "websockets>=13" "uvloop>=0.19" "watchfiles>=0.21" "prometheus_client>=0.17" flask django starlette fastapi python-multipart \
    >&2
(cd "$here" && "$python" setup.py -q build_ext --inplace >&2)
"$python" -c "import betula._h1scan, betula.run" >&2
echo "$python"
