"""``fedshield verify`` and ``watermark verify`` answer 0 (ok) or 1 (failed check), offline;
``verify`` answers 2 for input it cannot read.

Also: the shipped integrity scenarios differ only where their comments say.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest

from common.crypto.signing import KeyPair
from common.results import atomic_write_json
from scenarios.loader import load_scenario
from server.integrity.ledger import LEDGER_FILE, RunLedger, checkpoint_name
from tests.cli_helpers import run_cli

# -- verify and watermark verify, on a ledger written here (the e2e test covers a real run) -----


def _write_run(run_dir: Path, rounds: int) -> None:
    atomic_write_json(run_dir / "scenario.json", {"seed": 0, "integrity": {"enabled": True}})
    ledger = RunLedger(run_dir, key=KeyPair.from_seed(0, "server"))
    for server_round in range(rounds):
        weights = [np.full((2, 3), server_round, np.float32), np.arange(3, dtype=np.float32)]
        ledger.record_round(
            server_round,
            global_arrays=weights,
            aggregator="fedavg",
            aggregator_params={},
            accepted_digests={},
            verdicts=[],
        )
    atomic_write_json(run_dir / "summary.json", {"integrity": ledger.head()})


def test_verify_accepts_an_intact_run_and_names_the_edited_round(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    _write_run(tmp_path, rounds=3)
    code, out, _ = run_cli(capsys, "verify", str(tmp_path))
    assert code == 0 and len(out) == 1
    assert out[0].startswith("ok: 3 rounds, head ")

    checkpoint = tmp_path / checkpoint_name(2)
    data = bytearray(checkpoint.read_bytes())
    data[len(data) // 2] ^= 0x01
    checkpoint.write_bytes(bytes(data))
    code, out, _ = run_cli(capsys, "verify", str(tmp_path))
    assert (code, out) == (
        1,
        ["FAILED at round 2: checkpoint file digest does not match the entry"],
    )


def test_verify_names_an_edited_ledger_entry(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    _write_run(tmp_path, rounds=3)
    ledger = tmp_path / LEDGER_FILE
    lines = ledger.read_text(encoding="ascii").splitlines(keepends=True)
    lines[1] = lines[1].replace('"aggregator":"fedavg"', '"aggregator":"fedavh"')
    ledger.write_text("".join(lines), encoding="ascii")
    code, out, _ = run_cli(capsys, "verify", str(tmp_path))
    assert (code, out) == (1, ["FAILED at round 1: entry hash does not match its content"])


def test_watermark_verify_with_a_malformed_key_fails_in_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    _write_run(tmp_path, rounds=1)
    key = tmp_path / "key.json"
    key.write_text('{"seed": -1}', encoding="utf-8")
    code, out, err = run_cli(
        capsys, "watermark", "verify", str(tmp_path / checkpoint_name(0)), str(key)
    )
    assert (code, out) == (2, [])
    assert len(err) == 1
    assert err[0].startswith(f"error: {key}.seed: got -1; ")


# -- the shipped integrity scenarios compare like with like ---------------------------------


def _flat(document: Mapping[str, object], prefix: str = "") -> dict[str, object]:
    flat: dict[str, object] = {}
    for key, value in document.items():
        if isinstance(value, Mapping):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _differences(first: str, second: str) -> set[str]:
    """Dotted fields whose resolved values differ between two packaged scenarios."""
    a, b = (_flat(load_scenario(name).model_dump()) for name in (first, second))
    return {key for key in a.keys() | b.keys() if a.get(key) != b.get(key)}


def test_integrity_scenarios_differ_only_where_their_comments_say() -> None:
    # The measured comparisons of docs/integrity_scenarios.md rest on these pairs.
    assert _differences("quickstart", "integrity_transit_off") == {
        "name",
        "attack.type",
        "attack.params.direction",
        "attack.params.scale",
        "attack.malicious",
    }
    assert _differences("integrity_transit_off", "integrity_transit_on") == {
        "name",
        "integrity.enabled",
    }
    assert _differences("integrity_transit_on", "integrity_transit_downlink") == {
        "name",
        "attack.params.direction",
    }
    assert load_scenario("integrity_transit_downlink").attack.params == {
        "direction": "downlink",
        "scale": 1.0,
    }
    assert _differences("quickstart", "integrity_watermark") == {
        "name",
        "integrity.enabled",
        "integrity.watermark.enabled",
    }
