"""The round's time split: clients' own train times travel in the reply, the server times its
steps, and both land in ``metrics.jsonl`` and in TensorBoard event files."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pytest
from flwr.app import ArrayRecord, ConfigRecord, Message
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.util.tensor_util import make_ndarray

from common import protocol as P
from common.results import read_jsonl
from scenarios.loader import load_scenario
from server.round import RoundResult
from server.run_log import RunLog
from server.strategy import FedshieldStrategy
from server.tensorboard_log import board_scalars
from server.timing import SERVER_STEPS, Stopwatch, client_train_split
from strategies import build_chain
from tests.server._round import GRID, make_strategy, partition_of

BASE = [np.zeros(4, np.float32)]
SCENARIO = load_scenario("quickstart", ["clients_per_round=3"])


def _reply(sent: Message, train_seconds: float | None) -> Message:
    config = sent.content.config_records[P.CONFIG]
    content = P.encode_train_reply(
        [np.ones(4, np.float32)],
        partition_id=partition_of(sent),
        server_round=int(config[P.SERVER_ROUND]),  # type: ignore[arg-type]
        num_examples=10,
        train_seconds=train_seconds,
    )
    return Message(content=content, reply_to=sent)


def _round(strategy: FedshieldStrategy, seconds: dict[int, float | None]) -> RoundResult:
    sent = strategy.configure_train(1, ArrayRecord(BASE), ConfigRecord(), GRID)
    strategy.aggregate_train(1, [_reply(m, seconds[partition_of(m)]) for m in sent])
    result = strategy.sink.take(1)
    assert result is not None
    return result


def test_the_slowest_and_the_mean_client_come_from_the_replies_own_times() -> None:
    strategy = make_strategy(
        SCENARIO, build_chain("fedavg", {}), num_params=4, malicious=frozenset()
    )
    sampled = strategy._sample(1)
    times = dict(zip(sampled, [0.5, 2.0, None], strict=True))  # one client reports nothing
    result = _round(strategy, times)
    assert result.timing["train_max"] == 2.0
    assert result.timing["train_mean"] == pytest.approx(1.25)  # over the two that reported
    assert set(SERVER_STEPS) <= set(result.timing)
    assert all(result.timing[step] >= 0.0 for step in SERVER_STEPS)


def test_a_reply_with_a_negative_train_time_is_a_protocol_error() -> None:
    strategy = make_strategy(SCENARIO, build_chain("fedavg", {}), num_params=4)
    sent = strategy.configure_train(1, ArrayRecord(BASE), ConfigRecord(), GRID)
    with pytest.raises(P.ProtocolError, match="train-seconds"):
        P.decode_train_reply(_reply(sent[0], -1.0))
    assert math.isnan(P.decode_train_reply(_reply(sent[0], None)).train_seconds)  # type: ignore[union-attr]


def test_stopwatch_accumulates_a_step_timed_twice_and_lists_every_server_step() -> None:
    clock = Stopwatch()
    with clock.step("integrity"):
        pass
    first = clock.seconds["integrity"]
    with clock.step("integrity"):
        sum(range(10_000))
    assert clock.seconds["integrity"] > first
    assert clock.seconds["attack"] == clock.seconds["aggregate"] == 0.0


def test_client_split_is_empty_when_no_client_reported() -> None:
    assert client_train_split([]) == {}


RESULT = RoundResult(
    server_round=1,
    started=0.0,
    sampled=(0, 1),
    num_replies=2,
    rejected={1: ("norm",)},
    accepted=(0,),
    train_loss=0.5,
    timing={
        "train_max": 0.3,
        "train_mean": 0.2,
        "attack": 0.0,
        "integrity": 0.01,
        "aggregate": 0.02,
    },
)


def _logged_run(tmp_path: Path) -> list[dict[str, object]]:
    log = RunLog(tmp_path, SCENARIO, frozenset({1}), stream=io.StringIO())
    log.record(0, {"accuracy": 0.1, "loss": 2.3}, None, {}, evaluate_seconds=0.04)
    log.record(
        1,
        {"accuracy": 0.6, "loss": math.nan, "attack_success_rate": 0.25},
        RESULT,
        {"epsilon_max": 1.5},
        evaluate_seconds=0.05,
    )
    log.finish({})
    return read_jsonl(tmp_path / "metrics.jsonl")


def test_metrics_jsonl_holds_the_time_split_of_each_round(tmp_path: Path) -> None:
    rows = _logged_run(tmp_path)
    assert rows[0]["time"] == {"evaluate": 0.04}
    assert rows[1]["time"] == {**RESULT.timing, "evaluate": 0.05}


def test_tensorboard_events_hold_one_scalar_per_metric_per_round(tmp_path: Path) -> None:
    _logged_run(tmp_path)
    events = list(tmp_path.glob("events.out.tfevents.*"))
    assert len(events) == 1
    board = EventAccumulator(str(tmp_path), size_guidance={"tensors": 0})
    board.Reload()

    def series(tag: str) -> list[tuple[int, float]]:
        return [
            (e.step, pytest.approx(float(make_ndarray(e.tensor_proto)))) for e in board.Tensors(tag)
        ]

    assert series("eval/accuracy") == [(0, 0.1), (1, 0.6)]
    assert series("eval/loss") == [(0, 2.3)]  # the NaN of round 1 is a gap, not a spike
    assert series("attack/success_rate") == [(1, 0.25)]
    assert series("privacy/epsilon") == [(1, 1.5)]
    assert series("clients/rejected") == [(1, 1.0)]
    assert series("time/aggregate") == [(1, 0.02)]
    assert series("time/evaluate") == [(0, 0.04), (1, 0.05)]


def test_board_scalars_skip_booleans_strings_and_missing_keys() -> None:
    row = {"round": 3, "accuracy": 0.5, "num_rejected": True, "loss": "x", "time": {"gate": 1}}
    assert board_scalars(row) == {"eval/accuracy": 0.5, "time/gate": 1.0}
