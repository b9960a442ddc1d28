"""A deployed SuperNode trusts the key files its ``--node-config`` names, never the message.

Who: whoever sits between the server and a deployed node (a network attacker past TLS, or a
compromised SuperLink). Knows: everything on the wire, the scenario included; holds its own key
pair, not the server's. It signs train messages with its own key and points the message's
scenario at its own key directory, or switches integrity off in the scenario. The node has no
``FEDSHIELD_CLIENT_TRUST`` (nobody sets one in a deployment); its ``keys-dir`` alone decides.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, RecordDict

from clients.app import train
from clients.deployment import local_scenario, node_trust
from common import protocol as P
from common.crypto.keys import TRUST_ENV, generate_keys
from common.crypto.signing import load_public, verify_reply
from common.data.shards import dataset_of
from common.schema import Scenario
from scenarios.loader import read_scenario
from server.app import initial_weights
from server.guard import IntegrityGuard
from strategies import build_chain
from tests.server._round import NODE_OFFSET, make_strategy


def _split(keys: Path, to: Path) -> tuple[Path, Path]:
    """The server's directory and node 0's, as docs/scaling.md hands them out."""
    server, node = to / "server", to / "node0"
    server.mkdir(parents=True)
    node.mkdir()
    for name in ("server_0000.key", "server_0000.pub", "client_0000.pub", "client_0001.pub"):
        shutil.copy2(keys / name, server / name)
    for name in ("server_0000.pub", "client_0000.key"):
        shutil.copy2(keys / name, node / name)
    return server, node


def _scenario(keys_dir: Path | None, enabled: bool = True) -> Scenario:
    overrides = [
        "data.num_clients=2",
        "train.local_epochs=1",
        f"integrity.enabled={str(enabled).lower()}",
    ]
    if keys_dir is not None:
        overrides.append(f'integrity.keys_dir="{keys_dir}"')
    return read_scenario("quickstart", overrides)


def _message_to_node0(scenario: Scenario, run_dir: Path) -> Message:
    """Round 1's train message to partition 0, as the real strategy builds and signs it."""
    dataset = dataset_of(scenario)
    weights = initial_weights(scenario, dataset.input_shape, dataset.num_classes)
    guard = None
    if scenario.integrity.enabled:
        evaluator = SimpleNamespace(model=None)  # kept only for the watermark (off)
        guard = IntegrityGuard(scenario, run_dir, malicious=frozenset(), evaluator=evaluator)  # type: ignore[arg-type]
    strategy = make_strategy(scenario, build_chain("fedavg", {}), num_params=1, guard=guard)
    messages = strategy.configure_train(1, ArrayRecord(weights), ConfigRecord(), grid=None)  # type: ignore[arg-type]
    return next(m for m in messages if m.metadata.dst_node_id == NODE_OFFSET)


def _node0(keys_dir: Path) -> Context:
    node_config = {"partition-id": 0, "keys-dir": str(keys_dir)}
    return Context(1, NODE_OFFSET, node_config, RecordDict(), {})


@pytest.fixture
def dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path, Path]:
    monkeypatch.delenv(TRUST_ENV, raising=False)
    generate_keys(tmp_path / "genuine", num_clients=2)
    generate_keys(tmp_path / "attacker", num_clients=2)
    server, node = _split(tmp_path / "genuine", tmp_path / "split")
    return server, node, tmp_path / "attacker"


def test_a_message_signed_with_another_key_or_unsigned_is_refused(
    dirs: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    _, node, attacker = dirs
    forged = _message_to_node0(_scenario(attacker), tmp_path / "forged")
    unsigned = _message_to_node0(_scenario(None, enabled=False), tmp_path / "unsigned")
    for message in (forged, unsigned):
        assert P.decode_train_reply(train(message, _node0(node))) == P.Refusal(
            0, "unauthentic_broadcast"
        )


def test_the_genuine_message_is_trained_on_and_the_reply_signed_with_the_node_key(
    dirs: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    server, node, _ = dirs
    message = _message_to_node0(_scenario(server), tmp_path / "run")
    reply = P.decode_train_reply(train(message, _node0(node)))
    assert isinstance(reply, P.TrainReply) and reply.num_examples > 0
    claims = {
        "server_round": 1,
        "node_id": NODE_OFFSET,
        "base_digest": reply.base_digest,
        "update_digest": reply.update_digest,
        "num_examples": reply.num_examples,
    }
    assert reply.signature is not None
    # Signed with client_0000.key from the node's own directory (the server holds only .pub).
    assert verify_reply(
        load_public(server / "client_0000.pub"), **claims, signature=reply.signature
    )
    assert not verify_reply(
        load_public(server / "client_0001.pub"), **claims, signature=reply.signature
    )


def test_node_config_without_keys_or_data_changes_nothing() -> None:
    scenario = _scenario(None, enabled=False)
    assert node_trust({"partition-id": 0}) is None
    assert local_scenario(scenario, {"partition-id": 0}) is scenario
    moved = local_scenario(scenario, {"data-dir": "/srv/data"})
    assert moved.data.data_dir == "/srv/data"
    assert moved.model_copy(update={"data": scenario.data}) == scenario
