"""Colluding attacks: ALIE (both knowledges) z table, IPM, Min-Max/Min-Sum, Mimic."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from attack_test_helpers import forge, median, read_only, view
from numpy.typing import NDArray

from attacks import CollusionAttack, ThreatModel, get_attack
from attacks._maths import squared_distances
from attacks.collusion import Alie
from attacks.min_max import MinMax, MinSum
from common.errors import ConfigError

SMALL = read_only(np.array([[1.0, 2.0], [3.0, 6.0]], dtype=np.float32))


def _forge(name: str, honest: NDArray[Any], num_malicious: int = 2, **params: Any) -> NDArray[Any]:
    return forge(name, view(honest, num_malicious), **params).updates


@pytest.mark.parametrize(
    ("n", "m", "formula", "z"),
    [
        (20, 8, "baruch", 1.036),
        (20, 8, "blades", 0.674),
        (50, 10, "baruch", 0.468),
        (50, 10, "blades", 0.253),
    ],
)
def test_alie_z_golden_table(n: int, m: int, formula: str, z: float) -> None:
    attack = get_attack("alie", z_formula=formula)
    assert isinstance(attack, Alie)
    assert attack.z_for(num_clients=n, num_malicious=m) == pytest.approx(z, abs=5e-4)


def test_alie_golden_vector_and_n_counts_malicious() -> None:
    # mean (2, 4), std ddof=0 (1, 2); z = 1.5 -> (0.5, 1.0), sent by both malicious clients.
    out = _forge("alie", SMALL, z=1.5)
    np.testing.assert_allclose(out, [[0.5, 1.0], [0.5, 1.0]])
    assert out.dtype == np.float32
    # Without z: n = h + m = 20 with m = 8 -> the baruch z 1.036.
    honest = read_only(np.tile(np.array([[0.0], [2.0]], dtype=np.float32), (6, 1)))  # mean 1, std 1
    forged = _forge("alie", honest, num_malicious=8)
    np.testing.assert_allclose(forged, 1.0 - 1.0364, atol=1e-4)


def test_alie_warns_when_z_not_positive() -> None:
    # n=10, m=1 under blades: s=5, p=(10-1-5)/9=0.444 -> z=-0.1397.
    honest = read_only(np.tile(np.array([[0.0], [2.0], [1.0]], dtype=np.float32), (3, 1)))
    forgery = forge("alie", view(honest, 1), z_formula="blades")
    assert forgery.diagnostics == {"z": pytest.approx(-0.1397, abs=1e-4)}
    assert forgery.warning is not None and "z = -0.1397 <= 0 (n=10, m=1)" in forgery.warning
    assert forge("alie", view(SMALL, 2), z=-0.5).warning is not None
    assert forge("alie", view(SMALL, 2), z=0.5).warning is None


def test_alie_own_data_estimates_from_the_colluders_updates_only() -> None:
    # Colluders' own deltas: mean (1, 2), std (1, 2); z = 1 -> (0, 0). The honest updates of
    # the round (far away) must not matter: the view cut for own_data does not even hold them.
    own = read_only(np.array([[0.0, 0.0], [2.0, 4.0]], dtype=np.float32))
    honest = read_only(np.full((5, 2), 100.0, dtype=np.float32))
    attack = get_attack("alie", z=1.0, knowledge="own_data")
    assert isinstance(attack, Alie) and attack.threat_model is ThreatModel.NONE
    cut = attack.view(
        own=own,
        num_clients=7,
        rng=np.random.default_rng(0),
        honest=honest,
        honest_num_examples=np.full(5, 5),
        aggregator=median,
    )
    assert cut.honest is None and cut.honest_num_examples is None and cut.aggregator is None
    forgery = attack.forge(cut)
    np.testing.assert_allclose(forgery.updates, [[0.0, 0.0], [0.0, 0.0]])
    assert forgery.updates.dtype == np.float32 and forgery.warning is None
    # The default knowledge reads the honest updates instead: mean 100, std 0.
    default = get_attack("alie", z=1.0)
    assert default.threat_model is ThreatModel.HONEST_UPDATES
    np.testing.assert_allclose(forge("alie", view(honest, 2, own=own), z=1.0).updates, 100.0)
    # z from the formula uses n = 7 clients, m = 2 colluders in both knowledges.
    baruch = forge("alie", view(None, 2, own=own, num_clients=7), knowledge="own_data")
    assert baruch.diagnostics["z"] == pytest.approx(attack_z(7, 2))


def attack_z(n: int, m: int) -> float:
    alie = get_attack("alie")
    assert isinstance(alie, Alie)
    return alie.z_for(num_clients=n, num_malicious=m)


def test_alie_own_data_refuses_the_honest_updates_and_warns_with_one_colluder() -> None:
    with pytest.raises(ValueError, match="threat model 'none': the honest updates must not"):
        forge("alie", view(SMALL, 1), knowledge="own_data")
    lone = read_only(np.array([[0.5, -0.5]], dtype=np.float32))
    forgery = forge("alie", view(None, 1, own=lone), knowledge="own_data", z=1.0)
    np.testing.assert_allclose(forgery.updates, lone)  # zero deviation: its own update
    assert forgery.warning is not None and "zero deviation" in forgery.warning


def test_alie_undefined_z_for_a_malicious_majority() -> None:
    attack = get_attack("alie")
    assert isinstance(attack, Alie)
    with pytest.raises(ConfigError, match=r"s=0 .*set attack\.params\.z"):
        attack.z_for(num_clients=4, num_malicious=3)


def test_ipm_golden() -> None:
    np.testing.assert_allclose(_forge("ipm", SMALL, epsilon=0.5), [[-1.0, -2.0], [-1.0, -2.0]])


LINE = read_only(np.array([[0.0, 0.0], [4.0, 0.0], [1.0, 0.0]], dtype=np.float32))


def test_min_max_and_min_sum_golden_gamma() -> None:
    # mean (5/3, 0), unit_vec p = (-1, 0).
    # Min-Max: max_i |mal - h_i| = 7/3 + g <= max_ij |h_i - h_j| = 4  -> g = 5/3.
    # Min-Sum: (5/3-g)^2 + (7/3+g)^2 + (2/3-g)^2 = 26/3 + 3 g^2 <= 25   -> g = 7/3.
    min_max, min_sum = get_attack("min_max"), get_attack("min_sum")
    assert isinstance(min_max, MinMax) and isinstance(min_sum, MinSum)
    assert min_max.forged_and_gamma(LINE)[1] == pytest.approx(5 / 3, abs=2e-5)
    assert min_sum.forged_and_gamma(LINE)[1] == pytest.approx(7 / 3, abs=2e-5)
    np.testing.assert_allclose(_forge("min_max", LINE), [[0.0, 0.0]] * 2, atol=2e-5)


@pytest.mark.parametrize("perturbation", ["unit_vec", "sign", "std"])
def test_min_max_constraint_holds_at_gamma_and_fails_at_twice(
    honest: NDArray[Any], perturbation: str
) -> None:
    attack = get_attack("min_max", perturbation=perturbation)
    assert isinstance(attack, MinMax)
    forged, gamma = attack.forged_and_gamma(honest)
    assert 0.0 < gamma < 10.0
    bound = float(np.sqrt(squared_distances(honest, honest).max()))
    mean = honest.astype(np.float64).mean(axis=0)

    def worst(g: float) -> float:
        mal = mean + g * (forged - mean) / gamma
        return float(np.sqrt(squared_distances(mal[None, :], honest).max()))

    assert worst(gamma) <= bound
    assert worst(2 * gamma) > bound


@pytest.mark.parametrize("perturbation", ["unit_vec", "sign", "std"])
def test_min_sum_constraint_holds_at_gamma_and_fails_at_twice(
    honest: NDArray[Any], perturbation: str
) -> None:
    attack = get_attack("min_sum", perturbation=perturbation)
    assert isinstance(attack, MinSum)
    forged, gamma = attack.forged_and_gamma(honest)
    assert 0.0 < gamma < 10.0
    bound = float(squared_distances(honest, honest).sum(axis=1).max())
    mean = honest.astype(np.float64).mean(axis=0)

    def total(g: float) -> float:
        mal = mean + g * (forged - mean) / gamma
        return float(squared_distances(mal[None, :], honest).sum())

    assert total(gamma) <= bound
    assert total(2 * gamma) > bound


def test_min_max_search_range_ends() -> None:
    # Identical honest updates: only gamma = 0 is feasible -> the search returns 0.
    same = read_only(np.ones((3, 4), dtype=np.float32))
    attack = get_attack("min_max", gamma_init=1.0)
    assert isinstance(attack, MinMax)
    assert attack.forged_and_gamma(same)[1] == 0.0
    # gamma* = 5/3 beyond the probes' reach 2 * gamma_init = 0.2: the search stops just below it.
    capped = get_attack("min_max", gamma_init=0.1)
    assert isinstance(capped, MinMax)
    gamma = capped.forged_and_gamma(LINE)[1]
    assert 0.2 - 2e-5 < gamma < 0.2


def test_mimic_max_variance_and_fixed() -> None:
    honest = read_only(
        np.array([[0.0, 0.1], [1.0, 0.0], [-5.0, 0.2], [0.5, 0.0]], dtype=np.float32)
    )
    np.testing.assert_array_equal(
        _forge("mimic", honest, num_malicious=3), np.tile(honest[2], (3, 1))
    )
    np.testing.assert_array_equal(
        _forge("mimic", honest, choice="fixed", index=1), np.tile(honest[1], (2, 1))
    )
    with pytest.raises(ConfigError, match=r"attack\.params\.index: got 4; must be < .* \(4\)"):
        _forge("mimic", honest, choice="fixed", index=4)


@pytest.mark.parametrize("name", ["alie", "ipm", "min_max", "min_sum", "mimic"])
def test_honest_update_attacks_refuse_the_aggregator(name: str) -> None:
    params: dict[str, Any] = {"z": 1.0} if name == "alie" else {}
    attack = get_attack(name, **params)
    assert isinstance(attack, CollusionAttack)
    with pytest.raises(ValueError, match="must not be passed"):
        attack.forge(view(SMALL, 1, aggregator=median))
    # attack.view is where the threat model cuts the round: the aggregator is dropped.
    cut = attack.view(
        own=SMALL[:1],
        num_clients=3,
        rng=np.random.default_rng(0),
        honest=SMALL,
        honest_num_examples=np.array([5, 5]),
        aggregator=median,
    )
    assert cut.aggregator is None and cut.honest is SMALL
    assert attack.forge(cut).updates.shape == (1, 2)


def test_min_max_reports_gamma_and_warns_when_it_is_zero() -> None:
    forgery = forge("min_max", view(LINE, 2))
    assert forgery.diagnostics["gamma"] == pytest.approx(5 / 3, abs=2e-5)
    assert forgery.warning is None
    same = read_only(np.ones((3, 4), dtype=np.float32))
    flat = forge("min_sum", view(same, 2))
    assert flat.diagnostics == {"gamma": 0.0}
    assert flat.warning is not None and "the colluders send the honest mean" in flat.warning
