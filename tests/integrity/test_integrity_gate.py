"""run_gate: every in-transit manipulation is rejected; malformed replies; quarantine; norms."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common.crypto.digest import digest_arrays
from common.crypto.signing import KeyPair, PublicKey
from common.integrity_config import IntegrityConfig
from common.protocol import TrainReply
from server.integrity.gate import GateResult, GateState, run_gate
from tests.integrity._builders import (
    F32,
    NUM_CLIENTS,
    bit_flip,
    global_model,
    honest_update,
    noise,
    read_only,
    sealed,
    swap_layers,
    with_delta_norms,
)

ROUND = 5
GLOBAL = global_model(5)
PREVIOUS_GLOBAL = global_model(4)
ON = IntegrityConfig(enabled=True)


def _gate(
    replies: Sequence[TrainReply],
    public_keys: dict[int, PublicKey],
    *,
    config: IntegrityConfig = ON,
    server_round: int = ROUND,
    state: GateState | None = None,
) -> GateResult:
    return run_gate(
        replies,
        config=config,
        server_round=server_round,
        global_arrays=GLOBAL,
        global_digest=digest_arrays(GLOBAL),
        public_keys=public_keys,
        state=state or GateState(),
    )


def _honest_round(
    client_keys: dict[int, KeyPair], rng: np.random.Generator, server_round: int = ROUND
) -> list[TrainReply]:
    return [
        sealed(key, pid, honest_update(GLOBAL, rng), server_round=server_round, base=GLOBAL)
        for pid, key in client_keys.items()
    ]


def _decisions(result: GateResult) -> dict[int, tuple[str, tuple[str, ...]]]:
    return {v.partition_id: (v.decision, v.reasons) for v in result.verdicts}


def _manipulate(
    kind: str,
    reply: TrainReply,
    key: KeyPair,
    other_key: KeyPair,
    rng: np.random.Generator,
) -> TrainReply:
    """One in-transit manipulation of ``reply`` by an attacker without ``key``'s private half.

    (``key`` is used only for the honest-client scenarios: replay and altered broadcast.)
    """
    if kind == "bit_flip":
        return replace(reply, arrays=bit_flip(reply.arrays, rng))
    if kind == "noise":
        return replace(reply, arrays=noise(reply.arrays, rng))
    if kind == "swap_layers":
        return replace(reply, arrays=swap_layers(reply.arrays))
    if kind == "tamper_and_redigest":
        arrays = noise(reply.arrays, rng)
        return replace(reply, arrays=arrays, update_digest=digest_arrays(arrays))
    if kind == "inflate_examples":
        return replace(reply, num_examples=reply.num_examples * 100)
    if kind == "relayed_by_another_node":  # node_id comes from the transport metadata
        return replace(reply, node_id=reply.node_id + 1)
    if kind == "forged_signature":
        return replace(reply, signature=rng.bytes(64))
    if kind == "other_client_signature":
        return sealed(other_key, reply.partition_id, reply.arrays, server_round=ROUND, base=GLOBAL)
    if kind == "replayed_old_update":  # the victim's genuine reply of the previous round
        old = honest_update(PREVIOUS_GLOBAL, rng)
        return sealed(key, reply.partition_id, old, server_round=ROUND - 1, base=PREVIOUS_GLOBAL)
    if kind == "altered_broadcast":  # the client trained, unknowingly, on a tampered global
        tampered = noise(GLOBAL, rng)
        return sealed(
            key, reply.partition_id, honest_update(tampered, rng), server_round=ROUND,
            base=tampered,
        )  # fmt: skip
    raise AssertionError(kind)


EXPECTED_REASONS = {
    "bit_flip": ("digest_mismatch",),
    "noise": ("digest_mismatch",),
    "swap_layers": ("digest_mismatch",),
    "tamper_and_redigest": ("bad_signature",),
    "inflate_examples": ("bad_signature",),
    "forged_signature": ("bad_signature",),
    "relayed_by_another_node": ("bad_signature",),
    "other_client_signature": ("bad_signature",),
    "replayed_old_update": ("stale_round", "stale_base"),
    "altered_broadcast": ("stale_base",),
}


def test_every_manipulation_is_rejected_in_200_seeded_trials(
    client_keys: dict[int, KeyPair], public_keys: dict[int, PublicKey]
) -> None:
    rng = np.random.default_rng(2024)
    kinds = sorted(EXPECTED_REASONS)
    honest = _honest_round(client_keys, rng)
    for trial in range(200):
        kind = kinds[trial % len(kinds)]
        victim = int(rng.integers(NUM_CLIENTS))
        other = client_keys[(victim + 1) % NUM_CLIENTS]
        replies = list(honest)
        replies[victim] = _manipulate(kind, honest[victim], client_keys[victim], other, rng)
        result = _gate(replies, public_keys)
        decisions = _decisions(result)
        assert decisions.pop(victim) == ("rejected", EXPECTED_REASONS[kind]), kind
        assert set(decisions.values()) == {("accepted", ())}
        assert [r.partition_id for r in result.accepted] == [
            pid for pid in range(NUM_CLIENTS) if pid != victim
        ]


def test_malformed_replies_are_rejected_and_the_others_accepted(
    client_keys: dict[int, KeyPair], public_keys: dict[int, PublicKey]
) -> None:
    rng = np.random.default_rng(1)
    nan, inf = honest_update(GLOBAL, rng), honest_update(GLOBAL, rng)
    nan[1] = read_only([np.where(np.arange(3) == 2, np.nan, nan[1]).astype(np.float32)])[0]
    inf[3] = read_only([np.full(4, -np.inf, dtype=np.float32)])[0]
    arrays: dict[int, list[F32]] = {
        1: nan,
        2: inf,
        3: honest_update(GLOBAL, rng)[:-1],
        4: read_only([a.astype(np.float64) for a in GLOBAL]),
        5: read_only([a.reshape(-1) for a in GLOBAL]),
    }
    replies = []
    for pid, key in client_keys.items():
        update = arrays.get(pid, honest_update(GLOBAL, rng))
        examples = 0 if pid == 6 else 10
        replies.append(sealed(key, pid, update, server_round=ROUND, base=GLOBAL,
                              num_examples=examples))  # fmt: skip
    result = _gate(replies, public_keys)
    assert _decisions(result) == {
        0: ("accepted", ()),
        1: ("rejected", ("non_finite",)),
        2: ("rejected", ("non_finite",)),
        3: ("rejected", ("shape_mismatch",)),
        4: ("rejected", ("dtype_mismatch",)),
        5: ("rejected", ("shape_mismatch",)),
        6: ("rejected", ("bad_num_examples",)),
        7: ("accepted", ()),
    }
    assert [r.partition_id for r in result.accepted] == [0, 7]
    assert set(result.accepted_digests) == {0, 7}
    assert result.accepted_digests[0] == replies[0].update_digest


def test_missing_unknown_and_duplicate_replies(
    client_keys: dict[int, KeyPair], public_keys: dict[int, PublicKey]
) -> None:
    rng = np.random.default_rng(2)
    replies = _honest_round(client_keys, rng)
    replies[0] = replace(replies[0], signature=None)
    stranger = KeyPair.from_seed(99, "client", 42)
    replies[1] = sealed(stranger, 42, honest_update(GLOBAL, rng), server_round=ROUND, base=GLOBAL)
    replies.append(replies[2])  # the same signed reply delivered twice
    decisions = _decisions(_gate(replies, public_keys))
    assert decisions[0] == ("rejected", ("missing_signature",))
    assert decisions[42] == ("rejected", ("unknown_client",))
    assert decisions[2] == ("rejected", ("duplicate_reply",))
    assert [v.decision for v in _gate(replies, public_keys).verdicts].count("accepted") == 5


def test_flag_policy_aggregates_but_records(
    client_keys: dict[int, KeyPair], public_keys: dict[int, PublicKey]
) -> None:
    rng = np.random.default_rng(3)
    replies = _honest_round(client_keys, rng)
    replies[4] = replace(replies[4], arrays=noise(replies[4].arrays, rng))
    result = _gate(replies, public_keys, config=IntegrityConfig(enabled=True, signature="flag"))
    assert _decisions(result)[4] == ("flagged", ("digest_mismatch",))
    assert len(result.accepted) == NUM_CLIENTS
    # The ledger gets the digest of what was actually aggregated, not the claimed one.
    assert result.accepted_digests[4] == digest_arrays(replies[4].arrays)
    assert result.accepted_digests[4] != replies[4].update_digest


def test_quarantine_lasts_exactly_the_configured_rounds(
    client_keys: dict[int, KeyPair], public_keys: dict[int, PublicKey]
) -> None:
    config = IntegrityConfig(enabled=True, signature="quarantine", quarantine_rounds=2)
    rng = np.random.default_rng(4)
    state = GateState()
    history = []
    for server_round in range(5, 10):
        replies = [
            sealed(key, pid, honest_update(GLOBAL, rng), server_round=server_round, base=GLOBAL)
            for pid, key in client_keys.items()
        ]
        if server_round == 5:
            replies[3] = replace(replies[3], signature=rng.bytes(64))
        result = _gate(replies, public_keys, config=config, server_round=server_round, state=state)
        state = result.state
        history.append((_decisions(result)[3], dict(state.quarantined_until)))
        assert len(result.accepted) == NUM_CLIENTS - (1 if server_round <= 7 else 0)
    assert history == [
        (("quarantined", ("bad_signature",)), {3: 7}),
        (("rejected", ("quarantined",)), {3: 7}),
        (("rejected", ("quarantined",)), {}),  # last round served: the entry is dropped
        (("accepted", ()), {}),
        (("accepted", ()), {}),
    ]


def test_gate_state_is_immutable() -> None:
    source = {1: 4, 12: 9}
    state = GateState(source)
    source[1] = 99
    assert state.is_quarantined(1, 4) and not state.is_quarantined(1, 5)
    with pytest.raises(TypeError):
        state.quarantined_until[2] = 3  # type: ignore[index]


def _with_delta_norms(client_keys: dict[int, KeyPair], norms: Sequence[float]) -> list[TrainReply]:
    return with_delta_norms(client_keys, norms, base=GLOBAL, server_round=ROUND)


def test_norm_cap_then_ratio_to_the_median_of_the_survivors(
    client_keys: dict[int, KeyPair], public_keys: dict[int, PublicKey]
) -> None:
    # Cap 10 drops the 20; the median of the 7 others is 4, so k = 1.6 drops 7 (> 6.4) only.
    replies = _with_delta_norms(client_keys, [1, 2, 3, 4, 5, 6, 7, 20])
    config = IntegrityConfig(enabled=True, max_norm=10.0, max_norm_ratio=1.6)
    result = _gate(replies, public_keys, config=config)
    decisions = _decisions(result)
    assert decisions[7] == ("rejected", ("norm_above_cap",))
    assert decisions[6] == ("rejected", ("norm_above_ratio",))
    assert {decisions[pid] for pid in range(6)} == {("accepted", ())}
    norms = [v.delta_norm for v in result.verdicts]
    assert norms == pytest.approx([1, 2, 3, 4, 5, 6, 7, 20], rel=1e-5)
    # Without the cap the 20 counts in the median, (4 + 5) / 2: the bound becomes 7.2.
    ratio_only = IntegrityConfig(enabled=True, max_norm_ratio=1.6)
    no_cap = _decisions(_gate(replies, public_keys, config=ratio_only))
    assert [pid for pid, (d, _) in no_cap.items() if d == "rejected"] == [7]


def test_cosine_outlier_is_flagged_not_dropped_by_default(
    client_keys: dict[int, KeyPair], public_keys: dict[int, PublicKey]
) -> None:
    rng = np.random.default_rng(5)
    direction = [rng.standard_normal(g.shape).astype(np.float32) for g in GLOBAL]
    replies = []
    for pid, key in client_keys.items():
        sign = -1.0 if pid == 2 else 1.0  # partition 2 pushes against everyone else
        arrays = read_only(
            [g + np.float32(0.1 * sign) * d + (0.01 * rng.standard_normal(g.shape)).astype(
                np.float32) for g, d in zip(GLOBAL, direction, strict=True)]
        )  # fmt: skip
        replies.append(sealed(key, pid, arrays, server_round=ROUND, base=GLOBAL))
    result = _gate(replies, public_keys, config=IntegrityConfig(enabled=True, cosine_min=0.0))
    decisions = _decisions(result)
    assert decisions.pop(2) == ("flagged", ("cosine_outlier",))
    assert set(decisions.values()) == {("accepted", ())}
    assert len(result.accepted) == NUM_CLIENTS


@settings(max_examples=25, deadline=None)
@given(order=st.permutations(range(NUM_CLIENTS)))
def test_verdicts_do_not_depend_on_reply_order(
    order: list[int], client_keys: dict[int, KeyPair], public_keys: dict[int, PublicKey]
) -> None:
    replies = _with_delta_norms(client_keys, [1, 2, 3, 4, 5, 6, 7, 20])
    config = IntegrityConfig(enabled=True, max_norm_ratio=1.5, cosine_min=-0.5)
    reference = _decisions(_gate(replies, public_keys, config=config))
    shuffled = _gate([replies[i] for i in order], public_keys, config=config)
    assert _decisions(shuffled) == reference
    assert [v.partition_id for v in shuffled.verdicts] == order
