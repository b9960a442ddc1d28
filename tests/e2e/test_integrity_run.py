"""Integrity end to end: one tiny run of the shipped ``integrity_transit_on`` scenario on Ray.

4 clients, 2 rounds, a keyless man in the middle adding noise to one client's uplink, the gate
and the WAFFLE watermark on, keys from ``fedshield keys generate`` (as a deployment would have
them, so the Ray workers load their own 0600 key files and take their trust anchor from the
runner's environment). One run only (Ray starts in about 10 s); every check after it
(``fedshield verify``, ``fedshield watermark verify``, edited ledger and checkpoint) is offline.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from common.attack_schedule import select_malicious
from common.crypto.signing import KeyPair, key_fingerprint, load_public
from common.results import read_jsonl
from fedshield.cli import main
from server.integrity.ledger import LEDGER_FILE, checkpoint_name
from server.integrity.watermark import WatermarkKey

pytestmark = pytest.mark.e2e

NUM_CLIENTS, ROUNDS, SEED = 4, 2, 42
NUM_TRIGGERS = 20


@pytest.fixture(scope="module")
def keys_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("keys")
    assert main(["keys", "generate", str(directory), "--clients", str(NUM_CLIENTS)]) == 0
    return directory


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory, keys_dir: Path) -> Path:
    """The one Ray run of this module; the tests below only read it (or edit a copy)."""
    output = tmp_path_factory.mktemp("runs")
    code = main(
        [
            "run",
            "integrity_transit_on",
            *("--set", f'output="{output}"'),
            *("--set", f'integrity.keys_dir="{keys_dir}"'),
            *("--set", f"data.num_clients={NUM_CLIENTS}"),
            *("--set", f"rounds={ROUNDS}"),
            *("--set", "train.local_epochs=1"),
            *("--set", "simulation.num_cpus=1"),
            *("--set", "attack.malicious=1"),  # one compromised uplink
            *("--set", "integrity.watermark.enabled=true"),
            *("--set", f"integrity.watermark.num_triggers={NUM_TRIGGERS}"),
            # The random initial model needs about 26 epochs here; room above the default 30.
            *("--set", "integrity.watermark.max_server_epochs=100"),
            # The secret key goes outside the run directory (which keeps only its hash).
            *("--set", f'integrity.watermark.key_file="{output.parent / "wm_secret.json"}"'),
        ]
    )
    assert code == 0
    (directory,) = output.iterdir()
    return directory


def _malicious() -> list[int]:
    return sorted(select_malicious(NUM_CLIENTS, 1, SEED))


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[str]]:
    capsys.readouterr()  # drop what the run printed
    code = main(list(argv))
    return code, capsys.readouterr().out.splitlines()


def test_tampered_uplink_is_rejected_every_round_and_rounds_complete(
    run_dir: Path, keys_dir: Path
) -> None:
    (bad,) = _malicious()
    honest = [p for p in range(NUM_CLIENTS) if p != bad]
    rows = read_jsonl(run_dir / "metrics.jsonl")
    assert [r["round"] for r in rows] == list(range(ROUNDS + 1))
    for row in rows[1:]:
        assert row["malicious_sampled"] == 1
        assert row["num_rejected"] == 1  # exactly the tampered link
        assert row["rejections"] == {str(bad): ["digest_mismatch"]}
        assert (row["num_replies"], row["num_accepted"], row["num_refused"]) == (4, 3, 0)
        assert row["skipped"] is None
    # The 3 honest updates trained the model (the initial one is near chance, 10 classes).
    assert rows[-1]["accuracy"] > rows[0]["accuracy"] + 0.3

    gate_log = read_jsonl(run_dir / "integrity.jsonl")
    assert [(g["round"], g["accepted"], g["rejected"]) for g in gate_log] == [(1, 3, 1), (2, 3, 1)]
    assert all(g["rejected_partitions"] == [bad] for g in gate_log)
    assert all(g["reasons"] == {"digest_mismatch": 1} for g in gate_log)

    ledger = [json.loads(line) for line in (run_dir / LEDGER_FILE).read_text().splitlines()]
    assert [entry["round"] for entry in ledger] == [0, 1, 2]
    for entry in ledger[1:]:
        assert sorted(int(p) for p in entry["accepted"]) == honest
        assert entry["verdicts"] == [
            {"decision": "rejected", "partition_id": bad, "reasons": ["digest_mismatch"]}
        ]

    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["malicious_clients"] == [bad]
    integrity = summary["integrity"]
    assert (integrity["ledger_verified"], integrity["ledger_rounds"]) == (True, ROUNDS + 1)
    assert integrity["ledger_head_hash"] == ledger[-1]["entry_hash"]
    assert integrity["ledger_run"] == run_dir.name
    assert integrity["keys"] == f"files in {keys_dir}"
    detection = integrity["detection"]
    assert (detection["precision"], detection["recall"], detection["f1"]) == (1.0, 1.0, 1.0)
    assert (detection["true_positive_events"], detection["false_positive_events"]) == (2.0, 0.0)


def test_watermark_is_restored_every_round(run_dir: Path) -> None:
    rows = read_jsonl(run_dir / "metrics.jsonl")
    for row in rows:
        # 20 triggers and target 0.98: re-embedding stops only once all 20 are labelled right.
        assert row["watermark_accuracy"] == 1.0
        assert row["watermark_epochs"] < 100
        assert 0.0 <= row["watermark_accuracy_after_aggregation"] <= 1.0
    assert rows[0]["watermark_epochs"] >= 1  # the random initial model had to be watermarked


def test_verify_accepts_the_run_with_the_server_key(
    run_dir: Path, keys_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    public = keys_dir / "server_0000.pub"
    head = json.loads((run_dir / "summary.json").read_text())["integrity"]["ledger_head_hash"]
    fingerprint = key_fingerprint(load_public(public))
    assert _cli(capsys, "verify", str(run_dir), "--server-key", str(public)) == (
        0,
        [
            f"ok: {ROUNDS + 1} rounds, head {head} (as summary.json records), signed by server "
            f"key {fingerprint} (given by --server-key)"
        ],
    )
    # A key of another deployment does not verify the same run.
    other = KeyPair.generate("server").save(keys_dir.parent / "other")[1]
    code, out = _cli(capsys, "verify", str(run_dir), "--server-key", str(other))
    assert (code, out) == (
        1,
        ["FAILED at round 0: entry signature does not verify with the server key"],
    )


def test_verify_names_the_round_whose_ledger_entry_was_edited(
    run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ledger = run_dir / LEDGER_FILE
    original = ledger.read_bytes()
    start = original.index(b"\n") + 1  # first byte of round 1's line
    digest_at = original.index(b'"global_digest":"', start) + len(b'"global_digest":"')
    edited = bytearray(original)
    edited[digest_at] = ord("0") if edited[digest_at] != ord("0") else ord("1")  # one hex digit
    try:
        ledger.write_bytes(bytes(edited))
        code, out = _cli(capsys, "verify", str(run_dir))
        ledger.write_bytes(b"".join(original.splitlines(keepends=True)[:ROUNDS]))  # truncated
        truncated = _cli(capsys, "verify", str(run_dir))
    finally:
        ledger.write_bytes(original)
    assert (code, out) == (1, ["FAILED at round 1: entry hash does not match its content"])
    problem = f"missing: summary.json's signed head has {ROUNDS + 1} rounds (ledger truncated)"
    assert truncated == (1, [f"FAILED at round {ROUNDS}: {problem}"])


def test_verify_names_the_round_whose_checkpoint_was_edited(
    run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    checkpoint = run_dir / checkpoint_name(ROUNDS)
    original = checkpoint.read_bytes()
    edited = bytearray(original)
    edited[len(edited) // 2] ^= 0x80
    try:
        checkpoint.write_bytes(bytes(edited))
        code, out = _cli(capsys, "verify", str(run_dir))
    finally:
        checkpoint.write_bytes(original)
    problem = "checkpoint file digest does not match the entry"
    assert (code, out) == (1, [f"FAILED at round {ROUNDS}: {problem}"])


def test_watermark_verify_accepts_the_owner_key_and_refuses_another(
    run_dir: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    final = str(run_dir / checkpoint_name(ROUNDS))
    key_path = run_dir.parent.parent / "wm_secret.json"
    assert key_path.stat().st_mode & 0o777 == 0o600
    assert not list(run_dir.glob("*key*"))  # the run directory holds no secret
    summary = json.loads((run_dir / "summary.json").read_text())["integrity"]
    commitment = json.loads((run_dir / "watermark_commitment.json").read_text())
    owner = WatermarkKey.load(key_path)
    assert commitment["key_sha256"] == summary["watermark_key_sha256"] == owner.commitment()
    code, out = _cli(capsys, "watermark", "verify", final, str(key_path))
    assert (code, out) == (0, ["ok: watermark accuracy 1.0000"])

    # Same trigger recipe, another secret seed: the model was never trained on these triggers.
    stranger = tmp_path / "other_key.json"
    owner.model_copy(update={"seed": owner.seed + 1}).save(stranger)
    code, out = _cli(capsys, "watermark", "verify", final, str(stranger))
    assert code == 1
    (line,) = out
    assert line.startswith("FAILED: watermark accuracy ")
    assert float(line.rsplit(" ", 1)[1]) < 0.5
