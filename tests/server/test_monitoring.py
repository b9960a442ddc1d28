"""Per-client monitoring: golden figures, the strategy's rounds in clients.jsonl, the figure."""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np

from common.results import read_jsonl
from scenarios.loader import load_scenario
from server.client_stats import client_statistics
from server.monitoring import ClientLog, client_rows
from server.round import RoundResult
from server.run_log import RunLog
from strategies import build_chain
from tests.server._round import make_strategy, play_round

BASE = [np.zeros((2, 2), np.float32), np.zeros(3, np.float32)]
POISONER = 6


def test_norm_cosine_distance_and_selection_by_hand() -> None:
    deltas = np.array([[3.0, 4.0], [0.0, 1.0], [-3.0, -4.0], [0.0, 0.0]], np.float32)
    got = client_statistics([5, 1, 2, 7], deltas, np.array([3.0, 4.0], np.float32))
    assert [c.partition_id for c in got] == [5, 1, 2, 7]
    assert [c.update_norm for c in got] == [5.0, 1.0, 5.0, 0.0]
    assert [c.cosine_to_aggregate for c in got[:3]] == [1.0, 0.8, -1.0]
    assert math.isnan(got[3].cosine_to_aggregate)  # a zero update has no direction
    assert got[1].distance_to_aggregate == math.sqrt(18.0)
    assert [c.selected for c in got] == [True, False, False, False]
    skipped = client_statistics([5], deltas[:1], None)
    assert skipped[0].update_norm == 5.0 and math.isnan(skipped[0].cosine_to_aggregate)


def _clients(noise: np.ndarray) -> Callable[[int], list[np.ndarray]]:
    """Honest clients send about 1 everywhere; the poisoner sends -50 (a scaled sign flip)."""

    def weights(p: int) -> list[np.ndarray]:
        value = -50.0 if p == POISONER else 1.0 + noise[p]
        return [np.full(a.shape, value, np.float32) for a in BASE]

    return weights


def test_a_persistent_poisoner_stands_out_round_after_round_under_krum(tmp_path: Path) -> None:
    scenario = load_scenario(
        "quickstart",
        ["clients_per_round=7", "defense.aggregator=krum", "defense.params.num_byzantine=1"],
    )
    strategy = make_strategy(scenario, build_chain("krum", {"num_byzantine": 1}), num_params=7)
    log = ClientLog(tmp_path, malicious=frozenset({POISONER}))
    rng = np.random.default_rng(0)
    for server_round in range(1, 4):
        sampled = strategy._sample(server_round)
        poisoned = POISONER in sampled
        weights = _clients(rng.normal(0.0, 0.01, size=10))
        _, result = play_round(strategy, server_round, BASE, weights)
        log.record(server_round, result)
        rows = [r for r in read_jsonl(log.path) if r["round"] == server_round]
        assert [r["partition"] for r in rows] == sorted(sampled)
        honest = [r for r in rows if not r["malicious"]]
        assert sum(r["selected"] for r in rows) == 1  # Krum picked exactly one update...
        assert all(r["cosine_to_aggregate"] > 0.99 for r in honest)  # ...an honest one
        if poisoned:
            bad = next(r for r in rows if r["malicious"])
            assert bad["update_norm"] > 10 * max(r["update_norm"] for r in honest)
            assert bad["cosine_to_aggregate"] < -0.99 and not bad["selected"]
    assert any(r["malicious"] for r in read_jsonl(log.path))
    log.plot("krum")
    assert log.figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_every_sampled_client_gets_a_line_with_its_fate() -> None:
    result = RoundResult(
        server_round=4,
        started=0.0,
        sampled=(0, 1, 2, 3),
        failures={2: "boom"},
        refused={3: "bad signature"},
        rejected={1: ("norm",)},
        accepted=(0,),
        clients=client_statistics([0, 1], np.eye(2, dtype=np.float32), None),
    )
    rows = client_rows(4, result, malicious=frozenset({1}))
    fates = [(r["partition"], r["status"], r["reasons"], r["malicious"]) for r in rows]
    assert fates == [
        (0, "accepted", [], False),
        (1, "rejected", ["norm"], True),
        (2, "failed", ["boom"], False),
        (3, "refused", ["bad signature"], False),
    ]
    assert rows[1]["update_norm"] == 1.0 and "update_norm" not in rows[2]


def test_the_run_log_writes_clients_jsonl_each_round_and_the_figure_at_the_end(
    tmp_path: Path,
) -> None:
    log = RunLog(tmp_path, load_scenario("quickstart"), frozenset({1}), stream=io.StringIO())
    deltas = np.array([[1.0, 0.0], [-4.0, 0.0]], np.float32)
    for server_round in (1, 2):
        result = RoundResult(
            server_round=server_round,
            started=0.0,
            sampled=(0, 1),
            accepted=(0, 1),
            clients=client_statistics([0, 1], deltas, deltas.mean(axis=0)),
        )
        log.record(server_round, {"accuracy": 0.5, "loss": 1.0}, result, {})
    rows = read_jsonl(tmp_path / "clients.jsonl")
    assert [(r["round"], r["partition"], r["malicious"]) for r in rows] == [
        (1, 0, False),
        (1, 1, True),
        (2, 0, False),
        (2, 1, True),
    ]
    assert [r["cosine_to_aggregate"] for r in rows[:2]] == [-1.0, 1.0]  # mean (-1.5, 0)
    log.finish({})
    assert (tmp_path / "clients.png").read_bytes()[:4] == b"\x89PNG"
