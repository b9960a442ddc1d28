"""config_bytes: one encoding per record, so a signature covers exactly what was sent."""

from __future__ import annotations

import struct

import pytest

from common.crypto.canonical import config_bytes
from common.errors import IntegrityError


def test_the_encoding_follows_the_documented_layout() -> None:
    got = config_bytes({"b": [1, 2], "a": "x", "sig": b"ignored"}, exclude=("sig",))
    u64 = lambda n: struct.pack("<Q", n)  # noqa: E731
    expected = (
        u64(2)
        + u64(1) + b"a" + b"s" + u64(1) + b"x"
        + u64(1) + b"b" + b"l" + u64(2) + b"i" + struct.pack("<q", 1) + b"i" + struct.pack("<q", 2)
    )  # fmt: skip
    assert got == expected


def test_insertion_order_does_not_matter_but_every_value_and_type_does() -> None:
    record: dict[str, object] = {"round": 1, "scenario": "{}", "flag": True, "lr": 0.5}
    assert config_bytes(record) == config_bytes(dict(reversed(list(record.items()))))
    variants: list[dict[str, object]] = [
        {**record, "round": 1.0},  # int vs float
        {**record, "flag": 1},  # bool vs int
        {**record, "lr": -0.5},
        {**record, "scenario": "{} "},
        {**record, "scenario": b"{}"},  # str vs bytes
        {**record, "extra": ""},
        {k: v for k, v in record.items() if k != "lr"},
        {**record, "round": [1]},
        {"round": 1, "scenario": "{}\x00flag", "lr": 0.5},  # no field runs into the next
    ]
    encodings = {config_bytes(v) for v in variants}
    assert len(encodings) == len(variants) and config_bytes(record) not in encodings


@pytest.mark.parametrize("value", [2**63, None, {"a": 1}, object()])
def test_a_value_no_config_record_can_hold_is_refused(value: object) -> None:
    with pytest.raises(IntegrityError, match="'k'"):
        config_bytes({"k": value})
