"""Atomic run outputs: old file kept on failure, JSONL round trip, sorted JSON, a real PNG."""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pytest

from common.errors import IntegrityError
from common.results import (
    append_jsonl,
    atomic_write,
    atomic_write_json,
    atomic_write_text,
    plot_accuracy,
    read_json,
    read_jsonl,
    to_json,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_atomic_write_text_creates_parents_and_replaces(tmp_path: Path) -> None:
    target = tmp_path / "run" / "notes.txt"
    atomic_write_text(target, "first")
    atomic_write_text(target, "second ✓")
    assert target.read_text(encoding="utf-8") == "second ✓"
    assert sorted(p.name for p in target.parent.iterdir()) == ["notes.txt"]


def test_writer_failing_mid_way_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "summary.json"
    atomic_write_text(target, "old")

    def half_then_fail(handle: BinaryIO) -> None:
        handle.write(b"new but torn")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(target, half_then_fail)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_unserialisable_json_leaves_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "summary.json"
    atomic_write_json(target, {"accuracy": 0.5})
    with pytest.raises(TypeError, match="object is not JSON serializable"):
        atomic_write_json(target, {"accuracy": 0.9, "model": object()})
    assert json.loads(target.read_text()) == {"accuracy": 0.5}
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_json_is_sorted_and_converts_numpy_values() -> None:
    record = {
        "round": np.int64(3),
        "accuracy": np.float32(0.5),
        "counts": np.array([[1, 2]]),
        "ok": np.bool_(True),
    }
    assert to_json(record) == '{"accuracy": 0.5, "counts": [[1, 2]], "ok": true, "round": 3}'


def test_atomic_write_json_is_deterministic_and_indented(tmp_path: Path) -> None:
    atomic_write_json(tmp_path / "a.json", {"b": 1, "a": [np.float64(0.25)]})
    assert (tmp_path / "a.json").read_text() == '{\n  "a": [\n    0.25\n  ],\n  "b": 1\n}\n'


def test_append_jsonl_round_trips_records_in_order(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    records = [
        {"round": r, "accuracy": np.float32(r / 4), "loss": float("nan") if r == 2 else 1.0}
        for r in range(3)
    ]
    for record in records:
        append_jsonl(path, record)
    text = path.read_text()
    assert text.endswith("\n") and text.count("\n") == 3
    back = read_jsonl(path)
    assert [r["round"] for r in back] == [0, 1, 2]
    assert [r["accuracy"] for r in back] == [0.0, 0.25, 0.5]
    assert np.isnan(back[2]["loss"])
    assert text.splitlines()[0] == '{"accuracy": 0.0, "loss": 1.0, "round": 0}'


def _strict(text: str) -> object:
    # What jq or a browser does with NaN / Infinity tokens: refuse the document.
    def refuse(token: str) -> object:
        raise ValueError(f"non-standard JSON token {token}")

    return json.loads(text, parse_constant=refuse)


def test_non_finite_values_are_strict_json_null_with_a_reason(tmp_path: Path) -> None:
    record = {
        "round": 2,
        "loss": float("nan"),
        "accuracy": np.float32(0.5),
        "epsilon": np.float64("inf"),
        "privacy": {"clients": [{"eps": -float("inf")}], "grid": [[1.0, float("nan")]]},
        "train_loss": None,
        "train_loss_reason": "withheld: DP on",
    }
    line = to_json(record)
    assert _strict(line) == {
        "round": 2,
        "loss": None,
        "loss_reason": "non-finite: nan",
        "accuracy": 0.5,
        "epsilon": None,
        "epsilon_reason": "non-finite: inf",
        "privacy": {
            "clients": [{"eps": None, "eps_reason": "non-finite: -inf"}],
            "grid": [[1.0, None]],
            "grid_reason": {"/0/1": "non-finite: nan"},
        },
        "train_loss": None,
        "train_loss_reason": "withheld: DP on",
    }
    append_jsonl(tmp_path / "m.jsonl", record)
    atomic_write_json(tmp_path / "s.json", {"final": record})
    for back in (read_jsonl(tmp_path / "m.jsonl")[0], read_json(tmp_path / "s.json")["final"]):
        assert math.isnan(back["loss"]) and back["epsilon"] == math.inf
        assert back["privacy"]["clients"][0] == {"eps": -math.inf}
        assert back["privacy"]["grid"][0][0] == 1.0 and math.isnan(back["privacy"]["grid"][0][1])
        # A producer's own withheld value keeps its null and its reason.
        assert back["train_loss"] is None and back["train_loss_reason"] == "withheld: DP on"
        assert set(back) == set(record)
    _strict((tmp_path / "s.json").read_text())


def test_non_finite_values_refused_where_no_reason_can_go() -> None:
    with pytest.raises(ValueError, match="'loss' is non-finite and loss_reason is taken"):
        to_json({"loss": float("nan"), "loss_reason": "x"})
    with pytest.raises(ValueError, match="non-finite value outside a JSON object"):
        to_json(float("inf"))


def test_append_jsonl_of_a_bad_record_leaves_the_log_intact(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    append_jsonl(path, {"round": 1})
    with pytest.raises(TypeError):
        append_jsonl(path, {"round": 2, "weights": {1, 2}})
    assert read_jsonl(path) == [{"round": 1}]
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.jsonl"]


def test_a_batch_of_records_is_appended_whole_or_not_at_all(tmp_path: Path) -> None:
    # A round's client lines go in one append: a bad record among them leaves none written.
    path = tmp_path / "clients.jsonl"
    append_jsonl(path, {"round": 1, "partition": 0}, {"round": 1, "partition": 1})
    with pytest.raises(TypeError):
        append_jsonl(path, {"round": 2, "partition": 0}, {"round": 2, "bad": {1, 2}})
    append_jsonl(path)  # nothing to append: the file is left as it is
    assert read_jsonl(path) == [{"partition": 0, "round": 1}, {"partition": 1, "round": 1}]
    append_jsonl(tmp_path / "none.jsonl")
    assert [p.name for p in tmp_path.iterdir()] == ["clients.jsonl"]


def test_append_jsonl_does_not_modify_the_record(tmp_path: Path) -> None:
    record = {"round": 1, "nested": {"a": 1}}
    append_jsonl(tmp_path / "m.jsonl", record)
    assert record == {"round": 1, "nested": {"a": 1}}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"round": 1}\n{"round": \n', r"m.jsonl:2: not valid JSON"),
        ('{"round": 1}\n\n[1, 2]\n', r"m.jsonl:3: expected a JSON object"),
    ],
)
def test_read_jsonl_names_the_bad_line(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "m.jsonl").write_text(content)
    with pytest.raises(IntegrityError, match=message):
        read_jsonl(tmp_path / "m.jsonl")


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_MAGIC
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_plot_accuracy_writes_a_real_png_atomically(tmp_path: Path) -> None:
    rows = [{"round": r, "accuracy": 0.1 + 0.2 * r, "loss": 2.0 - r} for r in range(4)]
    rows.append({"round": 4, "loss": 0.5})  # no accuracy: skipped, not a crash
    target = tmp_path / "accuracy.png"
    target.write_bytes(b"stale")
    plot_accuracy(rows, target, title="quickstart")
    data = target.read_bytes()
    assert _png_size(data) == (640, 400)
    assert data.endswith(b"IEND\xaeB`\x82")
    assert [p.name for p in tmp_path.iterdir()] == ["accuracy.png"]


def test_plot_accuracy_draws_the_attack_success_rate_too(tmp_path: Path) -> None:
    rows = [{"round": r, "accuracy": 0.5} for r in range(3)]
    plot_accuracy(rows, tmp_path / "clean.png", title="t")
    with_asr = [{**row, "attack_success_rate": 0.9} for row in rows]
    plot_accuracy(with_asr, tmp_path / "asr.png", title="t")
    plot_accuracy(rows, tmp_path / "clean_again.png", title="t")
    clean, asr = (tmp_path / "clean.png").read_bytes(), (tmp_path / "asr.png").read_bytes()
    assert _png_size(asr) == (640, 400)
    assert asr != clean  # the second curve (and its legend entry) changes the image
    assert (tmp_path / "clean_again.png").read_bytes() == clean  # rendering is deterministic
