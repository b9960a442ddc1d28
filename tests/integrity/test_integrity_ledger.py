"""RunLedger / verify_run: untouched runs verify; any edited byte names its round."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from common.errors import IntegrityError
from server.integrity.checkpoint import load_checkpoint
from server.integrity.ledger import GENESIS_HASH, LEDGER_FILE, RunLedger, checkpoint_name
from server.integrity.ledger_verify import verify_run
from tests.integrity._builders import global_model
from tests.integrity._runs import ROUNDS, SERVER, write_run

KEY = SERVER.public_key


def _flip_byte(path: Path, position: int) -> None:
    data = bytearray(path.read_bytes())
    data[position] ^= 0x01
    path.write_bytes(bytes(data))


def test_untouched_run_verifies_and_entries_have_the_documented_fields(tmp_path: Path) -> None:
    run_dir = tmp_path / "run-a"
    write_run(run_dir)
    report = verify_run(run_dir, KEY)
    assert (report.status, report.first_bad_round, report.rounds) == ("ok", None, ROUNDS)
    entries = [json.loads(line) for line in (run_dir / LEDGER_FILE).read_text().splitlines()]
    assert [e["round"] for e in entries] == list(range(ROUNDS))
    assert {e["run"] for e in entries} == {"run-a"}
    assert all(len(e["signature"]) == 128 for e in entries)  # 64-byte Ed25519, hex
    assert entries[0]["prev_hash"] == GENESIS_HASH
    assert len(entries[0]["scenario_sha256"]) == 64 and "scenario_sha256" not in entries[1]
    assert all(
        b["prev_hash"] == a["entry_hash"] for a, b in zip(entries, entries[1:], strict=False)
    )
    assert entries[-1]["entry_hash"] == report.head_hash
    assert entries[1]["accepted"] == {"0": "ab" * 32, "2": "cd" * 32}
    assert entries[1]["verdicts"] == [
        {"partition_id": 1, "decision": "rejected", "reasons": ["bad_signature"]}
    ]
    restored = load_checkpoint(run_dir / checkpoint_name(2))
    assert all(np.array_equal(a, b) for a, b in zip(restored, global_model(2), strict=True))


def test_any_edited_ledger_byte_fails_at_its_round(tmp_path: Path) -> None:
    write_run(tmp_path)
    path = tmp_path / LEDGER_FILE
    original = path.read_bytes()
    line_starts = [0] + [i + 1 for i, byte in enumerate(original) if byte == ord("\n")]
    rng = np.random.default_rng(0)
    for server_round in range(ROUNDS):
        start, end = line_starts[server_round], line_starts[server_round + 1]  # end: after "\n"
        positions = {start, end - 2, end - 1, *rng.integers(start, end, 40).tolist()}
        for position in sorted(positions):
            _flip_byte(path, position)
            report = verify_run(tmp_path, KEY)
            assert report.status == "tampered"
            assert report.first_bad_round == server_round, (position, report.reason)
            path.write_bytes(original)
    assert verify_run(tmp_path, KEY).ok


def test_any_edited_checkpoint_byte_fails_at_its_round(tmp_path: Path) -> None:
    write_run(tmp_path)
    rng = np.random.default_rng(1)
    for server_round in range(ROUNDS):
        checkpoint = tmp_path / checkpoint_name(server_round)
        original = checkpoint.read_bytes()
        for position in rng.integers(0, len(original), 10).tolist():
            _flip_byte(checkpoint, position)
            report = verify_run(tmp_path, KEY)
            assert (report.status, report.first_bad_round) == ("tampered", server_round)
            checkpoint.write_bytes(original)
        checkpoint.unlink()
        assert verify_run(tmp_path, KEY).first_bad_round == server_round
        checkpoint.write_bytes(original)
    assert verify_run(tmp_path, KEY).ok


def test_an_edited_scenario_json_fails_at_round_0(tmp_path: Path) -> None:
    write_run(tmp_path)
    scenario = tmp_path / "scenario.json"
    scenario.write_text(scenario.read_text().replace("true", "false"))
    report = verify_run(tmp_path, KEY)
    assert (report.status, report.first_bad_round) == ("tampered", 0)
    assert report.reason == "scenario.json differs from the one the run started with"


def test_resume_continues_the_chain_and_rounds_must_follow(tmp_path: Path) -> None:
    write_run(tmp_path, rounds=2)
    ledger = RunLedger(tmp_path, key=SERVER)
    with pytest.raises(IntegrityError, match="expects round 2"):
        ledger.record_round(3, global_arrays=global_model(3), aggregator="fedavg",
                            aggregator_params={}, accepted_digests={}, verdicts=[])  # fmt: skip
    ledger.record_round(2, global_arrays=global_model(2), aggregator="fedavg",
                        aggregator_params={}, accepted_digests={}, verdicts=[])  # fmt: skip
    assert verify_run(tmp_path, KEY, check_head=False).rounds == 3


def test_resuming_a_corrupt_ledger_is_refused(tmp_path: Path) -> None:
    write_run(tmp_path, rounds=1)
    with (tmp_path / LEDGER_FILE).open("a") as handle:
        handle.write("{not json\n")
    with pytest.raises(IntegrityError, match="unreadable"):
        RunLedger(tmp_path, key=SERVER)


def test_missing_ledger_cannot_be_read_and_an_empty_one_does_not_verify(tmp_path: Path) -> None:
    assert verify_run(tmp_path, KEY).status == "unreadable"
    (tmp_path / LEDGER_FILE).write_text("")
    assert (verify_run(tmp_path, KEY).status, verify_run(tmp_path, KEY).reason) == (
        "tampered",
        "ledger is empty",
    )
