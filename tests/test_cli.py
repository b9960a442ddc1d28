"""The ``fedshield`` command line, in process and without Ray: exit codes and what it prints.

User errors must end in exit code 2 and exactly one ``error: FIELD: ...`` line on stderr, before
any simulation starts; ``verify`` and ``watermark verify`` answer 0 (ok) or 1 (failed check),
``verify`` 2 for input it cannot read.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest
import ray

from attacks import ATTACKS
from common.crypto.signing import KeyPair
from common.data.datasets import DATASETS
from common.data.partitioners import PARTITIONERS
from common.learning.models import MODELS
from common.results import atomic_write_json
from fedshield.cli import main
from scenarios.loader import load_scenario, packaged_scenarios
from server.integrity.ledger import LEDGER_FILE, RunLedger, checkpoint_name
from strategies import AGGREGATORS, PRE_AGGREGATORS

# A complete scenario in the smallest form the schema accepts; each bad case breaks one field.
GOOD_TOML = 'name = "t"\nseed = 3\nrounds = 2\n\n[train]\nbatch_size = 16\n'

REGISTRIES: dict[str, Mapping[str, object]] = {
    "datasets": DATASETS,
    "partitioners": PARTITIONERS,
    "models": MODELS,
    "aggregators": AGGREGATORS,
    "pre-aggregators": PRE_AGGREGATORS,
    "attacks": ATTACKS,
}


def _run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[str], list[str]]:
    """Exit code, stdout lines and stderr lines of one in-process ``fedshield`` call."""
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out.splitlines(), captured.err.splitlines()


def _sections(lines: list[str]) -> dict[str, list[str]]:
    """``fedshield list`` output split by its ``kind:`` headers (entries keep their indent)."""
    sections: dict[str, list[str]] = {}
    current: list[str] = []
    for line in lines:
        if not line.startswith(" "):
            current = sections.setdefault(line.removesuffix(":"), [])
        else:
            current.append(line)
    return sections


# -- validate ---------------------------------------------------------------------------------


def test_validate_packaged_quickstart_prints_one_ok_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = _run_cli(capsys, "validate", "quickstart")
    assert (code, err) == (0, [])
    assert out == [
        "ok: quickstart (seed 42, 10 rounds, 10 clients on digits, 10 per round, "
        "aggregator fedavg, attack none)"
    ]


@pytest.mark.parametrize(
    ("name", "attack"),
    [
        ("integrity_transit_off", "additive"),
        ("integrity_transit_on", "additive"),
        ("integrity_transit_downlink", "additive"),
        ("integrity_watermark", "none"),
        ("integrity_nonfinite", "nonfinite"),
    ],
)
def test_shipped_integrity_scenarios_validate(
    capsys: pytest.CaptureFixture[str], name: str, attack: str
) -> None:
    code, out, err = _run_cli(capsys, "validate", name)
    assert (code, err) == (0, [])
    assert len(out) == 1
    assert out[0].startswith(f"ok: {name} (seed 42, 10 rounds, 10 clients on digits, ")
    assert out[0].endswith(f"aggregator fedavg, attack {attack})")


def test_validate_a_good_file_with_overrides(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "good.toml"
    path.write_text(GOOD_TOML, encoding="utf-8")
    code, out, err = _run_cli(
        capsys,
        "validate",
        str(path),
        "--set",
        "data.num_clients=4",
        "--set",
        "clients_per_round=0.5",
    )
    assert (code, err) == (0, [])
    assert out == [
        "ok: t (seed 3, 2 rounds, 4 clients on digits, 2 per round, aggregator fedavg, attack none)"
    ]


@pytest.mark.parametrize(
    ("toml_text", "expected"),
    [
        # unknown key (a typo of local_epochs)
        (GOOD_TOML + "local_epoch = 2\n", "error: train.local_epoch: unknown key (value 2); "),
        # wrong type
        (
            GOOD_TOML.replace("batch_size = 16", 'batch_size = "big"'),
            "error: train.batch_size: got 'big'; ",
        ),
        # out of range
        (GOOD_TOML.replace("rounds = 2", "rounds = 0"), "error: rounds: got 0; "),
        # out of range in a nested plug-in table of the integrity section
        (
            GOOD_TOML + "\n[integrity.watermark]\nnum_triggers = 0\n",
            "error: integrity.watermark.num_triggers: got 0; ",
        ),
        # not TOML at all
        (GOOD_TOML + "rounds = = 3\n", "error: scenario "),
    ],
    ids=["unknown-key", "wrong-type", "out-of-range", "nested-range", "bad-toml"],
)
def test_validate_a_bad_file_fails_in_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, toml_text: str, expected: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(toml_text, encoding="utf-8")
    code, out, err = _run_cli(capsys, "validate", str(path))
    assert (code, out) == (2, [])
    assert len(err) == 1
    assert err[0].startswith(expected)


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("train.local_epoch=2", "error: train.local_epoch: unknown key (value 2); "),
        ("rounds=abc", "error: rounds: got 'abc'; "),
        ("train.batch_size=0", "error: train.batch_size: got 0; "),
        ("attack.malicious=1.5", "error: attack.malicious: got 1.5; a fraction must be in [0, 1)"),
        ("train.optimizer=rmsprop", "error: train.optimizer: got 'rmsprop'; "),
        ("integrity.max_norm_ratio=0.5", "error: integrity.max_norm_ratio: got 0.5; "),
        ("clients_per_round=11", "error: clients_per_round: got 11; a count must be at most "),
        (
            "data.partition.scheme=zz",
            "error: data.partition.scheme: unknown partitioner 'zz'; valid: ",
        ),
        ("attack.type=additive", "error: attack.malicious: got 0; attack 'additive' needs "),
        ("model.name=resnet", "error: model.name: unknown model 'resnet'; valid: cnn, mlp"),
        ("nokey", "error: --set: got 'nokey'; expected dotted.key=value"),
    ],
)
def test_validate_a_bad_override_fails_in_one_line(
    capsys: pytest.CaptureFixture[str], override: str, expected: str
) -> None:
    code, out, err = _run_cli(capsys, "validate", "quickstart", "--set", override)
    assert (code, out) == (2, [])
    assert len(err) == 1
    assert err[0].startswith(expected)


def test_unknown_scenario_lists_the_packaged_ones(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run_cli(capsys, "validate", "no_such_scenario")
    assert (code, out) == (2, [])
    assert len(err) == 1
    assert err[0].startswith("error: scenario: no file 'no_such_scenario' and no packaged scenario")
    assert "integrity_transit_on" in err[0] and "quickstart" in err[0]


# -- run --------------------------------------------------------------------------------------


def test_run_with_a_bad_scenario_stops_before_ray(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    output = tmp_path / "runs"
    code, out, err = _run_cli(
        capsys,
        "run",
        "integrity_transit_on",
        "--set",
        f'output="{output}"',
        "--set",
        "attack.params.num_bits=3",  # a bit_flip parameter given to the additive attack
    )
    assert (code, out) == (2, [])
    assert err == [
        "error: attack.params.num_bits: unknown key (value 3); remove it or fix the spelling"
    ]
    assert not ray.is_initialized()
    assert not output.exists()  # not even a run directory was created


# -- list -------------------------------------------------------------------------------------


def test_list_shows_every_registry_and_scenario(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run_cli(capsys, "list")
    assert (code, err) == (0, [])
    sections = _sections(out)
    assert list(sections) == [*REGISTRIES, "scenarios"]
    for kind, registry in REGISTRIES.items():
        listed = [
            line.split()[0].rstrip(":") for line in sections[kind] if not line.startswith("      ")
        ]
        assert listed == sorted(registry), kind
    assert [line.strip() for line in sections["scenarios"]] == packaged_scenarios()
    # A few names of each kind, spelled out, so an emptied registry cannot pass unnoticed.
    text = "\n".join(out)
    for name in (
        "  digits ",
        "  iid:",
        "  dirichlet:",
        "  mlp:",
        "  cnn:",
        "  fedavg ",
        "  krum ",
        "  trimmed_mean ",
        "  bucketing:",
        "  nnm:",
        "  integrity_watermark",
        "  quickstart",
    ):
        assert name in text


def test_list_attacks_shows_kind_and_threat_model(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run_cli(capsys, "list", "attacks")
    assert (code, err) == (0, [])
    assert list(_sections(out)) == ["attacks"]
    entries = {line.split()[0]: line for line in out[1:] if not line.startswith("      ")}
    assert set(entries) == set(ATTACKS)
    expected = {
        "additive": ("transit", "none"),
        "bit_flip": ("transit", "none"),
        "nonfinite": ("update", "none"),
        "label_flip": ("data", "none"),
        "alie": ("collusion", "honest_updates"),
        "min_max": ("collusion", "honest_updates"),
        "fang": ("collusion", "omniscient"),
        "optimal_ipm": ("collusion", "omniscient"),
    }
    for name, (kind, threat_model) in expected.items():
        assert entries[name].startswith(f"  {name} [kind: {kind}] [threat_model: {threat_model}]: ")
    # Parameters and their defaults follow their attack on the next line.
    assert out[out.index(entries["additive"]) + 1] == (
        "      params: direction='uplink', scale=0.1, layer=None"
    )


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
    code, out, _ = _run_cli(capsys, "verify", str(tmp_path))
    assert code == 0 and len(out) == 1
    assert out[0].startswith("ok: 3 rounds, head ")

    checkpoint = tmp_path / checkpoint_name(2)
    data = bytearray(checkpoint.read_bytes())
    data[len(data) // 2] ^= 0x01
    checkpoint.write_bytes(bytes(data))
    code, out, _ = _run_cli(capsys, "verify", str(tmp_path))
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
    code, out, _ = _run_cli(capsys, "verify", str(tmp_path))
    assert (code, out) == (1, ["FAILED at round 1: entry hash does not match its content"])


def test_watermark_verify_with_a_malformed_key_fails_in_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    _write_run(tmp_path, rounds=1)
    key = tmp_path / "key.json"
    key.write_text('{"seed": -1}', encoding="utf-8")
    code, out, err = _run_cli(
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
