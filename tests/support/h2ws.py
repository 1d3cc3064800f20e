"""A WebSocket client over one HTTP/2 stream (RFC 8441) for tests: an extended CONNECT on
an ``H2Client`` connection, then websockets' own client framing (``ClientProtocol``,
permessage-deflate included) over the stream's DATA frames."""

from __future__ import annotations

from hyperframe.frame import DataFrame
from websockets.client import ClientProtocol
from websockets.datastructures import Headers
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from websockets.frames import Frame, Opcode
from websockets.protocol import OPEN
from websockets.uri import parse_uri

from tests.support.h2client import H2Client, Result


class H2WebSocket:
    """``H2WebSocket(client, "/echo")``: opens the WebSocket and waits for the answer
    (``status``, ``result``). ``compress``: offer permessage-deflate."""

    def __init__(self, client: H2Client, path: str, *, compress: bool = False,
                 headers: tuple[tuple[str, str], ...] = (("sec-websocket-version", "13"),),
                 protocol: str = "websocket") -> None:
        self.client = client
        fields = [(":protocol", protocol), *headers]
        factories = [ClientPerMessageDeflateFactory()] if compress else []
        if compress:
            fields.append(("sec-websocket-extensions", "permessage-deflate"))
        self.sid = client.request("CONNECT", path, tuple(fields), end=False)
        self.result: Result = client.results[self.sid]
        result = self.result
        client.read_until(lambda: result.status or result.reset is not None or result.ended)
        self.status = result.status
        self.proto = ClientProtocol(parse_uri("ws://test" + path), extensions=factories)
        self._read = 0  # bytes of the stream's DATA given to the protocol so far
        self._pending: list[Frame] = []  # frames read and not yet returned by recv()
        if self.status == 200:
            response = Headers([(n.decode(), v.decode()) for n, v in result.headers
                                if not n.startswith(b":")])
            self.proto.extensions = self.proto.process_extensions(response)
            self.proto.state = OPEN
            self.proto.parser = self.proto.parse()
            next(self.proto.parser)

    def _flush(self, end: bool = False) -> None:
        data = b"".join(self.proto.data_to_send())
        if not data and not end:
            return
        if self.client.goaway is not None:
            # h2 sends nothing once a GOAWAY came, but the streams it let through may still
            # finish (RFC 9113 §6.8): the frame by hand (small: within any window).
            frame = DataFrame(self.sid, data=data, flags={"END_STREAM"} if end else set())
            self.client.sock.sendall(frame.serialize())
            return
        self.client.send_data(self.sid, data, end)

    def send(self, message: str | bytes) -> None:
        if isinstance(message, str):
            self.proto.send_text(message.encode())
        else:
            self.proto.send_binary(message)
        self._flush()

    def close(self, code: int = 1000, reason: str = "") -> None:
        self.proto.send_close(code, reason)
        self._flush()

    def end(self) -> None:
        """END_STREAM: the client sends no more (its TCP close, RFC 8441 §5)."""
        self._flush(end=True)

    def frames(self) -> list[Frame]:
        """The frames that came so far (new ones only)."""
        body = self.result.body
        if len(body) > self._read:
            self.proto.receive_data(body[self._read:])
            self._read = len(body)
        if self.result.ended:
            self.proto.receive_eof()
        return [event for event in self.proto.events_received() if isinstance(event, Frame)]

    def recv(self, timeout: float = 10.0) -> Frame:
        """The next data or close frame (pings are answered by the protocol)."""
        pending = self._pending

        def arrived() -> bool:
            pending.extend(f for f in self.frames() if f.opcode in
                           (Opcode.TEXT, Opcode.BINARY, Opcode.CLOSE, Opcode.CONT))
            self._flush()
            return bool(pending) or self.result.reset is not None
        self.client.read_until(arrived, timeout)
        assert pending, f"stream reset ({self.result.reset}) before a frame came"
        return pending.pop(0)

    def wait_ended(self, timeout: float = 10.0) -> Result:
        """The server's END_STREAM (or a reset)."""
        result = self.result
        self.client.read_until(lambda: result.ended or result.reset is not None, timeout)
        return result
