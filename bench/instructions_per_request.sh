#!/usr/bin/env bash
# Instructions per request of the server's user-space code, counted by callgrind: the same
# number for the same code whatever else the machine is doing, so A/B tests of per-request
# work need no quiet machine. (Kernel time, e.g. syscalls, is not counted: confirm wins with
# bench/run.py.)  Usage: bench/instructions_per_request.sh [PATH] [betula args...]
# WRK_ARGS adds wrk options, e.g. WRK_ARGS="-s bench/post4k.lua" with PATH /echo.
set -euo pipefail
cd "$(dirname "$0")/.."
path="${1:-/}"; shift || true
port=$(python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
out=$(mktemp -d)
py=$(python -c 'import sys; print(sys.executable)')   # the real binary, not a shim
if [ -n "${PEER_CMD:-}" ]; then   # e.g. PEER_CMD='bench/.venv-peers/bin/python -m uvicorn ... --port {port}'
    cmd=${PEER_CMD//\{port\}/$port}
    PYTHONPATH=. valgrind --tool=callgrind --trace-children=yes --callgrind-out-file="$out/cg.%p" \
        $cmd >"$out/server.log" 2>&1 &
else
    PYTHONPATH=. valgrind --tool=callgrind --callgrind-out-file="$out/cg.%p" \
        "$py" -m betula ${@:-bench.app_asgi:app} --port "$port" --no-access-log \
        --log-level warning >"$out/server.log" 2>&1 &
fi
pid=$!
for _ in $(seq 1 900); do
    curl -s -o /dev/null "http://127.0.0.1:$port$path" && break; sleep 0.2
done
wrk -t1 -c16 -d3s ${WRK_ARGS:-} "http://127.0.0.1:$port$path" >/dev/null   # warm-up
callgrind_control -z >/dev/null   # every process of ours under callgrind
n=$(wrk -t1 -c16 -d5s ${WRK_ARGS:-} "http://127.0.0.1:$port$path" | awk '/requests in/ {print $1}')
callgrind_control -d >/dev/null
kill -INT "$pid"; wait "$pid" || true
# Sum the dumps taken after zeroing (".N" parts) over every process (a peer may fork).
total=$(for f in "$out"/cg.*.*; do callgrind_annotate "$f" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",","",$1); print $1}'; done | awk '{s+=$1} END {print s+0}')
echo "requests=$n instructions_per_request=$((total / n))"
rm -rf "$out"
