"""The response side of HPACK without the dynamic table: field blocks worked out once.

hpack's ``Encoder`` (what h2 uses) indexes every field it sends into the connection's
dynamic table, so the same field costs one byte the second time, but every block is
worked out anew in Python: a table search per field and Huffman coding of every new
literal, ~9% of the worker's time on ``h2load`` hello (py-spy). ``StaticEncoder`` does
what nginx's HTTP/2 module does for responses: a field in HPACK's static table is sent
as its index, every other field as a literal *without indexing* (RFC 7541 §6.2.2; never
indexed, §6.2.3, for an ``hpack.NeverIndexedHeaderTuple``), its name by static index where
it has one, values Huffman-coded when that is shorter. Nothing depends on what was sent
before, so a field's encoding, and a whole block's, is the same on every connection and
is cached (bounded caches that keep the hot entries): a response whose fields were seen
before costs a dictionary look-up, and one with a new value (a cookie, a Date) costs only
that field's encoding.

The price is bytes: a repeated field goes as its literal every time (e.g. 20 bytes for
``content-type: text/plain`` where the dynamic table would send 1). Decoders need
nothing new: this is plain HPACK, decoded by any client (h2, nghttp2, curl, Chromium:
the suite's interop tests). The peer's SETTINGS_HEADER_TABLE_SIZE is honoured by
signalling a dynamic table size of 0 at the start of the next block (§4.2, §6.3: this
encoder never uses a larger one).

h2 reaches its encoder through ``H2Connection.encoder``: ``encode(headers)`` for every
HEADERS block and the ``header_table_size`` setter when the peer's setting changes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from hpack import NeverIndexedHeaderTuple
from hpack.hpack import encode_integer
from hpack.huffman import HuffmanEncoder
from hpack.huffman_constants import REQUEST_CODES, REQUEST_CODES_LENGTH
from hpack.table import HeaderTable

from ...cache import BoundedCache

__all__ = ["StaticEncoder", "encode_field"]

_STATIC_PAIRS: dict[tuple[bytes, bytes], int] = {}
_STATIC_NAMES: dict[bytes, int] = {}
for _index, (_name, _value) in enumerate(HeaderTable.STATIC_TABLE, 1):
    _STATIC_PAIRS.setdefault((_name, _value), _index)
    _STATIC_NAMES.setdefault(_name, _index)

_HUFFMAN = HuffmanEncoder(REQUEST_CODES, REQUEST_CODES_LENGTH)
_SIZE_ZERO = b"\x20"  # a dynamic table size update to 0 (§6.3: 001 and a 5-bit prefix)

# (name, value) -> its encoding; a field list (the tuple h2 is given) -> the block.
_FIELDS: BoundedCache[tuple[bytes, bytes], bytes] = BoundedCache(4096)
_BLOCKS: BoundedCache[tuple[Any, ...], bytes] = BoundedCache(1024)


def _string(data: bytes) -> bytes:
    """An HPACK string literal (§5.2): Huffman-coded when that is shorter."""
    coded = _HUFFMAN.encode(data)
    if len(coded) < len(data):
        length = encode_integer(len(coded), 7)
        length[0] |= 0x80
        return bytes(length) + coded
    return bytes(encode_integer(len(data), 7)) + data


def encode_field(name: bytes, value: bytes, never_indexed: bool = False) -> bytes:
    """One field's representation: static index, or a literal that is not indexed."""
    if not never_indexed:
        index = _STATIC_PAIRS.get((name, value))
        if index is not None:
            return bytes((0x80 | index,))  # (the static table's indices all fit in 7 bits)
    flag = 0x10 if never_indexed else 0x00
    name_index = _STATIC_NAMES.get(name)
    if name_index is not None:
        head = encode_integer(name_index, 4)
        head[0] |= flag
        return bytes(head) + _string(value)
    return bytes((flag,)) + _string(name) + _string(value)


def _field(pair: Any) -> bytes:
    if pair.__class__ is tuple:
        encoded = _FIELDS.entries.get(pair)
        if encoded is None:
            if pair in _FIELDS.previous:
                encoded = _FIELDS.recall(pair)
            if encoded is None:
                encoded = encode_field(_bytes(pair[0]), _bytes(pair[1]))
                if _FIELDS.admit(pair):  # (a value seen once, a cookie or an id, is not kept)
                    _FIELDS.keep(pair, encoded)
        return encoded
    name, value = pair
    return encode_field(_bytes(name), _bytes(value),
                        isinstance(pair, NeverIndexedHeaderTuple) and pair.indexable is False)


def _bytes(value: Any) -> bytes:
    return value if value.__class__ is bytes else (
        value.encode("utf-8") if isinstance(value, str) else bytes(value))


class StaticEncoder:
    """What h2 needs of an HPACK encoder, stateless (see the module)."""

    __slots__ = ("_prefix",)

    def __init__(self) -> None:
        self._prefix = b""

    @property
    def header_table_size(self) -> int:
        return 0

    @header_table_size.setter
    def header_table_size(self, value: int) -> None:
        # The peer's limit changed: say at the next block that the table is (still) empty.
        self._prefix = _SIZE_ZERO

    def encode(self, headers: Iterable[Any], huffman: bool = True) -> bytes:
        # (huffman: literals are Huffman-coded wherever that is shorter, whatever it says)
        block = None
        if headers.__class__ is tuple:
            try:
                block = _BLOCKS.entries.get(headers)  # type: ignore[call-overload]
                if block is None and headers in _BLOCKS.previous:
                    block = _BLOCKS.recall(headers)  # type: ignore[arg-type]
            except TypeError:  # (a field that cannot be a key: not cached)
                pass
            else:
                if block is None:
                    block = b"".join([_field(pair) for pair in headers])
                    if _BLOCKS.admit(headers):  # type: ignore[arg-type]
                        _BLOCKS.keep(headers, block)  # type: ignore[arg-type]
        if block is None:
            block = b"".join([_field(pair) for pair in headers])
        prefix = self._prefix
        if prefix:
            self._prefix = b""
            return prefix + block
        return block
