"""A network attacker without keys edits only the scenario JSON of one client's train message.

Who: a man in the middle on one server -> client link. Knows: everything on the wire (the
scenario JSON travels in the clear); holds no key. Before the whole train message was signed,
editing the JSON turned an honest client into a x2.5 sign-flipping poisoner whose update carried
its genuine signature (the gate accepted it), or switched its DP off. Now the client refuses
the message, and the refusal is counted as a detection.

The messages are the ones the real strategy builds; the client is the real ClientApp function.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, RecordDict

from clients.app import _broadcast_is_authentic, train
from clients.poisoning import active_plan
from common import protocol as P
from common.crypto.keys import TRUST_ENV, ClientTrust, generate_keys
from common.data.shards import malicious_clients
from common.schema import Scenario
from scenarios.loader import load_scenario
from server.guard import IntegrityGuard
from strategies import build_chain
from tests.server._round import NODE_OFFSET, make_strategy

NUM_CLIENTS = 4
WEIGHTS = [np.arange(6, dtype=np.float32).reshape(2, 3), np.ones(3, np.float32)]


@pytest.fixture
def scenario(monkeypatch: pytest.MonkeyPatch) -> Scenario:
    """Local DP on, no attack, integrity on; the clients' trust set as the runner sets it."""
    loaded = load_scenario(
        "dp_local", ["integrity.enabled=true", f"data.num_clients={NUM_CLIENTS}"]
    )
    monkeypatch.setenv(
        TRUST_ENV, ClientTrust.of(loaded.integrity, loaded.seed).environment()[TRUST_ENV]
    )
    return loaded


def _messages(scenario: Scenario, run_dir: Path) -> tuple[IntegrityGuard, list[Message]]:
    evaluator = SimpleNamespace(model=None)  # the guard only keeps it for the watermark (off)
    guard = IntegrityGuard(scenario, run_dir, malicious=frozenset(), evaluator=evaluator)  # type: ignore[arg-type]
    strategy = make_strategy(scenario, build_chain("fedavg", {}), num_params=9, guard=guard)
    messages = strategy.configure_train(1, ArrayRecord(WEIGHTS), ConfigRecord(), grid=None)  # type: ignore[arg-type]
    return guard, list(messages)


def _context(partition_id: int) -> Context:
    node_config = {"partition-id": partition_id, "num-partitions": NUM_CLIENTS}
    return Context(1, NODE_OFFSET + partition_id, node_config, RecordDict(), {})


def _on_the_link(message: Message, edit: dict[str, dict[str, object]]) -> Message:
    """The attacker's copy: same weights, same signature, only the scenario JSON edited."""
    config = ConfigRecord(dict(message.content.config_records[P.CONFIG]))
    scenario = json.loads(str(config[P.SCENARIO]))
    for section, fields in edit.items():
        scenario[section].update(fields)
    config[P.SCENARIO] = json.dumps(scenario)
    content = RecordDict({P.ARRAYS: message.content.array_records[P.ARRAYS], P.CONFIG: config})
    return Message(content=content, message_type=message.metadata.message_type,
                   dst_node_id=message.metadata.dst_node_id)  # fmt: skip


SIGN_FLIP = {"attack": {"type": "sign_flip", "params": {"scale": 2.5}, "malicious": 3}}
EDITS = {
    "sign_flip_x2.5": SIGN_FLIP,
    "dp_off": {"dp": {"enabled": False}},
    "sign_flip_with_integrity_off": {**SIGN_FLIP, "integrity": {"enabled": False}},
}


@pytest.mark.parametrize("edit", EDITS)
def test_an_edited_scenario_is_refused_and_counted_as_a_detection(
    edit: str, scenario: Scenario, tmp_path: Path
) -> None:
    guard, messages = _messages(scenario, tmp_path)
    edited = _on_the_link(messages[0], EDITS[edit])
    obeyed = Scenario.model_validate_json(str(edited.content.config_records[P.CONFIG][P.SCENARIO]))
    victim = min(malicious_clients(obeyed)) if edit != "dp_off" else 0
    if edit != "dp_off":  # the edit is an order the client would follow: attack this round
        assert active_plan(obeyed, victim, 1) is not None and not malicious_clients(scenario)
    else:
        assert scenario.dp.enabled and not obeyed.dp.enabled
    message = next(m for m in messages if m.metadata.dst_node_id == NODE_OFFSET + victim)
    edited = _on_the_link(message, EDITS[edit])

    reply = P.decode_train_reply(train(edited, _context(victim)))
    assert reply == P.Refusal(victim, "unauthentic_broadcast")

    guard.check(1, [], WEIGHTS, caught_before=[victim])
    assert guard.flagged_by_round[1] == [victim]


def test_the_untouched_message_is_authentic_only_at_its_recipient(
    scenario: Scenario, tmp_path: Path
) -> None:
    _, messages = _messages(scenario, tmp_path)
    trust = ClientTrust.from_environment()
    assert trust is not None
    assert len(
        {bytes(m.content.config_records[P.CONFIG][P.BROADCAST_SIGNATURE]) for m in messages}
    ) == len(messages)  # type: ignore[arg-type]
    for message in messages:
        node = message.metadata.dst_node_id
        config = message.content.config_records[P.CONFIG]
        arrays = message.content.array_records[P.ARRAYS].to_numpy_ndarrays()
        assert _broadcast_is_authentic(trust, node, arrays, config)
        # Relayed to another node, the same signed message is not an order to it.
        assert not _broadcast_is_authentic(trust, node + 1, arrays, config)
        # An entry added on the link (anything the client might read) breaks it too.
        assert not _broadcast_is_authentic(trust, node, arrays, ConfigRecord({**config, "x": 1}))


def test_seed_derived_keys_are_announced_first_and_recorded_in_the_summary(
    scenario: Scenario, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    guard, _ = _messages(scenario, tmp_path / "seeded")
    assert capsys.readouterr().out.splitlines() == [
        "integrity: keys are seed-derived (no protection): the seed travels in every message, "
        "so anyone can sign as server or client; use `fedshield keys generate` and "
        "integrity.keys_dir"
    ]
    guard.start(WEIGHTS, shard_sizes=dict.fromkeys(range(NUM_CLIENTS), 10))
    summary = guard.summary()
    assert (summary["keys"], summary["ledger_rounds"]) == ("seed-derived (no protection)", 1)

    keys = tmp_path / "keys"
    generate_keys(keys, num_clients=NUM_CLIENTS)
    with_files = scenario.model_copy(
        update={"integrity": scenario.integrity.model_copy(update={"keys_dir": str(keys)})}
    )
    guard, _ = _messages(with_files, tmp_path / "files")
    assert capsys.readouterr().out == ""
    guard.start(WEIGHTS, shard_sizes=dict.fromkeys(range(NUM_CLIENTS), 10))
    assert guard.summary()["keys"] == f"files in {keys}"
