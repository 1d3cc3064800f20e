"""betula/protocols/h2/fields.py: the request header block rules Betula checks in place of
h2's validation (RFC 9113 §8.2, §8.3), case by case; and on the wire, a malformed request
resets its own stream only (h2spec's malformed-request cases run in tests/test_h2spec.py)."""

from __future__ import annotations

import pytest
from h2.errors import ErrorCodes

from betula.protocols.h2.fields import Malformed, check_trailers, request_head
from tests.support.h2client import H2Client

GOOD = [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/x?y=1"),
        (b":authority", b"example.com"), (b"accept", b"*/*"), (b"cookie", b"a=1")]


def with_(*changes: tuple[int, tuple[bytes, bytes] | None]) -> list[tuple[bytes, bytes]]:
    block = list(GOOD)
    for index, field in changes:
        if field is None:
            del block[index]
        else:
            block.insert(index, field)
    return block


def test_a_good_block_is_read() -> None:
    head = request_head(GOOD + [(b"expect", b"100-Continue"), (b"te", b"Trailers")])
    assert (head.method, head.path, head.authority, head.protocol) == (
        b"GET", b"/x?y=1", b"example.com", b"")
    assert head.fields[0] == (b"host", b"example.com")  # host from :authority, first
    assert head.fields[1:] == [(b"accept", b"*/*"), (b"cookie", b"a=1"),
                               (b"expect", b"100-Continue"), (b"te", b"Trailers")]
    assert head.expect_continue
    with_host = request_head([*GOOD[:3], (b"host", b"h"), (b"a", b"")])
    assert with_host.fields == [(b"host", b"h"), (b"a", b"")]  # an empty value is allowed
    extended = request_head([(b":method", b"CONNECT"), (b":protocol", b"websocket"),
                             (b":scheme", b"https"), (b":path", b"/ws"),
                             (b":authority", b"h")])
    assert extended.protocol == b"websocket"
    plain = request_head([(b":method", b"CONNECT"), (b":authority", b"h:443")])
    assert plain.method == b"CONNECT" and plain.path == b""


MALFORMED = {
    "uppercase name": with_((4, (b"Accept", b"x"))),
    "space in name": with_((4, (b"a b", b"x"))),
    "colon inside name": with_((4, (b"a:b", b"x"))),
    "byte over 0x7e in name": with_((4, (b"caf\xe9", b"x"))),
    "empty name": with_((4, (b"", b"x"))),
    "NUL in value": with_((4, (b"a", b"x\x00y"))),
    "LF in value": with_((4, (b"a", b"x\ny"))),
    "CR in value": with_((4, (b"a", b"x\ry"))),
    "leading space": with_((4, (b"a", b" x"))),
    "trailing tab": with_((4, (b"a", b"x\t"))),
    "connection field": with_((4, (b"connection", b"keep-alive"))),
    "transfer-encoding": with_((4, (b"transfer-encoding", b"chunked"))),
    "upgrade": with_((4, (b"upgrade", b"h2c"))),
    "te gzip": with_((4, (b"te", b"gzip"))),
    "pseudo after regular": [*GOOD, (b":path", b"/again")],
    "unknown pseudo": with_((0, (b":foo", b"x"))),
    "response pseudo": with_((0, (b":status", b"200"))),
    "repeated :method": with_((0, (b":method", b"GET"))),
    "repeated :path": with_((0, (b":path", b"/"))),
    "repeated :scheme": with_((0, (b":scheme", b"http"))),
    "repeated :authority": with_((0, (b":authority", b"x"))),
    "no :method": with_((0, None)),
    "no :scheme": with_((1, None)),
    "no :path": with_((2, None)),
    "empty :path": with_((2, None), (2, (b":path", b""))),
    "no authority or host": with_((3, None)),
    "two host fields": [*GOOD[:3], (b"host", b"a"), (b"host", b"a")],
    "host differs from :authority": [*GOOD, (b"host", b"other.example")],
    ":protocol without CONNECT": with_((0, (b":protocol", b"websocket"))),
    "plain CONNECT with :path": [(b":method", b"CONNECT"), (b":path", b"/"),
                                 (b":authority", b"h")],
    "bad pseudo value": with_((2, None), (2, (b":path", b"/a b\r"))),
}


@pytest.mark.parametrize("block", list(MALFORMED.values()), ids=list(MALFORMED))
def test_a_malformed_block_is_refused(block) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(Malformed):
        request_head(block)


def test_trailers() -> None:
    check_trailers([(b"x-digest", b"abc"), (b"grpc-status", b"0")])
    for bad in ([(b":path", b"/")], [(b"X-Up", b"1")], [(b"a", b"b\n")],
                [(b"connection", b"close")]):
        with pytest.raises(Malformed):
            check_trailers(bad)


def test_a_malformed_request_resets_its_stream_only(serve) -> None:  # type: ignore[no-untyped-def]
    srv = serve("tests.apps.h2_apps:app")
    with H2Client(srv.host, srv.port) as client:
        # h2 (the client) would refuse to send these: its own validation is off for them
        client.conn.config.validate_outbound_headers = False
        client.conn.config.normalize_outbound_headers = False
        bad = client.request("GET", "/scope", (("x-bad", " spaced"),))
        good = client.request("GET", "/scope")
        assert client.wait(bad).reset == ErrorCodes.PROTOCOL_ERROR
        assert client.wait(good).status == 200
        again = client.request("GET", "/scope")
        assert client.wait(again).status == 200
    assert "malformed request: invalid value of b'x-bad'" in srv.log
