"""WebSocket echo over HTTP/2 (RFC 8441) against the same over HTTP/1.1, by msg/s and by the
server's CPU time per message (the measure that stays fair when the client is the
bottleneck), in one run:

    python bench/ws_h2.py [--duration 8] [--repeat 3] [--plain] [--base TREE]

Every round drives each server with ``bench/wsload.c`` (C, epoll, pinned to CPU 0; the
server, one worker, on CPU 1):

- ``betula-h2`` and ``hypercorn-h2``: extended CONNECT streams over h2c by prior knowledge,
  ``--streams`` per connection over ``--connections`` connections (``wsload ... h2=N``);
  hypercorn is the only other Python server with WebSocket over HTTP/2;
- ``betula-h1`` and ``uvicorn-h1``: the same number of WebSockets over HTTP/1.1, one per
  connection (uvicorn has no HTTP/2, hence the HTTP/1.1 baseline);
- ``betula-base-h2`` and ``betula-base-h1``, with ``--base TREE``: Betula from another
  checkout (a worktree of an earlier commit), for an A/B of a change in one run.

With permessage-deflate (the default; ``--plain`` for none) every message is 1 KiB of
JSON-like text that changes each time (an id, a counter, item lines), compressed with
context takeover both ways, as a browser's. Prints msg/s, the p99 round trip and server CPU
µs per message per round, then the medians and each row's ratios to uvicorn (msg/s ÷
uvicorn's; uvicorn's µs ÷ the row's: > 1, cheaper than uvicorn).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))
from bench.procs import HOST, cpu_of_group, start_pinned, stop  # noqa: E402
from bench.run import ensure_wsload, run_wsload  # noqa: E402

VENV = BENCH / ".venv-peers"

BETULA = [sys.executable, "-m", "betula", "bench.app_asgi:app", "--host", HOST,
          "--port", "{port}", "--no-access-log", "--log-level", "warning"]
UVICORN = [str(VENV / "bin" / "uvicorn"), "bench.app_asgi:app", "--host", HOST, "--port",
           "{port}", "--http", "httptools", "--loop", "uvloop",
           "--no-access-log", "--log-level", "warning"]
HYPERCORN = [str(VENV / "bin" / "hypercorn"), "--bind", HOST + ":{port}", "--workers", "1",
             "--worker-class", "uvloop", "--log-level", "warning", "bench.app_asgi:app"]


def one(name: str, args: argparse.Namespace) -> tuple[float, float, float]:
    """One server's round: (msg/s, server CPU µs a message, p99 round trip in ms)."""
    argv, tree = {"uvicorn-h1": (UVICORN, ROOT), "hypercorn-h2": (HYPERCORN, ROOT)}.get(
        name, (BETULA, args.base if name.startswith("betula-base") else ROOT))
    h2 = name.endswith("-h2")
    connections = args.connections if h2 else args.connections * args.streams
    streams = args.streams if h2 else 0
    deflate = not args.plain
    proc, port = start_pinned(argv, tree)
    try:
        run_wsload(port, "/ws", 1, connections, 0, deflate=deflate, streams=streams)  # warm-up
        before = cpu_of_group(proc.pid)
        result, text = run_wsload(port, "/ws", args.duration, connections, 0,
                                  deflate=deflate, streams=streams)
        used = cpu_of_group(proc.pid) - before
    finally:
        stop(proc)
    if result is None or result["socket_errors"]["read"]:
        raise SystemExit(f"{name}: {text.strip()[-500:]}")
    messages = result["requests"]
    return messages / args.duration, used / messages * 1e6, result["p99_ms"]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--streams", type=int, default=4)
    parser.add_argument("--plain", action="store_true", help="no permessage-deflate")
    parser.add_argument("--base", type=Path, default=None,
                        help="another Betula tree, run as betula-base-h2 and -h1")
    parser.add_argument("--servers", default="betula-h2,hypercorn-h2,betula-h1,uvicorn-h1")
    args = parser.parse_args()
    ensure_wsload()
    names = args.servers.split(",") + (["betula-base-h2", "betula-base-h1"] if args.base else [])
    rows: dict[str, list[tuple[float, float, float]]] = {n: [] for n in names}
    for n in range(args.repeat):
        for name in names:
            rate, cpu, p99 = one(name, args)
            rows[name].append((rate, cpu, p99))
            print(f"round {n + 1} {name}: {rate:,.0f} msg/s, server CPU {cpu:.1f} us/message, "
                  f"p99 {p99:.2f} ms", flush=True)
    medians = {name: tuple(statistics.median(row[i] for row in rows[name]) for i in range(3))
               for name in names}
    base = medians.get("uvicorn-h1")
    print(f"\n{'permessage-deflate' if not args.plain else 'no compression'}, "
          f"{args.connections} connections x {args.streams} streams (h2) or "
          f"{args.connections * args.streams} connections (h1), median of {args.repeat}\n")
    print("| server | msg/s | p99 ms | server CPU µs/message | msg/s ÷ uvicorn "
          "| uvicorn µs ÷ µs |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in names:
        rate, cpu, p99 = medians[name]
        ratios = (f"{rate / base[0]:.2f}x | {base[1] / cpu:.2f}x" if base else "- | -")
        print(f"| {name} | {rate:,.0f} | {p99:.2f} | {cpu:.1f} | {ratios} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
