"""RunLedger / verify_run: untouched runs verify; any edited byte names its round."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from common.errors import IntegrityError
from server.integrity.checkpoint import load_checkpoint
from server.integrity.gate import Verdict
from server.integrity.ledger import (
    GENESIS_HASH,
    LEDGER_FILE,
    RunLedger,
    checkpoint_name,
    verify_run,
)
from tests.integrity._builders import global_model

ROUNDS = 4  # rounds 0 (initial weights) .. 3


def _record_run(run_dir: Path, rounds: int = ROUNDS) -> RunLedger:
    ledger = RunLedger(run_dir)
    for server_round in range(rounds):
        ledger.record_round(
            server_round,
            global_arrays=global_model(server_round),
            aggregator="krum",
            aggregator_params={"num_byzantine": 1, "multi": False},
            accepted_digests={} if server_round == 0 else {0: "ab" * 32, 2: "cd" * 32},
            verdicts=[Verdict(0, "accepted", ()), Verdict(1, "rejected", ("bad_signature",))],
        )
    return ledger


def _flip_byte(path: Path, position: int) -> None:
    data = bytearray(path.read_bytes())
    data[position] ^= 0x01
    path.write_bytes(bytes(data))


def test_untouched_run_verifies_and_entries_have_the_documented_fields(tmp_path: Path) -> None:
    _record_run(tmp_path)
    report = verify_run(tmp_path)
    assert (report.ok, report.first_bad_round, report.rounds) == (True, None, ROUNDS)
    entries = [json.loads(line) for line in (tmp_path / LEDGER_FILE).read_text().splitlines()]
    assert [e["round"] for e in entries] == list(range(ROUNDS))
    assert entries[0]["prev_hash"] == GENESIS_HASH
    assert all(
        b["prev_hash"] == a["entry_hash"] for a, b in zip(entries, entries[1:], strict=False)
    )
    assert entries[-1]["entry_hash"] == report.head_hash
    assert entries[1]["accepted"] == {"0": "ab" * 32, "2": "cd" * 32}
    assert entries[1]["verdicts"] == [
        {"partition_id": 1, "decision": "rejected", "reasons": ["bad_signature"]}
    ]
    restored = load_checkpoint(tmp_path / checkpoint_name(2))
    assert all(np.array_equal(a, b) for a, b in zip(restored, global_model(2), strict=True))


def test_any_edited_ledger_byte_fails_at_its_round(tmp_path: Path) -> None:
    _record_run(tmp_path)
    path = tmp_path / LEDGER_FILE
    original = path.read_bytes()
    line_starts = [0] + [i + 1 for i, byte in enumerate(original) if byte == ord("\n")]
    rng = np.random.default_rng(0)
    for server_round in range(ROUNDS):
        start, end = line_starts[server_round], line_starts[server_round + 1]  # end: after "\n"
        positions = {start, end - 2, end - 1, *rng.integers(start, end, 40).tolist()}
        for position in sorted(positions):
            _flip_byte(path, position)
            report = verify_run(tmp_path)
            assert not report.ok
            assert report.first_bad_round == server_round, (position, report.reason)
            path.write_bytes(original)
    assert verify_run(tmp_path).ok


def test_any_edited_checkpoint_byte_fails_at_its_round(tmp_path: Path) -> None:
    _record_run(tmp_path)
    rng = np.random.default_rng(1)
    for server_round in range(ROUNDS):
        checkpoint = tmp_path / checkpoint_name(server_round)
        original = checkpoint.read_bytes()
        for position in rng.integers(0, len(original), 10).tolist():
            _flip_byte(checkpoint, position)
            report = verify_run(tmp_path)
            assert (report.ok, report.first_bad_round) == (False, server_round), report.reason
            checkpoint.write_bytes(original)
        checkpoint.unlink()
        assert verify_run(tmp_path).first_bad_round == server_round
        checkpoint.write_bytes(original)
    assert verify_run(tmp_path).ok


def test_a_rewritten_entry_with_a_fresh_hash_breaks_the_next_link(tmp_path: Path) -> None:
    _record_run(tmp_path)
    path = tmp_path / LEDGER_FILE
    lines = path.read_text().splitlines()
    forged = json.loads(lines[1])
    forged["verdicts"] = []  # hide the rejection, then recompute this entry's own hash
    content = {k: v for k, v in forged.items() if k != "entry_hash"}
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"))
    forged["entry_hash"] = hashlib.sha256(canonical.encode()).hexdigest()
    lines[1] = json.dumps(forged, sort_keys=True, separators=(",", ":"))
    path.write_text("\n".join(lines) + "\n")
    report = verify_run(tmp_path)
    assert (report.ok, report.first_bad_round) == (False, 2)
    assert "prev_hash" in report.reason


def test_resume_continues_the_chain_and_rounds_must_follow(tmp_path: Path) -> None:
    _record_run(tmp_path, rounds=2)
    ledger = RunLedger(tmp_path)
    with pytest.raises(IntegrityError, match="expects round 2"):
        ledger.record_round(3, global_arrays=global_model(3), aggregator="fedavg",
                            aggregator_params={}, accepted_digests={}, verdicts=[])  # fmt: skip
    ledger.record_round(2, global_arrays=global_model(2), aggregator="fedavg",
                        aggregator_params={}, accepted_digests={}, verdicts=[])  # fmt: skip
    assert verify_run(tmp_path).rounds == 3


def test_resuming_a_corrupt_ledger_is_refused(tmp_path: Path) -> None:
    _record_run(tmp_path, rounds=1)
    with (tmp_path / LEDGER_FILE).open("a") as handle:
        handle.write("{not json\n")
    with pytest.raises(IntegrityError, match="unreadable"):
        RunLedger(tmp_path)


def test_missing_or_empty_ledger_does_not_verify(tmp_path: Path) -> None:
    assert not verify_run(tmp_path).ok
    (tmp_path / LEDGER_FILE).write_text("")
    assert not verify_run(tmp_path).ok
