"""Apps for recycling and stuck-worker tests: answer with the worker's pid; /block blocks
the event loop (a stuck app); /grow?mib=N keeps N MiB (default 40) alive and answers
"<pid> <VmRSS in KiB>" as the kernel counts it right after (a leaking app); /map maps 512
MiB that is never touched: address space, not resident memory."""

import mmap
import os
import time
from urllib.parse import parse_qs

_LEAK: list[object] = []


def _vm_rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    path = scope["path"]
    body = str(os.getpid())
    if path == "/block":
        time.sleep(120)  # blocks the whole event loop: the master must notice
    elif path == "/grow":
        mib = int(parse_qs(scope["query_string"].decode()).get("mib", ["40"])[0])
        _LEAK.append(os.urandom(1024) * (mib * 1024))  # every page written: resident
        body += f" {_vm_rss_kib()}"
    elif path == "/map":
        # Private and anonymous: no page is resident until written, and none is.
        _LEAK.append(mmap.mmap(-1, 512 * 1024 * 1024,
                               flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS))
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body.encode()})
