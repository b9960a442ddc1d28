"""The simulated attacker's server-side powers, kept apart from the defense.

In a real deployment colluding poisoners coordinate among themselves and a man-in-the-middle sits
on the network. In simulation both run inside the server process, between receiving replies and
the integrity gate, so this object knows who is malicious. The defense (gate and aggregator)
never receives it nor any client's malicious status.

* Collusion (threat model ``honest_updates`` or ``omniscient``): the malicious clients of the
  round replace their updates with forged ones computed from the honest updates of the round
  (and, for omniscient attacks only, a read-only :class:`~server.round.ChainView` of the
  deployed chain: its current state and a copy of the round's generator). They sign what they
  send, since they own their keys. Forged rows replace the colluders' own rows of the round's
  stacked updates; the server shuffles all rows before its rule runs.
* Adaptive trigger (kind ``adaptive``, A3FL, IBA): the colluders' shared learned trigger or
  trigger generator, the attack's state across rounds, lives in its holder
  (:func:`server.adaptive.adaptive_state`: :class:`server.adaptive.AdaptiveTrigger`,
  :class:`server.iba.GeneratorTrigger`); each attack round the malicious replies are replaced
  by the updates the holder trains with it.
* Wire (kind ``transit``): weights are altered in transit on the links of the malicious
  clients, downlink (server -> client) or uplink (client -> server). The wire adversary has no
  keys: it cannot re-sign, which is exactly what the integrity checks detect.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from attacks import attack_plan
from attacks.base import TransitAttack
from common.arrays import unflatten
from common.attack_schedule import is_active
from common.crypto.digest import digest_arrays
from common.crypto.keys import client_key
from common.crypto.signing import sign_reply
from common.protocol import TrainReply
from common.schema import Scenario
from common.seeding import derive_rng
from server.adaptive import AdaptiveState, adaptive_state
from server.round import ChainView, RoundUpdates


class Adversary:
    """Collusion and wire tampering for one run (stateful only in what the wire recorded)."""

    def __init__(self, scenario: Scenario, *, malicious: frozenset[int]) -> None:
        self.scenario = scenario
        self.malicious = malicious
        self.plan = attack_plan(scenario.attack)
        self._warned = False  # a degenerate forgery is reported once per run
        self._recorded: dict[tuple[str, int], list[NDArray[np.float32]]] = {}
        adaptive = self.plan.adaptive
        self.adaptive: AdaptiveState | None = (
            adaptive_state(scenario, adaptive) if adaptive is not None else None
        )

    def active(self, server_round: int) -> bool:
        """Whether the attack acts this round (its window and per-round probability)."""
        attack = self.scenario.attack
        return attack.enabled and is_active(
            server_round,
            start_round=attack.start_round,
            end_round=attack.end_round,
            probability=attack.probability,
            seed=self.scenario.seed,
        )

    # -- wire -------------------------------------------------------------------------------
    def _wire_attack(self, direction: str, server_round: int) -> TransitAttack[Any] | None:
        """The transit attack when it acts on ``direction`` links this round."""
        attack = self.plan.transit
        if attack is not None and attack.params.direction == direction:
            return attack if self.active(server_round) else None
        return None

    def _tamper(
        self,
        direction: str,
        server_round: int,
        partition_id: int,
        arrays: list[NDArray[np.float32]],
    ) -> list[NDArray[np.float32]]:
        if self.plan.transit is None:
            return arrays  # nothing on the wire: record nothing either
        link = (direction, partition_id)
        recorded = self._recorded.get(link)
        self._recorded[link] = arrays
        attack = self._wire_attack(direction, server_round)
        if attack is None or partition_id not in self.malicious:
            return arrays
        rng = derive_rng(self.scenario.seed, "wire", direction, server_round, partition_id)
        return attack.tamper(arrays, rng=rng, recorded=recorded)

    def downlink(
        self, server_round: int, partition_id: int, arrays: list[NDArray[np.float32]]
    ) -> list[NDArray[np.float32]]:
        """The broadcast as it arrives at ``partition_id`` (tampered on a compromised link)."""
        return self._tamper("downlink", server_round, partition_id, arrays)

    def uplink(self, server_round: int, updates: RoundUpdates) -> RoundUpdates:
        """The replies as they arrive at the server (tampered on compromised links)."""
        changes = {}
        for index, reply in enumerate(updates.replies):
            sent = list(reply.arrays)
            arrived = self._tamper("uplink", server_round, reply.partition_id, sent)
            if arrived is not sent:
                changes[index] = reply.with_arrays(arrived)
        return updates.replaced(changes)

    def tampered_links(self, server_round: int) -> list[int]:
        """Ground truth for the metrics layer: links altered this round."""
        if self.plan.transit is None or not self.active(server_round):
            return []
        return sorted(self.malicious)

    # -- collusion --------------------------------------------------------------------------
    def collude(
        self,
        server_round: int,
        updates: RoundUpdates,
        global_arrays: list[NDArray[np.float32]],
        *,
        aggregator: ChainView | None,
    ) -> tuple[RoundUpdates, dict[str, float]]:
        """Replace the malicious replies of the round with forged, re-signed updates.

        ``aggregator`` is the deployed chain as it stands this round (its state, the round's
        generator and, for FLTrust, the server's own update, as in Cao et al.'s adaptive
        attack); :meth:`attacks.base.CollusionAttack.view` hands it only to an omniscient
        attack. Returns the round's updates and the attack's diagnostics (empty when it did
        not act); a degenerate forgery is reported once per run on stderr.
        """
        if self.adaptive is not None and self.active(server_round):
            return self._adapt(self.adaptive, server_round, updates, global_arrays)
        attack = self.plan.collusion
        if attack is None or not self.active(server_round):
            return updates, {}
        replies = updates.replies
        bad = [i for i, r in enumerate(replies) if r.partition_id in self.malicious]
        good = [i for i, r in enumerate(replies) if r.partition_id not in self.malicious]
        if not bad or not good:
            return updates, {}
        # The view holds everything; attack.view cuts it to the attack's threat model.
        view = attack.view(
            own=updates.deltas[bad],
            num_clients=len(replies),
            rng=derive_rng(self.scenario.seed, "collude", server_round),
            honest=updates.deltas[good],
            honest_num_examples=updates.num_examples()[good],
            aggregator=aggregator.placed(good + bad) if aggregator is not None else None,
        )
        forgery = attack.forge(view)
        if forgery.warning is not None and not self._warned:
            self._warned = True
            print(f"warning: round {server_round}: {forgery.warning}", file=sys.stderr)
        changes = {
            index: self._signed(replies[index], unflatten(updates.base_flat + row, global_arrays))
            for index, row in zip(bad, forgery.updates, strict=True)
        }
        return updates.replaced(changes), dict(forgery.diagnostics)

    def _adapt(
        self,
        adaptive: AdaptiveState,
        server_round: int,
        updates: RoundUpdates,
        global_arrays: list[NDArray[np.float32]],
    ) -> tuple[RoundUpdates, dict[str, float]]:
        """An adaptive attack's round (A3FL, IBA): the state holder trains every malicious client
        of the round (the lowest id refines the shared state) and their replies are replaced."""
        bad = sorted(
            (r.partition_id, i)
            for i, r in enumerate(updates.replies)
            if r.partition_id in self.malicious
        )
        if not bad:  # no colluder sampled: the trigger waits for the next round
            return updates, {}
        trained, diagnostics = adaptive.attack_round(
            server_round, [partition_id for partition_id, _ in bad], global_arrays
        )
        replies = updates.replies
        changes = {
            index: self._signed(replies[index], trained[partition_id])
            for partition_id, index in bad
        }
        return updates.replaced(changes), diagnostics

    def _signed(self, reply: TrainReply, arrays: list[NDArray[np.float32]]) -> TrainReply:
        if reply.signature is None:
            return reply.with_arrays(arrays)
        # A colluding client owns its key, so its forged update is properly signed.
        key = client_key(
            self.scenario.integrity, run_seed=self.scenario.seed, partition_id=reply.partition_id
        )
        update_digest = digest_arrays(arrays)
        signature = sign_reply(
            key,
            server_round=reply.server_round,
            node_id=reply.node_id,
            base_digest=reply.base_digest,
            update_digest=update_digest,
            num_examples=reply.num_examples,
        )
        return replace(reply, arrays=arrays, update_digest=update_digest, signature=signature)
