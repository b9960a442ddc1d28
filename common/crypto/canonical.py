"""Canonical bytes of a train message's configuration, the part of it a client obeys.

A Flower ``ConfigRecord`` maps strings to ``int``, ``float``, ``str``, ``bytes``, ``bool`` or a
list of one of those. The server signs these bytes and the client verifies them over the
record it received, so every key and value the client reads (the round, the scenario JSON with
its attack, DP and training settings, the announced digest, and anything added later) is
covered, and any added, removed or changed entry breaks the signature::

    u64(number of entries)
    for each key k in sorted order (by its UTF-8 bytes), except the excluded ones:
        u64(len(k)) || k (UTF-8) || value(v)

    value(v) = b"?" || u8(v)                       bool (tested before int: bool is an int)
             | b"i" || i64(v)                      int
             | b"f" || f64(v)                      float (IEEE 754 bits: -0.0 != 0.0)
             | b"s" || u64(len) || v (UTF-8)       str
             | b"b" || u64(len) || v               bytes
             | b"l" || u64(len) || value(x) ...    list

with little-endian fixed-width integers. Each field is tagged and length-prefixed, so two
different records never give the same bytes (``{"a": "b", "c": ""}`` cannot collide with
``{"a": "b\\0c"}``, an int never equals the float with the same bits).
"""

from __future__ import annotations

import struct
from collections.abc import Collection, Mapping

from common.errors import IntegrityError


def _sized(tag: bytes, raw: bytes) -> bytes:
    return tag + struct.pack("<Q", len(raw)) + raw


def _value(value: object, key: str) -> bytes:
    if isinstance(value, bool):
        return b"?" + struct.pack("<B", value)
    if isinstance(value, int):
        if not -(2**63) <= value < 2**63:
            raise IntegrityError(f"config {key!r}: got {value}; an int must fit in 64 bits")
        return b"i" + struct.pack("<q", value)
    if isinstance(value, float):
        return b"f" + struct.pack("<d", value)
    if isinstance(value, str):
        return _sized(b"s", value.encode("utf-8"))
    if isinstance(value, bytes):
        return _sized(b"b", value)
    if isinstance(value, list):
        return b"l" + struct.pack("<Q", len(value)) + b"".join(_value(x, key) for x in value)
    raise IntegrityError(f"config {key!r}: got a {type(value).__name__}; not a config value")


def config_bytes(record: Mapping[str, object], *, exclude: Collection[str] = ()) -> bytes:
    """Canonical bytes of ``record`` without the keys in ``exclude`` (see the module docstring).

    Raises :class:`IntegrityError` for a value no ``ConfigRecord`` can hold.
    """
    keys = sorted((k for k in record if k not in exclude), key=lambda k: k.encode("utf-8"))
    parts = [struct.pack("<Q", len(keys))]
    for key in keys:
        parts.append(_sized(b"", key.encode("utf-8")))
        parts.append(_value(record[key], key))
    return b"".join(parts)
