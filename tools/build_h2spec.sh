#!/usr/bin/env bash
# Build h2spec (github.com/summerwind/h2spec, MIT, the HTTP/2 conformance tester) from the
# source kept in tools/vendor/ (commit af83a65, 2022-06-25: `go install` needs the Go module
# proxy, which CI machines cannot reach), against Debian's Go packages in GOPATH mode:
#
#   apt-get install golang-go golang-golang-x-net-dev golang-github-spf13-cobra-dev \
#       golang-github-fatih-color-dev
#
# The binary goes into a cache folder (${BETULA_CACHE:-~/.cache/betula}) and is reused when
# present. The last line printed is its path (tests/test_h2spec.py finds it there too).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
version=af83a65
cache="${BETULA_CACHE:-$HOME/.cache/betula}"
binary="$cache/h2spec-$version/h2spec"
if [ -x "$binary" ]; then
    echo "$binary"
    exit 0
fi
command -v go >/dev/null 2>&1 || { echo "build_h2spec: no go (apt-get install golang-go)" >&2; exit 1; }
gocode=/usr/share/gocode
for package in golang.org/x/net/http2 github.com/spf13/cobra github.com/fatih/color; do
    [ -d "$gocode/src/$package" ] || {
        echo "build_h2spec: $package missing (see this script's apt-get line)" >&2; exit 1; }
done
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/src/github.com/summerwind"
tar -xzf "$here/vendor/h2spec-$version.tar.gz" -C "$work/src/github.com/summerwind"
mkdir -p "$(dirname "$binary")"
(cd "$work/src/github.com/summerwind/h2spec" &&
    GO111MODULE=off GOPATH="$work:$gocode" GOCACHE="$work/cache" GOFLAGS= \
        go build -o "$binary.part" ./cmd/h2spec)
mv "$binary.part" "$binary"
echo "$binary"
