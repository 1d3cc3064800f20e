#!/usr/bin/env bash
# Build a free-threaded CPython 3.13 (./configure --disable-gil) for Betula's thread worker
# mode, from Debian's python3.13 source (trixie's orig tarball: python.org is not reachable
# from every CI machine, deb.debian.org is), into a cache folder
# (${BETULA_CACHE:-~/.cache/betula}), reused when present. About 5 minutes on 2 cores.
# Needs a C compiler and the usual CPython build headers (libssl-dev zlib1g-dev libffi-dev
# libbz2-dev libsqlite3-dev libreadline-dev liblzma-dev: .ci/run installs them).
# The last line printed is the path of the built interpreter.
set -euo pipefail
version=3.13.5
sha256=93e583f243454e6e9e4588ca2c2662206ad961659863277afcdb96801647d640
url="http://deb.debian.org/debian/pool/main/p/python3.13/python3.13_${version}.orig.tar.xz"
cache="${BETULA_CACHE:-$HOME/.cache/betula}"
prefix="$cache/python-${version}t"
python="$prefix/bin/python3.13t"
if [ -x "$python" ] && [ -e "$prefix/.built" ]; then
    echo "$python"
    exit 0
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
curl -fsSL --retry 3 -o "$work/src.tar.xz" "$url"
echo "$sha256  $work/src.tar.xz" | sha256sum -c --quiet -
tar -xJf "$work/src.tar.xz" -C "$work"
cd "$work/Python-$version"
./configure --disable-gil --prefix="$prefix" --without-ensurepip --disable-test-modules \
    >"$work/configure.log" 2>&1 || { tail -30 "$work/configure.log" >&2; exit 1; }
make -j"$(nproc)" >"$work/make.log" 2>&1 || { tail -40 "$work/make.log" >&2; exit 1; }
make install >"$work/install.log" 2>&1 || { tail -30 "$work/install.log" >&2; exit 1; }
"$python" -c "import sys; assert not sys._is_gil_enabled(), 'the GIL is on'"
"$python" -m ensurepip >"$work/ensurepip.log" 2>&1 || { tail -20 "$work/ensurepip.log" >&2; exit 1; }
touch "$prefix/.built"
echo "$python"
