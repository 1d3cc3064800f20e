"""h2spec (the HTTP/2 conformance tester: RFC 7540/9113 framing, streams, flow control,
HPACK, strict cases included) against Betula, over TLS (ALPN h2) and in the clear (prior
knowledge), every case required to pass.

h2spec is built by ``tools/build_h2spec.sh`` (from the source in tools/vendor/; .ci/run
builds it); it is found through ``BETULA_H2SPEC``, the PATH, or that script's cache.

The target is ``/h2spec`` of tests/apps/h2_apps.py (it reads the whole body and never
answers empty). Two cases need a word:
- 5.1.2 (a stream past SETTINGS_MAX_CONCURRENT_STREAMS is refused) needs the first
  hundred streams still open when the next one comes: it runs on its own against
  ``/h2spec?wait=3``, whose answers take three seconds.
- 3.5/2 (an invalid connection preface ends the connection with no HTTP/1 answer) holds
  for an HTTP/2-only port. Betula's cleartext port is HTTP/1.1's too: bytes that are not
  the preface are an HTTP/1.1 request, and this one gets HTTP/1.1's 501 (an unknown
  method) and the close (tested here). Over TLS, where ALPN said h2, the case runs and
  passes.
"""

from __future__ import annotations

import subprocess
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest
import trustme

from tests.support import need
from tests.support.wire import recv_until_closed

APP = "tests.apps.h2_apps:app"
HOW = "tools/build_h2spec.sh (apt-get install golang-go golang-golang-x-net-dev " \
      "golang-github-spf13-cobra-dev golang-github-fatih-color-dev first); .ci/run builds it"
# Every case but 5.1.2 (run on its own, see the docstring) and 3.5 (the preface section,
# given per transport).
_SECTION_5_1_OWN_CASES = 13
MAIN = ["generic", "hpack", "http2/4",
        *(f"http2/5.1/{case}" for case in range(1, _SECTION_5_1_OWN_CASES + 1)),
        "http2/5.1.1", "http2/5.3", "http2/5.4", "http2/5.5", "http2/6", "http2/7", "http2/8"]

pytestmark = pytest.mark.timeout(120)


def run_h2spec(port: int, path: str, sections: list[str], report: Path,
               tls: bool = False) -> tuple[list[str], int]:
    """Run the ``sections``; returns the names of the cases that did not pass (failed,
    errored or skipped) and checks that some ran."""
    program = need.built_program("h2spec", "BETULA_H2SPEC", "h2spec-*/h2spec", HOW)
    argv = [program, "-h", "127.0.0.1", "-p", str(port), "-o", "5", "-P", path, "-S",
            "-j", str(report)]
    if tls:
        argv += ["-t", "-k"]
    done = subprocess.run(argv + sections, capture_output=True, text=True, timeout=100)
    assert report.exists(), done.stdout[-3000:] + done.stderr[-2000:]
    suites = ElementTree.parse(report).getroot()
    cases = list(suites.iter("testcase"))
    assert cases, done.stdout[-3000:]
    bad = [f"{case.get('package')}: {case.get('classname')}" for case in cases
           if list(case)]  # a <failure>, <error> or <skipped> child
    if bad:
        print(done.stdout[-6000:])
    return bad, len(cases)


@pytest.fixture
def certificate(tmp_path):  # type: ignore[no-untyped-def]
    cert = trustme.CA().issue_cert("127.0.0.1", "localhost")
    certfile, keyfile = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.private_key_pem.write_to_path(keyfile)
    cert.cert_chain_pems[0].write_to_path(certfile)
    return certfile, keyfile


def test_h2spec_over_tls_every_case(serve, certificate, tmp_path) -> None:  # type: ignore[no-untyped-def]
    certfile, keyfile = certificate
    srv = serve(APP, "--ssl-certfile", str(certfile), "--ssl-keyfile", str(keyfile))
    bad, count = run_h2spec(srv.port, "/h2spec", ["http2/3", *MAIN], tmp_path / "a.xml",
                            tls=True)
    assert bad == [] and count >= 146
    bad, count = run_h2spec(srv.port, "/h2spec?wait=3", ["http2/5.1.2"], tmp_path / "b.xml",
                            tls=True)
    assert bad == [] and count == 1


def test_h2spec_in_the_clear_by_prior_knowledge(serve, tmp_path) -> None:  # type: ignore[no-untyped-def]
    srv = serve(APP)
    bad, count = run_h2spec(srv.port, "/h2spec", ["http2/3.5/1", *MAIN], tmp_path / "a.xml")
    assert bad == [] and count >= 145
    bad, count = run_h2spec(srv.port, "/h2spec?wait=3", ["http2/5.1.2"], tmp_path / "b.xml")
    assert bad == [] and count == 1
    # 3.5/2's bytes on the shared port: an HTTP/1.1 request of an unknown method
    with srv.connect() as sock:
        sock.sendall(b"INVALID CONNECTION PREFACE\r\n\r\n")
        answer = recv_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 501 Not Implemented\r\n")
    assert b"connection: close\r\n" in answer
