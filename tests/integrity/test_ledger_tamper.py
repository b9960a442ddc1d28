"""A storage attacker without the server key: every edit of a finished run names its round.

The attacker can rewrite every file of the run directory and run fedshield's own code (here
``RunLedger`` with a key of its own, so each forged entry is well formed, hashed and chained),
but does not hold the server's private key. Before the ledger was signed, each of these edits
verified.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from common.crypto.signing import KeyPair, key_fingerprint
from common.results import atomic_write_json
from fedshield.cli import main
from server.integrity.ledger import LEDGER_FILE, RunLedger
from server.integrity.ledger_verify import verify_run
from tests.integrity._builders import global_model
from tests.integrity._runs import ROUNDS, SERVER, record_rounds, write_run

ATTACKER = KeyPair.generate("server")


def _keep_lines(run_dir: Path, count: int) -> None:
    path = run_dir / LEDGER_FILE
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:count]))


def _rewrite_from(run_dir: Path, first: int) -> None:
    """Re-create rounds ``first``.. with the attacker's key: consistent, hashed and chained."""
    _keep_lines(run_dir, first)
    forged = RunLedger(run_dir, key=ATTACKER)
    for server_round in range(first, ROUNDS):  # no verdicts, other weights
        forged.record_round(server_round, global_arrays=[a + 1 for a in global_model(server_round)],
                            aggregator="fedavg", aggregator_params={}, accepted_digests={},
                            verdicts=[])  # fmt: skip


def _truncate_to_round_0(run_dir: Path) -> None:
    _keep_lines(run_dir, 1)


def _truncate_last(run_dir: Path) -> None:
    _keep_lines(run_dir, ROUNDS - 1)


def _truncate_and_rewrite_summary(run_dir: Path) -> None:
    _keep_lines(run_dir, 2)
    summary = json.loads((run_dir / "summary.json").read_text())
    head = json.loads((run_dir / LEDGER_FILE).read_text().splitlines()[-1])
    summary["integrity"].update(ledger_rounds=2, ledger_head_hash=head["entry_hash"])
    atomic_write_json(run_dir / "summary.json", summary)


def _forge_extra_round(run_dir: Path) -> None:
    record_rounds(RunLedger(run_dir, key=ATTACKER), range(ROUNDS, ROUNDS + 1))


def _another_runs_ledger(run_dir: Path) -> None:
    other = run_dir.parent / "other-run"
    write_run(other, key=SERVER)  # same server key, same scenario, another run
    for name in (LEDGER_FILE, "checkpoints"):
        target = run_dir / name
        shutil.rmtree(target) if target.is_dir() else target.unlink()
        (shutil.copytree if (other / name).is_dir() else shutil.copy)(other / name, target)


def _edit_summary_rounds(run_dir: Path) -> None:
    summary = json.loads((run_dir / "summary.json").read_text())
    summary["integrity"]["ledger_rounds"] = ROUNDS + 1
    atomic_write_json(run_dir / "summary.json", summary)


def _delete_summary(run_dir: Path) -> None:
    (run_dir / "summary.json").unlink()


CASES = {
    # edit: (first bad round, reason)
    "truncated_to_round_0": (
        _truncate_to_round_0,
        1,
        f"missing: summary.json's signed head has {ROUNDS} rounds (ledger truncated)",
    ),
    "last_round_deleted": (
        _truncate_last,
        ROUNDS - 1,
        f"missing: summary.json's signed head has {ROUNDS} rounds (ledger truncated)",
    ),
    "whole_chain_rewritten": (
        lambda d: _rewrite_from(d, 0),
        0,
        "entry signature does not verify with the server key",
    ),
    "verdict_erased_from_round_2": (
        lambda d: _rewrite_from(d, 2),
        2,
        "entry signature does not verify with the server key",
    ),
    "forged_extra_round": (
        _forge_extra_round,
        ROUNDS,
        "entry signature does not verify with the server key",
    ),
    "another_runs_ledger": (
        _another_runs_ledger,
        0,
        "entry belongs to run 'other-run', not 'run'",
    ),
    "summary_rounds_edited": (
        _edit_summary_rounds,
        None,
        "summary.json's ledger head signature does not verify",
    ),
    "truncated_and_summary_rewritten": (
        _truncate_and_rewrite_summary,
        None,
        "summary.json's ledger head signature does not verify",
    ),
    "summary_deleted": (
        _delete_summary,
        None,
        "summary.json is missing: nothing signs the chain's end",
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_each_tamper_fails_in_one_line_naming_the_first_bad_round(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edit, bad_round, reason = CASES[case]
    run_dir = tmp_path / "run"
    write_run(run_dir)
    assert verify_run(run_dir, SERVER.public_key).ok
    edit(run_dir)
    report = verify_run(run_dir, SERVER.public_key)
    assert (report.status, report.first_bad_round, report.reason) == ("tampered", bad_round, reason)

    _, public = SERVER.save(tmp_path / "keys")
    code = main(["verify", str(run_dir), "--server-key", str(public)])
    out = capsys.readouterr().out.splitlines()
    where = "" if bad_round is None else f" at round {bad_round}"
    assert (code, out) == (1, [f"FAILED{where}: {reason}"])


def test_the_intact_run_prints_rounds_head_and_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ledger = write_run(tmp_path / "run")
    head = ledger.head()["ledger_head_hash"]
    _, public = SERVER.save(tmp_path / "keys")
    fingerprint = key_fingerprint(SERVER.public_key)
    assert main(["verify", str(tmp_path / "run"), "--server-key", str(public)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"ok: {ROUNDS} rounds, head {head} (as summary.json records), signed by server key "
        f"{fingerprint} (given by --server-key)"
    ]
    # Without --server-key: the scenario's own (seed-derived) key, and the output says so.
    assert main(["verify", str(tmp_path / "run")]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    seed_note = "seed-derived from scenario.json: anyone with the seed could have signed"
    assert line.endswith(f"({seed_note})"), line


def test_another_servers_key_rejects_an_intact_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_run(tmp_path / "run")
    _, public = ATTACKER.save(tmp_path / "keys")
    assert main(["verify", str(tmp_path / "run"), "--server-key", str(public)]) == 1
    assert capsys.readouterr().out.splitlines() == [
        "FAILED at round 0: entry signature does not verify with the server key"
    ]
