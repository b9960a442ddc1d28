"""Registry contract: every attack is registered with its tags, validates its parameters and
never writes to its inputs (every test input here is read-only)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from attack_test_helpers import median, read_only, view
from numpy.typing import NDArray

from attacks import (
    ATTACKS,
    CollusionAttack,
    DataAttack,
    Kind,
    NoAttack,
    ThreatModel,
    TransitAttack,
    UpdateAttack,
    get_attack,
)
from common.errors import ConfigError

EXPECTED = {
    "none": ("none", "none"),
    "label_flip": ("data", "none"),
    "backdoor": ("data", "none"),
    "pixel": ("data", "none"),
    "blended": ("data", "none"),
    "dba": ("data", "none"),
    "centralized_trigger": ("data", "none"),
    "image_trigger": ("data", "none"),
    "edge_case": ("data", "none"),
    "neurotoxin": ("data", "none"),
    "chameleon": ("data", "none"),
    "norm_projection": ("update", "none"),
    "sign_flip": ("update", "none"),
    "gaussian": ("update", "none"),
    "scaling": ("update", "none"),
    "zero": ("update", "none"),
    "nonfinite": ("update", "none"),
    "inflate_examples": ("update", "none"),
    "alie": ("collusion", "honest_updates"),
    "ipm": ("collusion", "honest_updates"),
    "min_max": ("collusion", "honest_updates"),
    "min_sum": ("collusion", "honest_updates"),
    "mimic": ("collusion", "honest_updates"),
    "fang": ("collusion", "omniscient"),
    "optimal_alie": ("collusion", "omniscient"),
    "optimal_ipm": ("collusion", "omniscient"),
    "bit_flip": ("transit", "none"),
    "additive": ("transit", "none"),
    "swap_layer": ("transit", "none"),
    "replay": ("transit", "none"),
    "alter_min": ("training", "none"),
    "a3fl": ("adaptive", "none"),
    "iba": ("adaptive", "none"),
    "threedfed": ("training", "none"),
}
# Parameters an attack needs to be built at all (all others have defaults).
REQUIRED: dict[str, dict[str, Any]] = {"inflate_examples": {"factor": 3.0}}


def _build(name: str) -> Any:
    return get_attack(name, **REQUIRED.get(name, {}))


def test_catalogue_and_tags() -> None:
    assert set(ATTACKS) == set(EXPECTED)
    for name, (kind, threat) in EXPECTED.items():
        entry = ATTACKS[name]
        assert dict(entry.tags) == {"kind": kind, "threat_model": threat}
        attack = _build(name)
        assert attack.kind is Kind(kind) and attack.threat_model is ThreatModel(threat)
        assert entry.summary, name


def test_none_attack() -> None:
    assert isinstance(get_attack("none"), NoAttack)


def test_unknown_attack_lists_valid_names() -> None:
    with pytest.raises(
        ConfigError, match=r"unknown attack 'alei'; valid: a3fl, additive, alie, alter_min"
    ):
        get_attack("alei")


def test_unknown_param_is_one_line_error() -> None:
    with pytest.raises(ConfigError) as info:
        get_attack("ipm", epsilom=0.5, where="scenario.attack.params")
    assert str(info.value) == (
        "scenario.attack.params.epsilom: unknown key (value 0.5); remove it or fix the spelling"
    )
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("name", "params", "field"),
    [
        ("label_flip", {"ratio": 1.5}, "ratio"),
        ("label_flip", {"mode": "random"}, "mode"),
        ("backdoor", {"value": 2.0}, "value"),
        ("backdoor", {"trigger_size": 0}, "trigger_size"),
        ("sign_flip", {"scale": -1.0}, "scale"),
        ("alie", {"z_formula": "byzfl"}, "z_formula"),
        ("ipm", {"epsilon": 0.0}, "epsilon"),
        ("min_max", {"gamma_init": 0.0}, "gamma_init"),
        ("min_sum", {"perturbation": "random"}, "perturbation"),
        ("fang", {"b": 1.0}, "b"),
        ("fang", {"variant": "median"}, "variant"),
        ("optimal_alie", {"ratio": 0.5}, "ratio"),
        ("optimal_ipm", {"evals": 0}, "evals"),
        ("additive", {"scale": 0.0}, "scale"),
        ("bit_flip", {"num_bits": 0}, "num_bits"),
        ("neurotoxin", {"keep_ratio": 0.0}, "keep_ratio"),
        ("neurotoxin", {"pgd_radius": -1.0}, "pgd_radius"),
        ("chameleon", {"contrastive_epochs": 0}, "contrastive_epochs"),
        ("chameleon", {"temperature": 0.0}, "temperature"),
        ("a3fl", {"trigger_lr": 0.0}, "trigger_lr"),
        ("a3fl", {"trigger_epochs": 0}, "trigger_epochs"),
        ("a3fl", {"adv_momentum": 1.0}, "adv_momentum"),
        ("a3fl", {"value": 1.5}, "value"),
        ("iba", {"attack_alpha": 1.5}, "attack_alpha"),
        ("iba", {"atk_eps": 0.0}, "atk_eps"),
        ("iba", {"eps_decay": 1.0}, "eps_decay"),
        ("iba", {"pgd_radius": 0.0}, "pgd_radius"),
    ],
)
def test_bounds_name_the_field(name: str, params: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError, match=rf"^attack\.params\.{field}: got "):
        get_attack(name, **params)


def _images() -> tuple[NDArray[Any], NDArray[Any]]:
    rng = np.random.default_rng(0)
    x = read_only(rng.uniform(0, 0.5, size=(20, 8, 8, 1)).astype(np.float32))
    y = read_only((np.arange(20) % 10).astype(np.int64))
    return x, y


@pytest.mark.parametrize("name", [n for n, (k, _) in EXPECTED.items() if k in ("data", "training")])
def test_data_attacks_leave_inputs_alone(name: str) -> None:
    x, y = _images()
    x_before, y_before = x.copy(), y.copy()
    attack = _build(name)
    assert isinstance(attack, DataAttack)
    out = attack.poison(x, y, num_classes=10, rng=np.random.default_rng(0))
    assert out.x.shape == x.shape and out.y.shape == y.shape and out.poisoned.shape == y.shape
    assert out.x.dtype == np.float32 and out.y.dtype == np.int64
    attack.success_set(x, y)
    np.testing.assert_array_equal(x, x_before)
    np.testing.assert_array_equal(y, y_before)


@pytest.mark.parametrize("name", [n for n, (k, _) in EXPECTED.items() if k == "update"])
def test_update_attacks_leave_inputs_alone(name: str) -> None:
    delta = read_only(np.linspace(-1, 1, 9, dtype=np.float32))
    attack = _build(name)
    assert isinstance(attack, UpdateAttack)
    out, reported = attack.poison_update(delta, 5, rng=np.random.default_rng(0))
    assert out.shape == delta.shape and out.dtype == np.float32 and out is not delta
    assert isinstance(reported, int)
    np.testing.assert_array_equal(delta, np.linspace(-1, 1, 9, dtype=np.float32))


@pytest.mark.parametrize("name", [n for n, (k, _) in EXPECTED.items() if k == "collusion"])
def test_collusion_attacks_shape_dtype_inputs(name: str, honest: NDArray[Any]) -> None:
    before = honest.copy()
    attack = _build(name)
    assert isinstance(attack, CollusionAttack)
    omniscient = attack.threat_model is ThreatModel.OMNISCIENT
    forgery = attack.forge(view(honest, 3, aggregator=median if omniscient else None))
    forged = forgery.updates
    assert forged.shape == (3, honest.shape[1]) and forged.dtype == np.float32
    assert np.isfinite(forged).all()
    assert all(isinstance(v, float) for v in forgery.diagnostics.values()) and forgery.diagnostics
    np.testing.assert_array_equal(honest, before)


@pytest.mark.parametrize("name", [n for n, (k, _) in EXPECTED.items() if k == "transit"])
def test_transit_attacks_change_bytes_and_leave_inputs_alone(name: str) -> None:
    rng = np.random.default_rng(0)
    message = [read_only(rng.normal(size=s).astype(np.float32)) for s in [(2, 3), (3,), (2, 3)]]
    recorded = [read_only(np.zeros((2, 3), np.float32))]
    before = [a.copy() for a in message]
    attack = _build(name)
    assert isinstance(attack, TransitAttack)
    out = attack.tamper(message, rng=np.random.default_rng(1), recorded=recorded)
    sent = b"".join(a.tobytes() for a in message)
    assert b"".join(a.tobytes() for a in out) != sent
    for a, b in zip(message, before, strict=True):
        np.testing.assert_array_equal(a, b)
