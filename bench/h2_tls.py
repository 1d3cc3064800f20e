"""HTTP/2 over TLS (ALPN h2): Betula against hypercorn with h2load, as ``bench/run.py``'s
``h2-*`` scenarios do in the clear (64 connections x 10 streams, one worker pinned to CPU 1,
h2load on CPU 0), with a throwaway certificate from trustme.

    python bench/h2_tls.py [--duration 8] [--repeat 3] [--servers betula,hypercorn]
                           [--base TREE]   # adds betula-base, run from another checkout

Prints req/s and p99 of the median round per server and scenario, and Betula's ratio to
each peer within a round (median over the rounds). granian is left out: its TLS needs the
certificate as files it reads itself, as here, but it speaks h2 over TLS only with
``--http 2``; add it with ``--servers betula,hypercorn,granian``.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import trustme

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.procs import HOST, start_pinned, stop  # noqa: E402

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
VENV = BENCH / ".venv-peers"
SCENARIOS = {"tls-hello": ("/", None), "tls-64k": ("/64k", None),
             "tls-post4k": ("/echo", b"x" * 4096)}


def server_argv(name: str, cert: Path, key: Path) -> list[str]:
    """The server's command line, ``{port}`` where its port goes."""
    if name in ("betula", "betula-base"):
        return [sys.executable, "-m", "betula", "bench.app_asgi:app", "--host", HOST,
                "--port", "{port}", "--ssl-certfile", str(cert), "--ssl-keyfile", str(key),
                "--no-access-log", "--log-level", "warning"]
    if name == "hypercorn":
        return [str(VENV / "bin" / "hypercorn"), "--bind", HOST + ":{port}", "--workers", "1",
                "--certfile", str(cert), "--keyfile", str(key), "bench.app_asgi:app"]
    if name == "granian":
        return [str(VENV / "bin" / "granian"), "--interface", "asgi", "--host", HOST,
                "--port", "{port}", "--workers", "1", "--loop", "uvloop", "--http", "2",
                "--ssl-certificate", str(cert), "--ssl-keyfile", str(key),
                "--log-level", "warning", "bench.app_asgi:app"]
    raise SystemExit(f"unknown server {name!r}")


def h2load(port: int, path: str, body: bytes | None, duration: int, tmp: Path) -> dict:
    log_file = tmp / "requests.log"
    cmd = ["taskset", "-c", "0", "h2load", "-c64", "-m10", "-t1", "-D", str(duration),
           f"--log-file={log_file}"]
    if body is not None:
        data = tmp / "body"
        data.write_bytes(body)
        cmd += ["-d", str(data)]
    cmd.append(f"https://{HOST}:{port}{path}")
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
    text = out.stdout + out.stderr
    rps = re.search(r"finished in [\d.]+[mu]?s, ([\d.]+) req/s", text)
    done = re.search(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) "
                     r"failed, (\d+) errored", text)
    if out.returncode != 0 or not rps or not done:
        raise RuntimeError(f"h2load failed: {text[-600:]}")
    if "application protocol: h2" not in text.lower():
        raise RuntimeError(f"not h2 over TLS: {text[-600:]}")
    times = sorted(int(line.split()[2]) for line in log_file.read_text().splitlines()
                   if len(line.split()) >= 3)
    return {"rps": float(rps.group(1)), "p99_ms": times[int(len(times) * 0.99)] / 1000,
            "failed": int(done.group(2)) + int(done.group(3))}


def run_server(name: str, args, cert: Path, key: Path, tmp: Path) -> dict[str, dict]:
    tree = args.base if name == "betula-base" else ROOT
    proc, port = start_pinned(server_argv(name, cert, key), tree)
    try:
        h2load(port, "/", None, 2, tmp)  # warm-up
        return {scen: h2load(port, path, body, args.duration, tmp)
                for scen, (path, body) in SCENARIOS.items()}
    finally:
        stop(proc)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--servers", default="betula,hypercorn")
    parser.add_argument("--base", type=Path, default=None,
                        help="another checkout (a git worktree): adds betula-base")
    args = parser.parse_args()
    servers = args.servers.split(",")
    if args.base is not None:
        servers.insert(1, "betula-base")
    ca = trustme.CA()
    leaf = ca.issue_cert(HOST, "localhost")
    rounds: list[dict[str, dict[str, dict]]] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        cert, key = tmp / "cert.pem", tmp / "key.pem"
        leaf.cert_chain_pems[0].write_to_path(cert)
        leaf.private_key_pem.write_to_path(key)
        for n in range(args.repeat):
            results = {}
            for name in servers:
                results[name] = run_server(name, args, cert, key, tmp)
                for scen, r in results[name].items():
                    print(f"round {n + 1} {name} {scen}: {r['rps']:.0f} req/s, "
                          f"p99 {r['p99_ms']:.1f} ms, failed {r['failed']}", flush=True)
            rounds.append(results)
    print("\n| scenario | server | req/s (median round) | p99 ms |\n|---|---|---:|---:|")
    for scen in SCENARIOS:
        for name in servers:
            runs = sorted((r[name][scen] for r in rounds), key=lambda r: r["rps"])
            mid = runs[len(runs) // 2]
            print(f"| {scen} | {name} | {mid['rps']:,.0f} | {mid['p99_ms']:.1f} |")
    print("\n| scenario | " + " | ".join(f"betula/{p}" for p in servers[1:]) + " |")
    print("|---|" + "---:|" * (len(servers) - 1))
    for scen in SCENARIOS:
        ratios = [statistics.median(r["betula"][scen]["rps"] / r[p][scen]["rps"] for r in rounds)
                  for p in servers[1:]]
        print(f"| {scen} | " + " | ".join(f"{x:.2f}" for x in ratios) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
