"""BufferedH2Connection (protocols/h2/output.py) puts the same bytes on the wire as h2's own
H2Connection, in the same order: the same conversation is driven through both, side by
side, and their output compared after every step."""

from __future__ import annotations

import random

import h2.config
import h2.connection
import pytest

from betula.protocols.h2 import output
from betula.protocols.h2.output import BufferedH2Connection, PlainH2Connection, connection_class


def _config(client: bool) -> h2.config.H2Configuration:
    return h2.config.H2Configuration(client_side=client, header_encoding=None)


def _pair(cls):
    """A client and a server of class ``cls``, through the handshake."""
    client = h2.connection.H2Connection(config=_config(True))
    server = cls(config=_config(False))
    client.initiate_connection()
    server.initiate_connection()
    server.receive_data(client.data_to_send())
    client.receive_data(server.data_to_send())
    server.receive_data(client.data_to_send())
    return client, server


def _take(server) -> bytes:
    if isinstance(server, BufferedH2Connection):
        return b"".join(server.take_output())
    return server.data_to_send()


def _conversation(server, client, rng: random.Random, outputs: list[bytes]) -> None:
    for n in range(40):
        sid = client.get_next_available_stream_id()
        client.send_headers(sid, [(b":method", b"GET"), (b":path", f"/{n}".encode()),
                                  (b":scheme", b"http"), (b":authority", b"x")],
                            end_stream=True)
        server.receive_data(client.data_to_send())
        server.send_headers(sid, [(b":status", b"200"), (b"set-cookie", b"a=1"),
                                  (b"set-cookie", b"b=2")])
        size = rng.choice([0, 1, 13, 4096, 16384, 40000])
        body = bytes(rng.getrandbits(8) for _ in range(min(size, 64))) * (size // 64 + 1)
        body = body[:size]
        view = memoryview(body)
        sent = 0
        while sent < size:
            step = min(server.max_outbound_frame_size, size - sent,
                       server.local_flow_control_window(sid))
            if step <= 0:
                break
            server.send_data(sid, view[sent:sent + step], end_stream=sent + step == size)
            sent += step
        if sent < size or size == 0:
            if n % 3 == 0:
                server.send_headers(sid, [(b"x-trailer", b"1")], end_stream=True)
            elif n % 3 == 1:
                server.reset_stream(sid)
            else:
                server.end_stream(sid)
        if n % 5 == 0:
            server.ping(b"12345678")
        if n % 7 == 0:  # several steps' frames taken in one go
            continue
        data = _take(server)
        outputs.append(data)
        client.receive_data(data)
        # credit the windows back, so later streams send their whole bodies
        client.increment_flow_control_window(2**20)
        server.receive_data(client.data_to_send())
    outputs.append(_take(server))


def test_the_buffered_connection_sends_what_h2_sends_byte_for_byte():
    seen = []
    for cls in (h2.connection.H2Connection, BufferedH2Connection):
        client, server = _pair(cls)
        outputs: list[bytes] = []
        _conversation(server, client, random.Random(7), outputs)
        seen.append(outputs)
    assert sum(len(x) for x in seen[0]) > 200_000  # the bodies went out
    assert seen[0] == seen[1]


def test_large_output_comes_as_buffers_and_small_output_joined():
    client, server = _pair(BufferedH2Connection)
    sid = client.get_next_available_stream_id()
    client.send_headers(sid, [(b":method", b"GET"), (b":path", b"/"), (b":scheme", b"http"),
                              (b":authority", b"x")], end_stream=True)
    server.receive_data(client.data_to_send())
    server.send_headers(sid, [(b":status", b"200")])
    server.send_data(sid, b"hi", end_stream=False)
    small = server.take_output()
    assert len(small) == 1 and small[0].endswith(b"hi")
    payload = b"z" * 16384
    server.send_data(sid, payload, end_stream=True)
    large = server.take_output()
    assert len(large) == 2 and large[1] is payload  # the payload itself: no copy
    assert bytes(large[0]) == b"\x00\x40\x00\x00\x01\x00\x00\x00\x01"  # DATA, END_STREAM
    assert server.take_output() == []


def test_data_to_send_with_an_amount_keeps_the_rest_in_order():
    for cls in (h2.connection.H2Connection, BufferedH2Connection):
        client, server = _pair(cls)
        sid = client.get_next_available_stream_id()
        client.send_headers(sid, [(b":method", b"GET"), (b":path", b"/"),
                                  (b":scheme", b"http"), (b":authority", b"x")],
                            end_stream=True)
        server.receive_data(client.data_to_send())
        server.send_headers(sid, [(b":status", b"200")])
        server.send_data(sid, b"a" * 16000, end_stream=False)
        server.send_data(sid, b"b" * 4000, end_stream=True)
        first = server.data_to_send(100)
        rest = server.data_to_send()
        assert len(first) == 100
        events = client.receive_data(first + rest)
        assert any(type(e).__name__ == "StreamEnded" for e in events), (cls, events)


def test_clearing_the_buffer_clears_both_parts():
    client, server = _pair(BufferedH2Connection)
    server.ping(b"abcdefgh")
    server.clear_outbound_data_buffer()
    assert server.data_to_send() == b""


def test_without_the_seam_the_plain_connection_is_used(monkeypatch):
    assert connection_class() is BufferedH2Connection
    monkeypatch.delattr(h2.connection.H2Connection, "_prepare_for_sending")
    assert connection_class() is PlainH2Connection


@pytest.mark.parametrize("cls", [PlainH2Connection, BufferedH2Connection])
def test_both_classes_take_output_as_a_list(cls):
    server = cls(config=_config(False))
    server.initiate_connection()
    parts = server.take_output()
    assert len(parts) == 1 and parts[0][3] == 0x04  # the SETTINGS frame
    assert server.take_output() == []
    assert output.JOIN_BELOW > 0


# -- frame_repr: hyperframe's payload repr, cheaper and identical --------------------------
def test_the_payload_repr_is_the_same_string_as_hyperframes():
    from betula.protocols.h2 import frame_repr

    original = frame_repr.original()
    assert original is not None and original is not frame_repr.raw_data_repr
    rng = random.Random(3)
    samples = [None, b"", b"\x00", bytes(range(10)), bytes(range(11)), bytes(range(12))]
    samples += [bytes(rng.getrandbits(8) for _ in range(n)) for n in range(0, 40)]
    samples += [b"x" * 4096, memoryview(b"abcdefghijklmnop"), memoryview(b"")]
    for data in samples:
        assert frame_repr.raw_data_repr(data) == original(data), data


def test_the_payload_repr_is_installed_with_the_http2_protocol():
    import hyperframe.frame
    from hyperframe.frame import DataFrame

    import betula.protocols.h2.connection  # noqa: F401 - installs it
    from betula.protocols.h2 import frame_repr

    assert hyperframe.frame._raw_data_repr is frame_repr.raw_data_repr
    frame = DataFrame(1, b"\x01\x02" * 3000, flags=["END_STREAM"])
    assert repr(frame).endswith(": <hex:01020102010201020102...>"), repr(frame)
