"""The ``fedshield`` command line, in process and without Ray: ``validate`` and ``run``'s checks.

User errors must end in exit code 2 and exactly one ``error: FIELD: ...`` line on stderr, before
any simulation starts (``tests/scenarios/test_bad_inputs.py`` covers every case of issue 15).
``list`` is in ``test_cli_list.py``, ``verify`` and ``watermark verify`` in
``test_cli_verify.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import ray

from tests.cli_helpers import run_cli

# A complete scenario in the smallest form the schema accepts; each bad case breaks one field.
GOOD_TOML = 'name = "t"\nseed = 3\nrounds = 2\n\n[train]\nbatch_size = 16\n'


# -- validate ---------------------------------------------------------------------------------


def test_validate_packaged_quickstart_prints_one_ok_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run_cli(capsys, "validate", "quickstart")
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
    code, out, err = run_cli(capsys, "validate", name)
    assert (code, err) == (0, [])
    assert len(out) == 1
    assert out[0].startswith(f"ok: {name} (seed 42, 10 rounds, 10 clients on digits, ")
    assert out[0].endswith(f"aggregator fedavg, attack {attack})")


def test_validate_a_good_file_with_overrides(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "good.toml"
    path.write_text(GOOD_TOML, encoding="utf-8")
    code, out, err = run_cli(
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
    code, out, err = run_cli(capsys, "validate", str(path))
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
        ("model.name=resnet", "error: model.name: unknown model 'resnet'; valid: cnn, lenet5, mlp"),
        ("nokey", "error: --set: got 'nokey'; expected dotted.key=value"),
    ],
)
def test_validate_a_bad_override_fails_in_one_line(
    capsys: pytest.CaptureFixture[str], override: str, expected: str
) -> None:
    code, out, err = run_cli(capsys, "validate", "quickstart", "--set", override)
    assert (code, out) == (2, [])
    assert len(err) == 1
    assert err[0].startswith(expected)


def test_unknown_scenario_lists_the_packaged_ones(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "validate", "no_such_scenario")
    assert (code, out) == (2, [])
    assert len(err) == 1
    assert err[0].startswith("error: scenario: no file 'no_such_scenario' and no packaged scenario")
    assert "integrity_transit_on" in err[0] and "quickstart" in err[0]


# -- run --------------------------------------------------------------------------------------


def test_run_with_a_bad_scenario_stops_before_ray(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    output = tmp_path / "runs"
    code, out, err = run_cli(
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
