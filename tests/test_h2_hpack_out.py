"""The responses' HPACK encoder (protocols/h2/hpack_out.py): plain HPACK any decoder reads
(hpack's own, nghttp2's through nghttp, with the client's table shrunk to nothing), the
static table used where it can be, nothing indexed, blocks cached without changing them."""

from __future__ import annotations

import random
import re
import subprocess

import hpack
import pytest

from betula.protocols.h2 import hpack_out
from betula.protocols.h2.hpack_out import StaticEncoder, encode_field
from tests.support.need import program

APP = "tests.apps.h2_apps:app"
pytestmark = pytest.mark.timeout(60)


def _random_fields(rng: random.Random) -> tuple[tuple[bytes, bytes], ...]:
    names = [b":status", b"content-type", b"content-length", b"set-cookie", b"date",
             b"x-request-id", b"cache-control", b"vary", b"x-\xff-odd"]
    values = [b"200", b"404", b"text/plain", b"", b"gzip, deflate", b"a" * 300,
              bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 40)))]
    return tuple((rng.choice(names), rng.choice(values)) for _ in range(rng.randrange(0, 12)))


def test_blocks_decode_to_the_fields_given_and_leave_the_table_empty():
    rng = random.Random(11)
    encoder = StaticEncoder()
    decoder = hpack.Decoder()
    for _ in range(500):
        fields = _random_fields(rng)
        block = encoder.encode(fields)
        assert block == encoder.encode(list(fields))  # cached or not, the same bytes
        assert [tuple(f) for f in decoder.decode(block, raw=True)] == list(fields)
        assert len(decoder.header_table.dynamic_entries) == 0  # nothing was indexed


def test_static_table_fields_are_one_byte_and_names_are_indexed():
    assert encode_field(b":status", b"200") == b"\x88"  # static index 8
    assert encode_field(b":status", b"404") == b"\x8d"
    literal = encode_field(b"content-type", b"text/plain")
    # literal without indexing of the static name 31: 15 in the 4-bit prefix, then 16
    assert literal[:2] == b"\x0f\x10"
    assert hpack.Decoder().decode(literal, raw=True) == [(b"content-type", b"text/plain")]
    new_name = encode_field(b"x-custom", b"v")
    assert new_name[0] == 0x00  # literal without indexing, a new name


def test_never_indexed_fields_keep_their_flag():
    encoder = StaticEncoder()
    fields = [hpack.NeverIndexedHeaderTuple(b"authorization", b"secret"),
              (b"content-type", b"text/plain")]
    block = encoder.encode(fields)
    assert block[0] & 0xF0 == 0x10
    decoded = hpack.Decoder().decode(block, raw=True)
    assert isinstance(decoded[0], hpack.NeverIndexedHeaderTuple)
    assert [tuple(f) for f in decoded] == [tuple(f) for f in fields]


def test_a_new_table_size_is_signalled_once_at_the_next_block():
    encoder = StaticEncoder()
    block = encoder.encode(((b":status", b"200"),))
    assert block == b"\x88"
    encoder.header_table_size = 0
    assert encoder.header_table_size == 0
    first = encoder.encode(((b":status", b"200"),))
    assert first == b"\x20\x88"  # a size update to 0, then the field
    assert encoder.encode(((b":status", b"200"),)) == b"\x88"
    decoder = hpack.Decoder()
    decoder.max_allowed_table_size = 0
    assert decoder.decode(first, raw=True) == [(b":status", b"200")]


def test_unique_values_are_not_kept_and_repeated_ones_are():
    hpack_out._FIELDS.reset()
    hpack_out._BLOCKS.reset()
    encoder = StaticEncoder()
    for n in range(50):
        encoder.encode(((b":status", b"200"), (b"set-cookie", f"id={n}".encode())))
    assert not any(key[0] == b"set-cookie" for key in hpack_out._FIELDS.entries)
    assert len(hpack_out._BLOCKS.entries) == 0
    fields = ((b":status", b"200"), (b"content-type", b"text/plain"))
    for _ in range(3):
        encoder.encode(fields)
    assert fields in hpack_out._BLOCKS.entries


def test_nghttp_with_no_header_table_reads_every_response(serve):
    """nghttp2 expects a table size update once its SETTINGS_HEADER_TABLE_SIZE of 0 is
    acknowledged; responses without it would be a COMPRESSION_ERROR."""
    nghttp = program("nghttp", "apt-get install nghttp2-client")
    srv = serve(APP)
    urls = [f"http://{srv.host}:{srv.port}/trailers", f"http://{srv.host}:{srv.port}/cookies"]
    out = subprocess.run([nghttp, "-v", "-c", "0", "-n", *urls], capture_output=True,
                         text=True, timeout=20)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "SETTINGS_HEADER_TABLE_SIZE(0x01):0" in out.stdout
    statuses = re.findall(r"recv \(stream_id=\d+\) :status: (\d+)", out.stdout)
    assert statuses.count("200") == 2, out.stdout[-2000:]
    assert "COMPRESSION_ERROR" not in out.stdout
