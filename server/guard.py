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
from common.results import atomic_write_json
from common.schema import Scenario
from server.evaluation import Evaluator
from server.integrity.detection import detection_scores
from server.integrity.gate import GateState, Verdict, run_gate
from server.integrity.integrity_log import IntegrityLog
from server.integrity.ledger import RunLedger
from server.integrity.ledger_verify import verify_run
from server.integrity.watermark import (
    WatermarkKey,
    embed,
    watermark_accuracy,
    watermark_key_path,
)

WATERMARK_COMMITMENT_FILE = "watermark_commitment.json"


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
        self.shard_sizes: dict[int, int] = {}
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
        self.watermark_key_file: Path | None = None
        if self.config.watermark.enabled:
            self._create_watermark_key(evaluator)

    def _create_watermark_key(self, evaluator: Evaluator) -> None:
        """A CSPRNG key, stored outside the run directory; the run keeps only its hash.

        Whoever reads the run directory (clients get the scenario, a storage attacker gets
        everything) learns nothing that regenerates the trigger set.
        """
        dataset = evaluator.dataset
        self.watermark = WatermarkKey.generate(
            num_triggers=self.config.watermark.num_triggers,
            input_shape=dataset.input_shape,
            num_classes=dataset.num_classes,
            model_name=self.scenario.model.name,
        )
        path = watermark_key_path(self.config.watermark.key_file, self.run_dir)
        self.watermark.save(path)
        self.watermark_key_file = path
        commitment = {
            "scheme": self.watermark.scheme,
            "key_sha256": self.watermark.commitment(),
            "key_file": str(path),
        }
        atomic_write_json(self.run_dir / WATERMARK_COMMITMENT_FILE, commitment)

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
            extra_epochs=wm.extra_epochs,
        )
        self.watermark_rounds[server_round] = {
            "watermark_accuracy_after_aggregation": survived,
            "watermark_accuracy": watermark_accuracy(self.model, self.watermark),
            "watermark_epochs": float(epochs),
        }
        return [np.asarray(w, np.float32) for w in self.model.get_weights()]

    def start(
        self, weights: list[NDArray[np.float32]], *, shard_sizes: Mapping[int, int]
    ) -> list[NDArray[np.float32]]:
        """Round 0: keep the handshake's shard sizes, watermark the initial model, ledger it.

        ``shard_sizes`` (partition -> examples, as each node reported it at the handshake)
        bounds every later ``num_examples`` claim (``server/integrity/claims.py``).
        """
        self.shard_sizes = dict(shard_sizes)
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
            shard_sizes=self.shard_sizes,
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
        """Detection quality against ground truth (metrics layer only), the key source, the
        watermark key's commitment, and the ledger's signed head, which ``fedshield verify``
        checks the chain's end against."""
        report = verify_run(self.run_dir, self.key.public_key, check_head=False)
        watermark = (
            {}
            if self.watermark is None
            else {
                "watermark_key_sha256": self.watermark.commitment(),
                "watermark_key_file": str(self.watermark_key_file),
            }
        )
        return {
            **watermark,
            "detection": detection_scores(self.flagged_by_round, self.malicious),
            "keys": key_source(self.config),
            "ledger_verified": report.ok,
            **self.ledger.head(),
        }
