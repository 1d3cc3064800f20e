"""Helpers shared by the black-box suite, one of each (HTTP/1.1 now, HTTP/2 later).

- ``server``: the real CLI in a subprocess (``ServerProcess``, ``betula``, ``run_cli``).
- ``wire``: raw-socket HTTP/1.1 reading and writing (heads, chunked bodies, until-closed).
- ``ws``: raw WebSocket frames.
- ``logs``: what a server or an app wrote to the log (records, tracebacks, validator text).
- ``procs``: what the kernel says of a server's processes (memory, children, liveness).
- ``client``: requests through httpx (``get_json``).
- ``tcp``: the kernel's view of a test's TCP connection (queues, zero window, the server's
  own socket).
- ``memory``: the growth of a server's peak RSS.
- ``syscalls``: a server run under strace, to see which system calls carried its bytes.
- ``workers``: a master's workers, seen by their pids (who answers, in which order).
- ``need``: imports the suite requires; missing ones fail in CI instead of skipping.
"""
