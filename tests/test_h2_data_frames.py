"""DataFrameH2Connection (protocols/h2/data_frames.py) keeps h2's state exact: the same
conversation goes to it (plain DATA frames taken with ``take_data``, sent with
``send_data_frame``) and to h2's own path (``receive_data``, ``send_data``), side by side;
after every step the windows, the stream states and the bytes sent are the same. A client
over its window is the same connection error from both."""

from __future__ import annotations

import random

import h2.config
import h2.connection
import h2.errors
import h2.exceptions
import pytest
from hyperframe.frame import DataFrame, Frame, GoAwayFrame

from betula.protocols.h2 import data_frames
from betula.protocols.h2.data_frames import DataFrameH2Connection
from betula.protocols.h2.output import BufferedH2Connection


def _config(client: bool) -> h2.config.H2Configuration:
    return h2.config.H2Configuration(client_side=client, header_encoding=None)


def _pair(cls, window: int = 65535):
    client = h2.connection.H2Connection(config=_config(True))
    server = cls(config=_config(False))
    client.initiate_connection()
    server.initiate_connection()
    if window != 65535:
        server.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window})
    server.receive_data(client.data_to_send())
    client.receive_data(b"".join(server.take_output()))
    server.receive_data(client.data_to_send())
    client.receive_data(b"".join(server.take_output()))
    return client, server


def _frames(data: bytes) -> list[tuple[Frame, bytes]]:
    """The frames of ``data``, each with its bytes."""
    out = []
    pos = 0
    while pos < len(data):
        frame, length = Frame.parse_frame_header(memoryview(data[pos:pos + 9]))
        frame.parse_body(memoryview(data[pos + 9:pos + 9 + length]))
        out.append((frame, data[pos:pos + 9 + length]))
        pos += 9 + length
    return out


def _feed(server, data: bytes, fast: bool) -> None:
    """Give ``data`` to the server: with ``fast``, its plain DATA frames through
    ``take_data`` (as connection.py does), the others through h2."""
    if not fast:
        server.receive_data(data)
        return
    for frame, raw in _frames(data):
        if frame.__class__ is DataFrame and frame.data and not frame.flags \
                and server.take_data(frame.stream_id, len(frame.data)):
            continue
        server.receive_data(raw)


def _state(server) -> tuple:
    return (server.inbound_flow_control_window, server.outbound_flow_control_window,
            tuple((sid, s.state_machine.state, s.inbound_flow_control_window,
                   s.outbound_flow_control_window) for sid, s in sorted(server.streams.items())))


def test_the_probe_finds_this_h2_has_what_it_keeps():
    assert data_frames.available()


_SERVING = (h2.stream.StreamState.OPEN, h2.stream.StreamState.HALF_CLOSED_REMOTE)


def _client_step(client, rng: random.Random) -> bytes:
    """A client's move: open a stream, or send DATA (some ending a stream) on a few."""
    if rng.random() < 0.15 or not client.open_outbound_streams:
        sid = client.get_next_available_stream_id()
        client.send_headers(sid, [(b":method", b"POST"), (b":path", b"/"),
                                  (b":scheme", b"http"), (b":authority", b"x")])
    sids = sorted(sid for sid, stream in client.streams.items()
                  if stream.state_machine.state in _SERVING)
    for sid in rng.sample(sids, min(3, len(sids))):
        size = min(rng.choice([1, 100, 1024, 5000, 16384]),
                   client.local_flow_control_window(sid))
        if size > 0:
            client.send_data(sid, b"d" * size, end_stream=rng.random() < 0.05)
    return client.data_to_send()


def _server_step(server, headed: set[int], fast: bool, rng: random.Random) -> bytes:
    """A server's move: credit what came, answer each stream it serves with DATA."""
    for sid, stream in sorted(server.streams.items()):
        used = 65535 - stream.inbound_flow_control_window
        if used > 30000 and not stream.closed:
            server.increment_flow_control_window(used, stream_id=sid)
    if 65535 - server.inbound_flow_control_window > 30000:
        server.increment_flow_control_window(65535 - server.inbound_flow_control_window)
    for sid, stream in sorted(server.streams.items()):
        if stream.state_machine.state not in _SERVING:
            continue
        if sid not in headed:
            headed.add(sid)
            server.send_headers(sid, [(b":status", b"200")])
        size = min(rng.choice([1, 500, 16384]), server.local_flow_control_window(sid))
        if size > 0:
            (server.send_data_frame if fast else server.send_data)(sid, b"r" * size)
    return b"".join(server.take_output())


def _client_credit(client) -> bytes:
    for sid, stream in list(client.streams.items()):
        if not stream.closed and stream.inbound_flow_control_window < 30000:
            client.increment_flow_control_window(65535 - stream.inbound_flow_control_window,
                                                 stream_id=sid)
    if client.inbound_flow_control_window < 30000:
        client.increment_flow_control_window(65535 - client.inbound_flow_control_window)
    return client.data_to_send()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_data_frames_keep_h2_state_exact(seed):
    """Two identical clients, one server on h2's path and one taking and sending plain
    DATA frames itself: the same bytes out and the same state after every step."""
    sides = [(*_pair(BufferedH2Connection), False, set()),
             (*_pair(DataFrameH2Connection), True, set())]
    for step in range(250):
        outs, states = [], []
        for client, server, fast, headed in sides:
            rng = random.Random(seed * 1000 + step)  # the same moves on both sides
            _feed(server, _client_step(client, rng), fast)
            out = _server_step(server, headed, fast, rng)
            client.receive_data(out)
            _feed(server, _client_credit(client), fast)
            outs.append(out + b"".join(server.take_output()))
            states.append(_state(server))
        assert outs[0] == outs[1], step
        assert states[0] == states[1], step
    taken = sides[1][1]
    assert len(taken.streams) > 5  # (the conversation went somewhere)


def _over_window(server) -> bytes:
    """A client's DATA frames past the stream's 65,535-byte window, fed the server's way."""
    client = h2.connection.H2Connection(config=_config(True))
    client.initiate_connection()
    server.initiate_connection()
    server.receive_data(client.data_to_send())
    server.take_output()
    client.send_headers(1, [(b":method", b"POST"), (b":path", b"/"), (b":scheme", b"http"),
                            (b":authority", b"x")])
    server.receive_data(client.data_to_send())
    frames = b"".join(DataFrame(1, b"x" * 16384).serialize() for _ in range(5))
    return frames


def test_a_client_over_its_window_is_the_same_connection_error():
    outs = []
    for cls, fast in ((BufferedH2Connection, False), (DataFrameH2Connection, True)):
        server = cls(config=_config(False))
        frames = _over_window(server)
        with pytest.raises(h2.exceptions.FlowControlError):
            _feed(server, frames, fast)
        outs.append(b"".join(server.take_output()))
    assert outs[0] == outs[1]
    goaway = _frames(outs[1])[-1][0]
    assert isinstance(goaway, GoAwayFrame)
    assert goaway.error_code == h2.errors.ErrorCodes.FLOW_CONTROL_ERROR


def test_data_on_a_stream_h2_has_closed_goes_to_h2():
    server = DataFrameH2Connection(config=_config(False))
    client = h2.connection.H2Connection(config=_config(True))
    client.initiate_connection()
    server.initiate_connection()
    client.send_headers(1, [(b":method", b"POST"), (b":path", b"/"), (b":scheme", b"http"),
                            (b":authority", b"x")], end_stream=True)
    server.receive_data(client.data_to_send())
    # Half-closed (remote): more DATA is h2's stream error, not taken here.
    assert not server.take_data(1, 10)
    assert not server.take_data(3, 10)  # a stream never opened
    server.reset_stream(1)
    assert not server.take_data(1, 10)


def test_a_frame_past_the_windows_or_the_frame_size_goes_through_h2():
    client, server = _pair(DataFrameH2Connection)
    client.send_headers(1, [(b":method", b"GET"), (b":path", b"/"), (b":scheme", b"http"),
                            (b":authority", b"x")])
    server.receive_data(client.data_to_send())
    server.take_output()
    with pytest.raises(h2.exceptions.FrameTooLargeError):
        server.send_data_frame(1, b"x" * 16385)
    for _ in range(3):
        server.send_data_frame(1, b"x" * 16384)
    server.send_data_frame(1, b"x" * 16383)
    assert server.local_flow_control_window(1) == 0
    with pytest.raises(h2.exceptions.FlowControlError):
        server.send_data_frame(1, b"x")


def test_try_data_frame_sends_what_send_data_would_or_nothing():
    """Within the windows and the frame size, on a stream that can send: the bytes and the
    windows h2's ``send_data`` gives, in order after h2's own frames. Otherwise False, with
    nothing sent and no window touched: an empty frame, one over the frame size or a
    window, a stream never opened or reset."""
    sides = []
    for cls in (BufferedH2Connection, DataFrameH2Connection):
        client, server = _pair(cls)
        for sid in (1, 3):
            client.send_headers(sid, [(b":method", b"GET"), (b":path", b"/"),
                                      (b":scheme", b"http"), (b":authority", b"x")])
        server.receive_data(client.data_to_send())
        server.take_output()
        sides.append(server)
    plain, fast = sides
    for size in (1, 700, 16384):
        for server in sides:
            server.ping(b"%08d" % size)  # (h2's frame first, the DATA frame after it)
        plain.send_data(1, b"d" * size)
        assert fast.try_data_frame(1, b"d" * size)
        assert b"".join(plain.take_output()) == b"".join(fast.take_output())
        assert _state(plain) == _state(fast)
    fast.reset_stream(3)
    fast.take_output()
    windows = (fast.outbound_flow_control_window, fast.streams[1].outbound_flow_control_window)
    assert not fast.try_data_frame(1, b"")
    assert not fast.try_data_frame(1, b"x" * 16385)  # over the frame size
    assert not fast.try_data_frame(1, b"x" * (fast.local_flow_control_window(1) + 1))
    assert not fast.try_data_frame(5, b"x")  # never opened
    assert not fast.try_data_frame(3, b"x")  # reset
    assert fast.take_output() == []
    assert windows == (fast.outbound_flow_control_window,
                       fast.streams[1].outbound_flow_control_window)
