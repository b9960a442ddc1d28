"""IBA's colluders, simulated beside the server's adversary: the generator is the state.

The same mechanism as A3FL's (:mod:`server.adaptive`): the attack's state lives in this object,
owned by :class:`server.adversary.Adversary`, which the defense never receives; it is built per
run, saved in the resume checkpoint and read by the evaluator.

* **the state**: the trigger generator's weights (batch-norm running statistics included) and
  the authors' two-phase schedule (:class:`attacks.iba.Phase`), :attr:`GeneratorTrigger.state`;
* **a round** (the authors' ``_train_attacker``, in their order): every malicious client of the
  round trains its classifier from the global model with the generator as it stands (clean in
  phase 1, the mixed loss in phase 2); the searching colluder (lowest partition id) then
  retrains the generator against its OWN new classifier when the schedule says so and measures
  its local ASR on its shard, which decides when phase 2 starts;
* **measured**: :meth:`GeneratorTrigger.success_set`, the test images perturbed by the current
  generator at the bound of the last attack round (the authors' ``test_eps=cur_training_eps``);
* **reproducible**: the generator's initial weights come from ``derive_seed(seed, "iba")``, its
  batches from ``derive_rng(seed, "iba", round)``, the colluders' training from the clients' own
  per-(round, client) seeds.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from numpy.typing import NDArray

from attacks.a3fl import epoch_batches
from attacks.base import SuccessSet
from attacks.iba import CLIP, IBA, Phase, poisoned
from common.arrays import flatten
from common.data.shards import client_shard, dataset_of
from common.learning.iba_generator import KerasGenerator
from common.learning.poison_trainer import KerasTrainer
from common.learning.training import compiled_model
from common.schema import Scenario
from common.seeding import derive_rng, derive_seed

Arrays = list[NDArray[np.float32]]


class GeneratorTrigger:
    """The shared trigger generator of one run's colluders, its schedule, and their round."""

    def __init__(self, scenario: Scenario, attack: IBA) -> None:
        self.scenario, self.attack = scenario, attack
        dataset = dataset_of(scenario)
        self.input_shape, self.num_classes = dataset.input_shape, dataset.num_classes
        self.generator = KerasGenerator(
            scenario.model.name,
            dataset.input_shape,
            dataset.num_classes,
            derive_seed(scenario.seed, "iba"),
        )
        self.phase = Phase()

    @property
    def state(self) -> list[NDArray[np.float64] | NDArray[np.float32]]:
        """The generator's weights, then the schedule's numbers (what ``resume.npz`` keeps)."""
        return [*self.generator.get_weights(), self.phase.to_array()]

    @state.setter
    def state(self, arrays: list[NDArray[np.float64] | NDArray[np.float32]]) -> None:
        self.generator.set_weights([np.asarray(a, np.float32) for a in arrays[:-1]])
        self.phase = Phase.from_array(np.asarray(arrays[-1], np.float64))

    def attack_round(
        self, server_round: int, colluders: list[int], global_arrays: Arrays
    ) -> tuple[dict[int, Arrays], dict[str, float]]:
        """Every colluder's trained weights (``colluders`` sorted; the first searches) and the
        round's diagnostics."""
        self.phase = phase = self.attack.next_phase(self.phase, server_round)
        trained = {p: self._classifier(server_round, p, global_arrays) for p in colluders}
        p, scenario = self.attack.params, self.scenario
        eps = self.attack.eps(phase, server_round)
        x, _ = client_shard(scenario, colluders[0])
        self.generator.load_classifier(trained[colluders[0]])
        if self.attack.retrains(phase):
            self.generator.train(
                x,
                p.target,
                eps,
                epoch_batches(
                    len(x),
                    p.atk_model_train_epoch,
                    scenario.train.batch_size,
                    derive_rng(scenario.seed, "iba", server_round),
                ),
                clip=CLIP,
                learning_rate=p.atk_lr,
                momentum=p.atk_momentum,
                weight_decay=p.atk_weight_decay,
            )
        local_asr = self.generator.success_rate(poisoned(x, self.generator.noise(x), eps), p.target)
        self.phase = replace(phase, local_asr=local_asr)
        started = float(bool(phase.started))
        return trained, {"iba_eps": eps, "iba_local_asr": local_asr, "iba_poisoning": started}

    def _classifier(self, server_round: int, partition_id: int, global_arrays: Arrays) -> Arrays:
        """What malicious ``partition_id`` sends: :meth:`attacks.iba.IBA.train_colluder` from
        the global model on its shard, with the scenario's optimizer and its own seed."""
        scenario = self.scenario
        x, y = client_shard(scenario, partition_id)
        model = compiled_model(scenario, self.input_shape, self.num_classes, dp=False)
        seed = derive_seed(scenario.seed, "train", server_round, partition_id)
        trainer = KerasTrainer(model, scenario, seed)
        trainer.load(flatten(global_arrays), reset_optimizer=True)
        self.attack.train_colluder(
            trainer, x, y, self.generator, phase=self.phase, server_round=server_round
        )
        return trainer.outcome(len(y)).weights

    def success_set(self, x_test: NDArray[np.float32], y_test: NDArray[np.int64]) -> SuccessSet:
        """The test images not of class ``target``, perturbed by the current generator at the
        bound of the last attack round (baseline: unperturbed)."""
        eps = self.attack.eps(self.phase, self.phase.latest)
        return self.attack.success_set(x_test, y_test, self.generator, eps)
