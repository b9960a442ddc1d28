"""The colluders of an adaptive-trigger attack (A3FL), simulated beside the server's adversary.

Attacker state across rounds, in one place. A3FL's colluders share one trigger that they refine
every attack round; in a deployment they would keep it on their own machines and pass it among
themselves (BackFed's first selected attacker searches and broadcasts it through a Ray actor).
Here the attack's state lives in this object, owned by :class:`server.adversary.Adversary`,
which the defense never receives:

* **who holds it**: :attr:`AdaptiveTrigger.pattern`, built per run (a sweep's warm session builds
  a new adversary per cell, so no cell sees another's trigger);
* **who uses it**: each attack round, the searching attacker (the lowest partition id among the
  round's malicious replies) refines it on its own shard against the received global model,
  then every malicious client of the round trains on its shard poisoned with it; their
  replies are replaced by those updates, re-signed with their own keys, before the integrity
  gate, exactly as the collusion attacks' forged updates are. The malicious clients' own
  replies (honest training, since their plan has no client-side attack) are discarded;
* **who measures it**: the evaluator reads :meth:`AdaptiveTrigger.success_set` every round, so
  the ASR is always that of the colluders' current trigger (the last one after the attack
  window ends: the durability of the backdoor they left);
* **reproducible and resumable**: the search draws from ``derive_rng(seed, "a3fl", round)``
  and the colluders' training is the clients' own, seeded per (round, client); the pattern is
  the only state, saved in the resume checkpoint (:mod:`server.resume`).

The server does the colluders' TensorFlow work in its own process; the cost of the search
shows in the round's server time, not in the clients'.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from attacks.a3fl import A3FL, Pattern
from attacks.base import SuccessSet
from attacks.iba import IBA
from common.data.shards import client_shard, dataset_of
from common.learning.training import compiled_model, train_locally
from common.learning.trigger_search import KerasTriggerModels
from common.schema import Scenario
from common.seeding import derive_rng, derive_seed
from server.iba import GeneratorTrigger

Arrays = list[NDArray[np.float32]]


class AdaptiveState(Protocol):
    """A server-side state holder of an adaptive attack (A3FL's trigger, IBA's generator)."""

    @property
    def state(self) -> list[NDArray[np.float64] | NDArray[np.float32]]:
        """Every array of the attack's state, as the resume checkpoint stores them."""
        ...

    @state.setter
    def state(self, arrays: list[NDArray[np.float64] | NDArray[np.float32]]) -> None: ...

    def attack_round(
        self, server_round: int, colluders: list[int], global_arrays: Arrays
    ) -> tuple[dict[int, Arrays], dict[str, float]]:
        """The weights each colluder (sorted partition ids) sends, and the diagnostics."""
        ...

    def success_set(self, x_test: NDArray[np.float32], y_test: NDArray[np.int64]) -> SuccessSet:
        """What the evaluator measures the attack with now."""
        ...


def adaptive_state(scenario: Scenario, attack: A3FL | IBA) -> AdaptiveState:
    """The state holder of ``attack`` for one run."""
    if isinstance(attack, IBA):
        return GeneratorTrigger(scenario, attack)
    return AdaptiveTrigger(scenario, attack)


class AdaptiveTrigger:
    """The shared learned trigger of one run's colluders, and their round."""

    def __init__(self, scenario: Scenario, attack: A3FL) -> None:
        self.scenario, self.attack = scenario, attack
        dataset = dataset_of(scenario)
        self.input_shape, self.num_classes = dataset.input_shape, dataset.num_classes
        self.pattern: Pattern = attack.initial_pattern(dataset.input_shape)
        self._models: KerasTriggerModels | None = None  # built at the first attack round

    def _search_models(self) -> KerasTriggerModels:
        if self._models is None:
            self._models = KerasTriggerModels(
                self.scenario.model.name, self.input_shape, self.num_classes
            )
        return self._models

    @property
    def state(self) -> list[NDArray[np.float64] | NDArray[np.float32]]:
        """The pattern, the only state."""
        return [self.pattern]

    @state.setter
    def state(self, arrays: list[NDArray[np.float64] | NDArray[np.float32]]) -> None:
        self.pattern = np.asarray(arrays[0], np.float32)

    def attack_round(
        self, server_round: int, colluders: list[int], global_arrays: Arrays
    ) -> tuple[dict[int, Arrays], dict[str, float]]:
        """The lowest-id colluder refines the trigger, then every colluder trains with it."""
        diagnostics = self.refine(server_round, colluders[0], global_arrays)
        trained = {p: self.poisoned_weights(server_round, p, global_arrays) for p in colluders}
        return trained, diagnostics

    def refine(
        self, server_round: int, searcher: int, global_arrays: list[NDArray[np.float32]]
    ) -> dict[str, float]:
        """Partition ``searcher`` refines the shared trigger against ``global_arrays``."""
        models = self._search_models()
        models.load(global_arrays)
        x, y = client_shard(self.scenario, searcher)
        self.pattern, diagnostics = self.attack.search(
            models,
            x,
            y,
            self.pattern,
            batch_size=self.scenario.train.batch_size,
            rng=derive_rng(self.scenario.seed, "a3fl", server_round),
        )
        return diagnostics

    def poisoned_weights(
        self, server_round: int, partition_id: int, global_arrays: list[NDArray[np.float32]]
    ) -> list[NDArray[np.float32]]:
        """What malicious ``partition_id`` sends: the scenario's local training from the global
        model on its shard with ``ratio`` of it triggered (the same samples every round)."""
        scenario = self.scenario
        x, y = client_shard(scenario, partition_id)
        poisoned = self.attack.with_trigger(self.pattern).poison(
            x,
            y,
            num_classes=self.num_classes,
            rng=derive_rng(scenario.seed, "poison", partition_id),
        )
        model = compiled_model(scenario, self.input_shape, self.num_classes, dp=False)
        outcome = train_locally(
            model,
            global_arrays,
            poisoned.x,
            poisoned.y,
            scenario=scenario,
            seed=derive_seed(scenario.seed, "train", server_round, partition_id),
            dp=False,
            adversarial=False,
        )
        return outcome.weights

    def success_set(self, x_test: NDArray[np.float32], y_test: NDArray[np.int64]) -> SuccessSet:
        """The test images not of class ``target`` with the current trigger (baseline: without)."""
        success = self.attack.with_trigger(self.pattern).success_set(x_test, y_test)
        assert success is not None  # a trigger backdoor always has one
        return success
