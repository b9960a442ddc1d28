"""The integrity guard in the round: signed broadcasts, the gate on real signed replies, the ledger.

Adversaries: a man in the middle on two clients' uplinks (no keys), colluding clients (their own
keys), and clients that send replies the protocol does not allow.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Message, RecordDict

from common import protocol as P
from common.crypto.keys import client_key, server_public_key
from common.crypto.signing import KeyPair
from common.crypto.train_signing import check_train
from common.data.shards import malicious_clients
from common.schema import Scenario
from scenarios.loader import load_scenario
from server.evaluation import Evaluator
from server.guard import IntegrityGuard
from server.strategy import FedshieldStrategy
from strategies import build_chain
from tests.server._round import GRID, client_reply, make_strategy, partition_of, play_round

BASE = [np.zeros((3, 4), np.float32), np.zeros(4, np.float32)]
HALF = [np.full(a.shape, 0.5, np.float32) for a in BASE]


def _guarded(tmp_path: Path, *overrides: str) -> tuple[FedshieldStrategy, IntegrityGuard]:
    scenario = load_scenario("quickstart", ["integrity.enabled=true", *overrides])
    # The guard reads the evaluator's model only for the watermark, which is off here.
    evaluator = cast(Evaluator, SimpleNamespace(model=None, dataset=None))
    malicious = malicious_clients(scenario)
    guard = IntegrityGuard(scenario, tmp_path, malicious=malicious, evaluator=evaluator)
    guard.start(BASE, shard_sizes=dict.fromkeys(range(scenario.data.num_clients), 10))
    chain = build_chain("fedavg", {})
    strategy = make_strategy(scenario, chain, num_params=16, malicious=malicious, guard=guard)
    return strategy, guard


def _key(scenario: Scenario) -> Callable[[int], KeyPair]:
    return lambda p: client_key(scenario.integrity, run_seed=scenario.seed, partition_id=p)


def test_every_client_can_check_the_signed_broadcast(tmp_path: Path) -> None:
    strategy, _ = _guarded(tmp_path)
    scenario = strategy.scenario
    public = server_public_key(scenario.integrity, run_seed=scenario.seed)
    sent = list(strategy.configure_train(1, ArrayRecord(BASE), ConfigRecord(), GRID))
    assert len(sent) == 10
    for message in sent:
        config = message.content.config_records[P.CONFIG]
        arrays = message.content.array_records[P.ARRAYS].to_numpy_ndarrays()
        digest, signature = config[P.GLOBAL_DIGEST], config[P.BROADCAST_SIGNATURE]
        assert isinstance(digest, str) and isinstance(signature, bytes)
        node_id = message.metadata.dst_node_id
        for server_round, node, valid in ((1, node_id, True), (2, node_id, False),
                                          (1, node_id + 1, False)):  # fmt: skip
            assert valid == check_train(
                public,
                server_round=server_round,
                node_id=node,
                arrays=arrays,
                global_digest=digest,
                config=config,
                exclude=(P.BROADCAST_SIGNATURE,),
                signature=signature,
            )


def test_a_wire_adversary_is_caught_and_the_ledger_verifies(tmp_path: Path) -> None:
    strategy, guard = _guarded(
        tmp_path, 'attack.type="additive"', "attack.params={scale=0.1}", "attack.malicious=2"
    )
    new, result = play_round(strategy, 1, BASE, lambda p: HALF, key=_key(strategy.scenario))
    assert result.tampered == (5, 9)
    assert result.rejected == {5: ("digest_mismatch",), 9: ("digest_mismatch",)}
    assert result.accepted == (0, 1, 2, 3, 4, 6, 7, 8)
    np.testing.assert_array_equal(new[0], HALF[0])  # only untouched replies were aggregated
    line = json.loads((tmp_path / "integrity.jsonl").read_text().splitlines()[0])
    assert line["rejected_partitions"] == [5, 9] and line["accepted"] == 8
    summary = guard.summary()
    assert summary["ledger_verified"] and summary["ledger_rounds"] == 2
    assert summary["detection"]["recall"] == 1.0 and summary["detection"]["precision"] == 1.0


def test_colluders_sign_their_forged_updates_so_the_gate_lets_them_through(
    tmp_path: Path,
) -> None:
    # Signatures prove who sent an update, not that it is honest: IPM's forged rows are
    # -0.5 x the honest mean and carry valid signatures of their own clients.
    strategy, _ = _guarded(tmp_path, 'attack.type="ipm"', "attack.malicious=2")
    new, result = play_round(strategy, 1, BASE, lambda p: HALF, key=_key(strategy.scenario))
    assert result.rejected == {} and result.accepted == tuple(range(10))
    np.testing.assert_allclose(new[0], np.full((3, 4), 0.35))  # (8 x 0.5 + 2 x -0.25) / 10


def test_misfits_meet_the_gates_policy_and_bad_replies_count_as_detections(
    tmp_path: Path,
) -> None:
    strategy, guard = _guarded(tmp_path, 'integrity.shape="quarantine"')
    key = _key(strategy.scenario)
    sent = list(strategy.configure_train(1, ArrayRecord(BASE), ConfigRecord(), GRID))
    misfit = [np.full((12,), 0.5, np.float32), HALF[1]]  # the right values, the wrong shape
    replies = [
        client_reply(m, misfit if partition_of(m) == 3 else HALF, key=key(partition_of(m)))
        for m in sent
        if partition_of(m) != 4
    ]
    replies.append(Message(content=RecordDict({}), reply_to=sent[4]))  # no metrics at all
    strategy.aggregate_train(1, replies)
    first = strategy.sink.take(1)
    assert first is not None
    assert first.rejected == {
        3: ("shape_mismatch",),
        4: ("malformed: reply record 'metrics' is missing",),
    }
    assert guard.flagged_by_round[1] == [3, 4]
    _, second = play_round(strategy, 2, HALF, lambda p: HALF, key=key)
    assert second.rejected == {3: ("quarantined",)}  # the gate's shape policy held
