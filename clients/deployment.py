"""What a deployed SuperNode says about itself in its ``node_config`` (``--node-config``).

In a simulation Flower sets ``partition-id`` and the runner hands every client its trust anchor
through the environment. A SuperNode started with ``flower-supernode`` sets its own:

- ``partition-id``: the shard of the scenario's partition it serves (and the key it signs with);
- ``keys-dir``: the directory of its key files, ``server_0000.pub`` (the server's public key
  it verifies train messages with) and ``client_{partition-id:04d}.key`` (its signing key).
  A node with a key directory refuses every train message that is not signed by that key,
  whatever the message's own scenario says;
- ``data-dir``: where this machine keeps the dataset's files (``data.data_dir`` of the
  scenario names the server's).
"""

from __future__ import annotations

from collections.abc import Mapping

from common.crypto.keys import ClientTrust
from common.schema import Scenario

KEYS_DIR = "keys-dir"
DATA_DIR = "data-dir"


def node_trust(node_config: Mapping[str, object]) -> ClientTrust | None:
    """The trust anchor of a node started with a ``keys-dir``; None without one.

    ``run_seed`` is unused: with a key directory every key comes from its files.
    """
    keys_dir = node_config.get(KEYS_DIR)
    if not isinstance(keys_dir, str) or not keys_dir:
        return None
    return ClientTrust(signed=True, keys_dir=keys_dir, run_seed=0)


def local_scenario(scenario: Scenario, node_config: Mapping[str, object]) -> Scenario:
    """``scenario`` with this node's ``data-dir``, when it names one."""
    data_dir = node_config.get(DATA_DIR)
    if not isinstance(data_dir, str) or not data_dir:
        return scenario
    data = scenario.data.model_copy(update={"data_dir": data_dir})
    return scenario.model_copy(update={"data": data})
