"""The Flower strategy's round, without Ray: real messages in, a RoundResult and new weights out."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict

from common import protocol as P
from scenarios.loader import load_scenario
from server.round import TrainingRecord
from server.strategy import FedshieldStrategy
from strategies import build_chain
from tests.server._round import GRID, client_reply, make_strategy, partition_of, play_round

BASE = [np.zeros((2, 2), np.float32), np.zeros(3, np.float32)]


def _strategy(*overrides: str) -> FedshieldStrategy:
    scenario = load_scenario("quickstart", list(overrides))
    chain = build_chain(scenario.defense.aggregator, scenario.defense.params)
    return make_strategy(scenario, chain, num_params=7)


def _filled(value: Callable[[int], float]) -> Callable[[int], list[np.ndarray]]:
    return lambda p: [np.full(a.shape, value(p), np.float32) for a in BASE]


def test_weighted_fedavg_of_the_deltas_is_added_to_the_global_model() -> None:
    new, result = play_round(
        _strategy(),
        1,
        BASE,
        _filled(lambda p: 1.0 if p == 0 else 4.0),
        replying=lambda p: p in (0, 1),
        num_examples=lambda p: 10 if p == 0 else 30,
    )
    assert result.skipped is None and result.accepted == (0, 1)
    np.testing.assert_allclose(new[0], np.full((2, 2), 3.25))  # (1*10 + 4*30) / 40
    np.testing.assert_allclose(new[1], np.full(3, 3.25))


def test_the_round_result_names_who_was_sampled_and_how_the_honest_trained() -> None:
    _, result = play_round(_strategy("clients_per_round=4"), 2, BASE, _filled(float))
    assert result.server_round == 2 and len(result.sampled) == 4
    assert result.accepted == result.sampled and result.num_replies == 4
    # What the privacy accountant needs, and never a weight.
    assert result.honest_replies == tuple(TrainingRecord(p, 5, 0.2) for p in result.sampled)
    assert result.train_loss == pytest.approx(0.1)


def test_too_few_updates_for_the_bound_skips_the_round_and_keeps_the_model() -> None:
    strategy = _strategy("defense.aggregator=krum", "defense.params.num_byzantine=2")
    new, result = play_round(strategy, 1, BASE, _filled(float), replying=lambda p: p < 6)
    assert result.skipped is not None  # krum f=2 needs 7
    assert "n=6" in result.skipped and "n >= 7" in result.skipped
    for kept, base in zip(new, BASE, strict=True):
        np.testing.assert_array_equal(kept, base)


def test_no_reply_skips_the_round() -> None:
    new, result = play_round(_strategy(), 1, BASE, _filled(float), replying=lambda p: False)
    n = len(result.sampled)
    assert result.skipped == f"no update was accepted (0 accepted; {n} failed, 0 rejected)"
    assert result.num_replies == 0 and result.num_failures == n
    assert set(result.failures.values()) == {"no reply within the round timeout (600s)"}
    assert np.all(new[0] == 0)


def test_krum_picks_the_honest_cluster_whatever_the_reply_order() -> None:
    strategy = _strategy("defense.aggregator=krum", "defense.params.num_byzantine=1")
    weights = _filled(lambda p: 100.0 if p == 6 else 1.0 + 0.01 * p)
    answers = []
    for order in (1, -1):
        sent = list(strategy.configure_train(1, ArrayRecord(BASE), ConfigRecord(), GRID))[:7]
        replies = [client_reply(m, weights(partition_of(m))) for m in sent][::order]
        arrays, _ = strategy.aggregate_train(1, replies)
        assert arrays is not None
        answers.append(arrays.to_numpy_ndarrays()[0])
    assert 1.0 <= float(answers[0][0, 0]) <= 1.06
    np.testing.assert_array_equal(answers[0], answers[1])


def test_sampling_is_seeded_by_round() -> None:
    strategy = _strategy("clients_per_round=4")
    assert strategy._sample(1) == strategy._sample(1)
    assert len(strategy._sample(1)) == 4
    assert any(strategy._sample(1) != strategy._sample(r) for r in range(2, 6))


# Median and trimmed mean are exact here; smoothed Weiszfeld approaches an optimum that sits on
# a data point only sublinearly, so after its 100 iterations it is still 0.06 away (of 1e6).
@pytest.mark.parametrize(
    ("aggregator", "tolerance"),
    [("median", 1e-6), ("trimmed_mean", 1e-6), ("geometric_median", 0.1)],
)
def test_robust_rules_ignore_one_huge_update(aggregator: str, tolerance: float) -> None:
    overrides = [f"defense.aggregator={aggregator}"]
    if aggregator == "trimmed_mean":
        overrides.append("defense.params.num_trimmed=1")
    weights = _filled(lambda p: 1e6 if p == 4 else 1.0)
    new, _ = play_round(_strategy(*overrides), 1, BASE, weights, replying=lambda p: p < 5)
    assert float(np.max(np.abs(new[0] - 1.0))) < tolerance


def _malformed(sent: Message, kind: str) -> Message:
    """Replies a buggy or hostile client could send; each breaks one rule of the protocol."""
    good = client_reply(sent, [np.ones(a.shape, np.float32) for a in BASE])
    content = good.content
    metrics = dict(content.metric_records[P.METRICS])
    if kind == "no_metrics":
        content = RecordDict({P.ARRAYS: content.array_records[P.ARRAYS]})
    elif kind == "float_count":
        content[P.METRICS] = MetricRecord({**metrics, P.NUM_EXAMPLES: 10.5})
    elif kind == "rate_above_one":
        content[P.METRICS] = MetricRecord({**metrics, P.SAMPLING_RATE: 5.0})
    elif kind == "no_steps":
        content[P.METRICS] = MetricRecord({k: v for k, v in metrics.items() if k != P.LOCAL_STEPS})
    elif kind == "text_signature":
        content[P.INTEGRITY] = ConfigRecord({P.SIGNATURE: "not bytes"})
    elif kind == "one_array_short":
        content[P.ARRAYS] = ArrayRecord([np.ones((2, 2), np.float32)])
    elif kind == "wrong_shape":
        content[P.ARRAYS] = ArrayRecord([np.ones((4,), np.float32), np.ones(3, np.float32)])
    elif kind == "refused":
        refusal = ConfigRecord({P.REFUSED: "unauthentic_broadcast"})
        metrics = {P.PARTITION_ID: partition_of(sent)}
        content = RecordDict({P.METRICS: MetricRecord(metrics), P.CONFIG: refusal})
    return Message(content=content, reply_to=sent)


def test_malformed_replies_are_recorded_rejections_and_the_round_goes_on() -> None:
    kinds = ["no_metrics", "float_count", "no_steps", "text_signature", "rate_above_one",
             "one_array_short", "wrong_shape", "refused"]  # fmt: skip
    strategy = _strategy()
    sent = list(strategy.configure_train(1, ArrayRecord(BASE), ConfigRecord(), GRID))
    replies = [_malformed(m, kinds[i]) for i, m in enumerate(sent[: len(kinds)])]
    threes = [np.full(a.shape, 3.0, np.float32) for a in BASE]
    replies += [client_reply(m, threes) for m in sent[len(kinds) :]]
    arrays, _ = strategy.aggregate_train(1, replies)
    result = strategy.sink.take(1)
    assert arrays is not None and result is not None
    assert result.rejected == {
        0: ("malformed: reply record 'metrics' is missing",),
        1: ("malformed: field 'num-examples': got 10.5; expected an integer",),
        2: ("malformed: field 'local-steps' is missing",),
        3: ("malformed: field 'signature': got str; expected bytes",),
        4: ("malformed: field 'sampling-rate': got 5.0; expected a value in [0.0, 1.0]",),
        5: ("shape_mismatch",),
        6: ("shape_mismatch",),
    }
    assert result.refused == {7: "unauthentic_broadcast"}
    assert result.accepted == (8, 9) and result.skipped is None
    np.testing.assert_allclose(arrays.to_numpy_ndarrays()[0], np.full((2, 2), 3.0))


def test_crfl_clips_the_new_global_model_to_rho_and_a_skipped_round_is_left_alone() -> None:
    # Every client sends all-4 weights: FedAvg gives a model of norm 4 sqrt(7) = 10.58 over both
    # arrays; CRFL (no noise) clips it to rho_1 = 2 + 0.1 = 2.1, a boosted update included.
    strategy = _strategy("crfl.enabled=true", "crfl.sigma=0.0")
    new, _ = play_round(strategy, 1, BASE, _filled(lambda p: 4.0))
    norm = np.sqrt(sum(float(np.sum(w.astype(np.float64) ** 2)) for w in new))
    assert norm == pytest.approx(2.1, rel=1e-6)
    np.testing.assert_allclose(new[1], np.full(3, 2.1 / np.sqrt(7)), rtol=1e-6)
    skipping = _strategy(
        "crfl.enabled=true", "defense.aggregator=krum", "defense.params.num_byzantine=2"
    )
    kept, result = play_round(skipping, 1, BASE, _filled(float), replying=lambda p: p < 6)
    assert result.skipped is not None
    np.testing.assert_array_equal(kept[0], BASE[0])  # no step, so no clipping or noise either
