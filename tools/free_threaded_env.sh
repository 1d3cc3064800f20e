#!/usr/bin/env bash
# A free-threaded CPython ready to run Betula's thread worker mode from this checkout: builds
# the interpreter (tools/build_free_threaded_python.sh, cached), installs Betula's runtime
# dependencies into it (httptools, uvloop and websockets build from their sdists where no
# wheel exists) and builds betula/_h1scan for it in place (pip install --no-deps -e .:
# watchfiles, needed only by --reload, has no free-threaded wheel and needs crates.io to
# build). Checks the GIL stays off once they are imported. The last line printed is the
# interpreter's path.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
python="$("$here/tools/build_free_threaded_python.sh" | tail -1)"
"$python" -m pip install -q --disable-pip-version-check setuptools wheel "httptools>=0.6" \
    "h2>=4.1,<5" "websockets>=13" "uvloop>=0.19" "prometheus_client>=0.17" >&2
(cd "$here" && "$python" -m pip install -q --disable-pip-version-check --no-deps \
    --no-build-isolation -e . >&2)
"$python" -W error::RuntimeWarning -c "
import sys
import betula._h1scan, betula.run, httptools, uvloop, h2, websockets
assert not sys._is_gil_enabled(), 'an import re-enabled the GIL'
" >&2
echo "$python"
