"""The server's integrity guard: signed broadcasts, the gate, the ledger and the watermark.

It adapts :mod:`server.integrity` (pure functions and explicit state) to the round loop of
:class:`server.strategy.FedshieldStrategy`. Ground truth about who is malicious is used only for
the detection scores of the final summary, never in a decision.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from common import protocol as P
from common.crypto.digest import digest_arrays
from common.crypto.keys import SEED_DERIVED, client_public_keys, key_source, server_key
from common.crypto.train_signing import sign_train
from common.protocol import TrainReply
from common.schema import Scenario
from common.seeding import derive_seed
from server.evaluation import Evaluator
from server.integrity.detection import detection_scores
from server.integrity.gate import GateState, Verdict, run_gate
from server.integrity.integrity_log import IntegrityLog
from server.integrity.ledger import RunLedger
from server.integrity.ledger_verify import verify_run
from server.integrity.watermark import WatermarkKey, embed, watermark_accuracy

WATERMARK_KEY_FILE = "watermark_key.json"


@dataclass(frozen=True)
class GateOutcome:
    """Which replies may be aggregated, and the per-partition reasons of the others."""

    accepted: tuple[int, ...]
    """Indices of the replies that may be aggregated (flagged ones included)."""
    rejected: dict[int, tuple[str, ...]]
    flagged: dict[int, tuple[str, ...]]


class IntegrityGuard:
    """Everything the ``[integrity]`` section switches on, for one run."""

    def __init__(
        self, scenario: Scenario, run_dir: Path, *, malicious: frozenset[int], evaluator: Evaluator
    ) -> None:
        self.scenario = scenario
        self.config = scenario.integrity
        self.malicious = malicious
        self.key = server_key(self.config, run_seed=scenario.seed)
        if self.config.keys_dir is None:  # said on the run's first line, not only in docs
            print(
                f"integrity: keys are {SEED_DERIVED}: the seed travels in every message, so "
                "anyone can sign as server or client; use `fedshield keys generate` and "
                "integrity.keys_dir",
                flush=True,
            )
        self.public_keys = client_public_keys(
            self.config, run_seed=scenario.seed, partition_ids=range(scenario.data.num_clients)
        )
        self.state = GateState()
        self.run_dir = run_dir
        self.ledger = RunLedger(run_dir, key=self.key)
        self.log = IntegrityLog(run_dir)
        self.flagged_by_round: dict[int, list[int]] = {}
        self.digests: dict[int, str] = {}
        self._verdicts: list[Verdict] = []
        self._accepted_digests: dict[int, str] = {}
        self.model = evaluator.model  # the server's model, reused for watermark retraining
        self.watermark: WatermarkKey | None = None
        self.watermark_rounds: dict[int, dict[str, float]] = {}
        wm = self.config.watermark
        if wm.enabled:
            dataset = evaluator.dataset
            # Seed-derived so a run is reproducible; a deployment keeps this key file secret.
            self.watermark = WatermarkKey(
                seed=derive_seed(scenario.seed, "watermark"),
                num_triggers=wm.num_triggers,
                input_shape=dataset.input_shape,
                num_classes=dataset.num_classes,
                model_name=scenario.model.name,
            )
            self.watermark.save(run_dir / WATERMARK_KEY_FILE)

    def _defense(self) -> tuple[str, dict[str, Any]]:
        defense = self.scenario.defense
        params = {"params": dict(defense.params), "pre": [p.model_dump() for p in defense.pre]}
        return defense.aggregator, params

    def _embed(
        self, server_round: int, weights: list[NDArray[np.float32]]
    ) -> list[NDArray[np.float32]]:
        """WAFFLE: measure whether the watermark survived aggregation, then re-embed it."""
        if self.watermark is None:
            return weights
        wm = self.config.watermark
        self.model.set_weights(weights)
        survived = watermark_accuracy(self.model, self.watermark)
        epochs = embed(
            self.model,
            self.watermark,
            max_epochs=wm.max_server_epochs,
            target_accuracy=wm.target_accuracy,
            learning_rate=wm.learning_rate,
        )
        self.watermark_rounds[server_round] = {
            "watermark_accuracy_after_aggregation": survived,
            "watermark_accuracy": watermark_accuracy(self.model, self.watermark),
            "watermark_epochs": float(epochs),
        }
        return [np.asarray(w, np.float32) for w in self.model.get_weights()]

    def start(self, weights: list[NDArray[np.float32]]) -> list[NDArray[np.float32]]:
        """Round 0: watermark the initial model, record it in the ledger."""
        weights = self._embed(0, weights)
        aggregator, params = self._defense()
        self.ledger.record_round(
            0,
            global_arrays=weights,
            aggregator=aggregator,
            aggregator_params=params,
            accepted_digests={},
            verdicts=[],
        )
        return weights

    def broadcast_fields(
        self, server_round: int, arrays: list[NDArray[np.float32]]
    ) -> dict[str, Any]:
        """The digest of the round's global weights, announced in every train message."""
        digest = digest_arrays(arrays)
        self.digests[server_round] = digest
        return {P.GLOBAL_DIGEST: digest}

    def train_signature(
        self, server_round: int, node_id: int, config: Mapping[str, object]
    ) -> dict[str, bytes]:
        """The server's signature over one train message: round, recipient ``node_id``, global
        digest and every entry of ``config`` exactly as sent (see ``train_signing``)."""
        signature = sign_train(
            self.key,
            server_round=server_round,
            node_id=node_id,
            global_digest=self.digests[server_round],
            config=config,
            exclude=(P.BROADCAST_SIGNATURE,),
        )
        return {P.BROADCAST_SIGNATURE: signature}

    def check(
        self,
        server_round: int,
        replies: Sequence[TrainReply],
        global_arrays: list[NDArray[np.float32]],
        *,
        caught_before: Collection[int] = (),
    ) -> GateOutcome:
        """Run the gate; rejected and quarantined replies never reach the aggregator.

        ``caught_before`` are partitions dropped before the gate in this round (a client that
        refused the broadcast, a reply that did not decode): detections counted with the
        gate's own in the detection scores.
        """
        result = run_gate(
            replies,
            config=self.config,
            server_round=server_round,
            global_arrays=global_arrays,
            global_digest=self.digests[server_round],
            public_keys=self.public_keys,
            state=self.state,
        )
        self.state = result.state
        self._verdicts = result.verdicts
        self._accepted_digests = result.accepted_digests
        self.log.write_round(server_round, result.verdicts)
        self.flagged_by_round[server_round] = sorted(
            {v.partition_id for v in result.verdicts if v.decision != "accepted"}
            | set(caught_before)
        )
        return GateOutcome(
            accepted=tuple(
                i for i, v in enumerate(result.verdicts) if v.decision in ("accepted", "flagged")
            ),
            rejected={
                v.partition_id: v.reasons
                for v in result.verdicts
                if v.decision in ("rejected", "quarantined")
            },
            flagged={v.partition_id: v.reasons for v in result.verdicts if v.decision == "flagged"},
        )

    def after_aggregation(
        self, server_round: int, new_global: list[NDArray[np.float32]]
    ) -> list[NDArray[np.float32]]:
        """Watermark the new global model and append the round to the hash-chained ledger."""
        new_global = self._embed(server_round, new_global)
        aggregator, params = self._defense()
        self.ledger.record_round(
            server_round,
            global_arrays=new_global,
            aggregator=aggregator,
            aggregator_params=params,
            accepted_digests=self._accepted_digests,
            verdicts=self._verdicts,
        )
        return new_global

    def round_metrics(self, server_round: int) -> dict[str, float]:
        """Watermark figures of the round for ``metrics.jsonl`` (empty when it is off)."""
        return dict(self.watermark_rounds.get(server_round, {}))

    def summary(self) -> dict[str, Any]:
        """Detection quality against ground truth (metrics layer only), the key source and the
        ledger's signed head, which ``fedshield verify`` checks the chain's end against."""
        report = verify_run(self.run_dir, self.key.public_key, check_head=False)
        return {
            "detection": detection_scores(self.flagged_by_round, self.malicious),
            "keys": key_source(self.config),
            "ledger_verified": report.ok,
            **self.ledger.head(),
        }
