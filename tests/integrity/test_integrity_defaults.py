"""The default gate against the attacker, on deltas of real honest quickstart rounds.

Who attacks: a client with a valid key that signs whatever it sends (a signature proves who sent
an update, not that it is honest). It knows its own honest update; the ALIE colluders also know
every honest update of the round (Baruch et al. 2019). The honest rounds are replayed
in-process (``_honest_rounds.py``): 10 IID clients, FedAvg, seeds 42 and 7, 8 rounds each.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pytest
from numpy.typing import NDArray

from attacks._maths import alie_z
from attacks.collusion import alie_vector
from common.crypto.digest import digest_arrays
from common.crypto.signing import KeyPair
from common.integrity_config import IntegrityConfig
from server.integrity.gate import GateResult, GateState, run_gate
from tests.integrity._builders import sealed
from tests.integrity._honest_rounds import HonestRound, quickstart_rounds

F32 = NDArray[np.float32]
DEFAULT = IntegrityConfig(enabled=True)
KEYS = {pid: KeyPair.from_seed(7, "client", pid) for pid in range(10)}


@pytest.fixture(scope="module")
def recorded() -> list[HonestRound]:
    return quickstart_rounds(42, 8) + quickstart_rounds(7, 8)


def _delta(arrays: Sequence[F32], base: Sequence[F32]) -> NDArray[np.float64]:
    return np.concatenate([(a - b).ravel() for a, b in zip(arrays, base, strict=True)]).astype(
        np.float64
    )


def _model(delta: NDArray[np.float64], base: Sequence[F32]) -> list[F32]:
    sizes = np.cumsum([b.size for b in base])[:-1]
    parts = np.split(delta, sizes)
    return [(b + p.reshape(b.shape)).astype(np.float32) for b, p in zip(base, parts, strict=True)]


def _gate(
    rnd: HonestRound,
    updates: Sequence[Sequence[F32]],
    *,
    config: IntegrityConfig = DEFAULT,
    claims: Sequence[int] | None = None,
) -> GateResult:
    base = digest_arrays(rnd.global_arrays)
    replies = [
        sealed(KEYS[pid], pid, arrays, server_round=1, base=rnd.global_arrays,
               num_examples=(claims or rnd.shard_sizes)[pid])
        for pid, arrays in enumerate(updates)
    ]  # fmt: skip
    return run_gate(
        replies,
        config=config,
        server_round=1,
        global_arrays=rnd.global_arrays,
        global_digest=base,
        public_keys={pid: key.public_key for pid, key in KEYS.items()},
        state=GateState(),
        shard_sizes=dict(enumerate(rnd.shard_sizes)),
    )


def _ratios(result: GateResult) -> list[float]:
    norms = [v.delta_norm for v in result.verdicts]
    assert all(n is not None for n in norms)
    median = float(np.median(np.asarray(norms, dtype=np.float64)))
    return [float(n) / median for n in norms if n is not None]


def test_default_gate_has_a_norm_ratio_cap_of_3_and_checks_claims() -> None:
    assert DEFAULT.max_norm_ratio == 3.0 and DEFAULT.norm == "reject"
    assert DEFAULT.num_examples == "reject"


def test_no_honest_reply_is_rejected_in_16_recorded_rounds(recorded: list[HonestRound]) -> None:
    worst = 0.0
    for rnd in recorded:
        result = _gate(rnd, rnd.client_arrays)
        assert [v.decision for v in result.verdicts] == ["accepted"] * 10
        worst = max(worst, *_ratios(result))
    # Measured honest spread: at most 1.27 x the round's median, far below the cap of 3.
    assert 1.05 < worst < 1.35


@pytest.mark.parametrize("scale", [10.0, 1e18])
def test_a_scaled_update_is_rejected_by_the_default_gate(
    recorded: list[HonestRound], scale: float
) -> None:
    for rnd in recorded:
        boosted = _model(scale * _delta(rnd.client_arrays[0], rnd.global_arrays), rnd.global_arrays)
        assert all(np.isfinite(a).all() for a in boosted)  # finite: the NaN/Inf check misses it
        result = _gate(rnd, [boosted, *rnd.client_arrays[1:]])
        first, *others = result.verdicts
        assert (first.decision, first.reasons) == ("rejected", ("norm_above_ratio",))
        assert all(v.decision == "accepted" for v in others)
        assert first.delta_norm is not None and not math.isnan(first.delta_norm)


def test_an_inflated_num_examples_claim_is_rejected(recorded: list[HonestRound]) -> None:
    rnd = recorded[0]
    sizes = list(rnd.shard_sizes)
    inflated = _gate(rnd, rnd.client_arrays, claims=[100 * sizes[0], *sizes[1:]])
    first, *others = inflated.verdicts
    assert (first.decision, first.reasons) == ("rejected", ("num_examples_above_shard",))
    assert all(v.decision == "accepted" for v in others)
    # One more than the handshake size is already refused; fewer only lowers one's own weight.
    assert _gate(rnd, rnd.client_arrays, claims=[sizes[0] + 1, *sizes[1:]]).verdicts[0].reasons
    assert not _gate(rnd, rnd.client_arrays, claims=[1, *sizes[1:]]).verdicts[0].reasons


def _adaptive(rnd: HonestRound) -> dict[str, list[list[F32]]]:
    """Each adaptive attack's full round of updates (attackers first)."""
    g, honest = rnd.global_arrays, rnd.client_arrays
    own = _delta(honest[0], g)
    colluders = np.stack([_delta(u, g) for u in honest[3:]])
    alie = _model(alie_vector(colluders, alie_z(10, 3, "baruch")), g)
    return {
        "scale_x2.5": [_model(2.5 * own, g), *honest[1:]],
        "sign_flip_x2.5": [_model(-2.5 * own, g), *honest[1:]],
        "alie_3_of_10": [alie, alie, alie, *honest[3:]],
    }


def test_what_an_adaptive_attacker_still_passes(recorded: list[HonestRound]) -> None:
    """x2.5 boosting and ALIE pass the default cap of 3 and a rejecting cosine rule (>= 0)."""
    cosine_rule = DEFAULT.model_copy(update={"cosine_min": 0.0, "cosine": "reject"})
    ratio: dict[str, list[float]] = {"scale_x2.5": [], "sign_flip_x2.5": [], "alie_3_of_10": []}
    for rnd in recorded:
        for name, updates in _adaptive(rnd).items():
            by_default = _gate(rnd, updates)
            assert all(v.decision == "accepted" for v in by_default.verdicts), name
            ratio[name].append(_ratios(by_default)[0])
            caught = _gate(rnd, updates, config=cosine_rule).verdicts[0].decision == "rejected"
            assert caught == (name == "sign_flip_x2.5"), name
    assert min(ratio["scale_x2.5"]) > 2.2 and max(ratio["scale_x2.5"]) < 2.8
    assert max(ratio["alie_3_of_10"]) < 1.0  # ALIE sits closer to the median than honest ones
