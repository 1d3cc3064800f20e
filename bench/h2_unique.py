"""HTTP/2 on requests whose heads never repeat: h2load over h2c (64 connections x 10
streams) with a new path and query on every request (``h2load -i``, 200,000 URIs), on the
hello app and on the FastAPI JSON view, Betula against hypercorn (and, with ``--base``,
Betula from another checkout), server on CPU 1, h2load on CPU 0, interleaved rounds.

    python bench/h2_unique.py [--duration 6] [--repeat 3] [--base TREE]
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.procs import HOST, start_pinned, stop  # noqa: E402

VENV = ROOT / "bench" / ".venv-peers"
BETULA = [sys.executable, "-m", "betula", "bench.app_asgi:app", "--host", HOST, "--port",
          "{port}", "--no-access-log", "--log-level", "warning"]
HYPERCORN = [str(VENV / "bin" / "hypercorn"), "--bind", HOST + ":{port}", "--workers", "1",
             "bench.app_asgi:app"]
URIS = 200_000


def targets(kind: str, rng: random.Random) -> list[str]:
    if kind == "h2-unique-hello":
        return [f"/?q={n}&id={rng.getrandbits(48):x}" for n in range(URIS)]
    return [f"/fastapi?page={n % 97}&q=w{rng.getrandbits(40):x}" for n in range(URIS)]


def h2load(port: int, paths: list[str], duration: int, tmp: Path) -> tuple[float, float, int]:
    uris = tmp / "uris"
    uris.write_text("".join(f"http://{HOST}:{port}{p}\n" for p in paths))
    log = tmp / "requests.log"
    out = subprocess.run(["taskset", "-c", "0", "h2load", "-c64", "-m10", "-t1", "-D",
                          str(duration), f"--log-file={log}", "-i", str(uris)],
                         capture_output=True, text=True, timeout=duration + 60).stdout
    rps = float(re.search(r"([\d.]+) req/s", out).group(1))
    done = re.search(r"(\d+) succeeded, (\d+) failed, (\d+) errored", out)
    times = sorted(int(line.split()[2]) for line in log.read_text().splitlines()
                   if len(line.split()) >= 3)
    return rps, times[int(len(times) * 0.99)] / 1000, int(done.group(2)) + int(done.group(3))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=6)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--base", type=Path, default=None)
    args = parser.parse_args()
    servers = {"betula": (BETULA, ROOT), "hypercorn": (HYPERCORN, ROOT)}
    if args.base is not None:
        servers = {"betula": (BETULA, ROOT), "betula-base": (BETULA, args.base),
                   "hypercorn": (HYPERCORN, ROOT)}
    rng = random.Random(1)
    scenarios = {kind: targets(kind, rng) for kind in ("h2-unique-hello", "h2-unique-fastapi")}
    results: dict[tuple[str, str], list[tuple[float, float, int]]] = {}
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        for n in range(args.repeat):
            for server, (argv, tree) in servers.items():
                proc, port = start_pinned(argv, tree)
                try:
                    h2load(port, scenarios["h2-unique-hello"], 2, tmp)  # warm-up
                    for kind, paths in scenarios.items():
                        got = h2load(port, paths, args.duration, tmp)
                        results.setdefault((kind, server), []).append(got)
                        print(f"round {n + 1} {server} {kind}: {got[0]:.0f} req/s, "
                              f"p99 {got[1]:.1f} ms, failed {got[2]}", flush=True)
                finally:
                    stop(proc)
    print("\n| scenario | server | req/s (median round) | p99 ms | betula ÷ server |")
    print("|---|---|---:|---:|---:|")
    for kind in scenarios:
        for server in servers:
            runs = sorted(results[(kind, server)])
            mid = runs[len(runs) // 2]
            pairs = zip(results[(kind, "betula")], results[(kind, server)], strict=True)
            ratio = statistics.median(a[0] / b[0] for a, b in pairs)
            print(f"| {kind} | {server} | {mid[0]:,.0f} | {mid[1]:.1f} | {ratio:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
