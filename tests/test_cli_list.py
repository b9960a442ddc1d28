"""``fedshield list``: every registry and packaged scenario, with tags and parameters."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from attacks import ATTACKS
from common.data.datasets import DATASETS
from common.data.partitioners import PARTITIONERS
from common.learning.models import MODELS
from scenarios.loader import packaged_scenarios
from strategies import AGGREGATORS, PRE_AGGREGATORS, SERVER_OPTIMIZERS
from tests.cli_helpers import run_cli

REGISTRIES: dict[str, Mapping[str, object]] = {
    "datasets": DATASETS,
    "partitioners": PARTITIONERS,
    "models": MODELS,
    "aggregators": AGGREGATORS,
    "pre-aggregators": PRE_AGGREGATORS,
    "server-optimizers": SERVER_OPTIMIZERS,
    "attacks": ATTACKS,
}


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


# -- list -------------------------------------------------------------------------------------


def test_list_shows_every_registry_and_scenario(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "list")
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
        "  fedadam ",
        "  flame ",
        "  integrity_watermark",
        "  quickstart",
    ):
        assert name in text


def test_list_attacks_shows_kind_and_threat_model(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "list", "attacks")
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
