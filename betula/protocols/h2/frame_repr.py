"""A cheaper, identical ``hyperframe.frame._raw_data_repr``.

h2 4.x logs every frame it receives as ``logger.trace("Received frame: %s", repr(frame))``:
the ``repr`` is built whether or not anything logs it. hyperframe's repr of a frame's
payload hex-encodes the whole payload and then keeps its first 20 hex digits, so a 4 KiB
DATA frame costs ~4.7 us to describe (a 16 KiB one four times that), about 5% of the
worker's time on ``h2load`` POSTs of 4 KiB. ``install()`` replaces it with a function
that encodes only the first 11 bytes: the same string for every input
(``tests/test_h2_output.py`` compares the two), at a cost that does not grow with the
payload. Applied once, when the HTTP/2 protocol is imported; if hyperframe no longer has
the function, nothing is changed.
"""

from __future__ import annotations

import binascii
from typing import Any

import hyperframe.frame

__all__ = ["install", "raw_data_repr"]

_ORIGINAL = getattr(hyperframe.frame, "_raw_data_repr", None)


def raw_data_repr(data: Any) -> str:
    if not data:
        return "None"
    digits = binascii.hexlify(data[:11]).decode("ascii")
    if len(digits) > 20:
        digits = digits[:20] + "..."
    return "<hex:" + digits + ">"


def install() -> bool:
    """Put ``raw_data_repr`` in hyperframe's place; False where hyperframe lacks it."""
    if _ORIGINAL is None:
        return False
    hyperframe.frame._raw_data_repr = raw_data_repr  # type: ignore[attr-defined]
    return True


def original() -> Any:
    """hyperframe's own function (for the test that compares them)."""
    return _ORIGINAL
