"""Resume: what each round leaves in the run directory, and how a run continues from it.

After round r is recorded in ``metrics.jsonl``, :meth:`RunState.save` writes
``RUN_DIR/resume.npz`` (:mod:`server.checkpoint_state`, atomically) with everything round r+1
needs that is not a pure function of (seed, round):

* the global weights after round r;
* every chain stage's state (``FedshieldStrategy.chain_state``, the stages' ``NamedTuple``s);
* the adversary's state: what the wire recorded on each link (replay attacks), whether it
  already warned about a degenerate forgery, and an adaptive attack's state (A3FL's learned
  trigger, IBA's generator and schedule: :mod:`server.adaptive`, :mod:`server.iba`);
* the integrity guard's: quarantine lists (``GateState.quarantined_until``), the handshake's
  shard sizes and the flags per round (detection scores); the ledger's position is its file,
  cut back to round r on resume;
* the privacy accountant's events (``ClientPrivacyLedger``) and its round count;
* the failed-round streak (``simulation.max_failed_rounds``), the partitions ever accepted
  (membership inference), and NumPy's global generator, which Flower's reproducible central-DP
  noise draws from.

Client sampling, attack windows, fault draws, shuffles, the root update and every client's
training draw from ``derive_rng(seed, ..., round)``: nothing of theirs needs saving, and the
resumed rounds draw what the uninterrupted run drew. What cannot be resumed identically: DP
noise from the operating system's entropy (the default; ``dp.reproducible_noise`` asks for a
seeded one) and WAFFLE retraining, whose key is drawn from entropy and never stored in the run
directory; a run with the watermark on is refused.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.server import Grid
from flwr.serverapp.strategy import Result, Strategy
from numpy.typing import NDArray

from common.results import atomic_write_text
from common.schema import Scenario
from server.checkpoint_state import CheckpointError, read_checkpoint, write_checkpoint
from server.guard import IntegrityGuard
from server.integrity.gate import GateState
from server.privacy import PrivacyTracker
from server.privacy_accounting import RoundEvent
from server.round import RoundSink
from server.round_failures import FailedRounds
from server.strategy import FedshieldStrategy

ROUND_FILES = ("metrics.jsonl", "clients.jsonl", "integrity.jsonl", "ledger.jsonl")
"""Per-round logs, each line with a ``round``: cut back to the checkpoint's round on resume."""


@dataclass(frozen=True)
class ResumePoint:
    """A checked checkpoint: the round it ends and its state."""

    server_round: int
    state: dict[str, Any]

    @property
    def weights(self) -> list[NDArray[np.float32]]:
        """The global weights after :attr:`server_round`."""
        return list(self.state["weights"])


def load_resume_point(run_dir: Path, scenario: Scenario, versions: dict[str, str]) -> ResumePoint:
    """The checkpoint of ``run_dir`` if it belongs to ``scenario`` under these ``versions``.

    One-line :class:`CheckpointError` otherwise (missing, corrupt, another scenario, other
    package versions, or a scenario whose run cannot be resumed identically).
    """
    if scenario.integrity.enabled and scenario.integrity.watermark.enabled:
        raise CheckpointError(
            "--resume: integrity.watermark.enabled: got true; a watermarked run cannot be "
            "resumed (its key is drawn from entropy and kept outside the run directory)"
        )
    state = read_checkpoint(run_dir)
    if state.get("scenario") != scenario.model_dump_json():
        raise CheckpointError(
            f"--resume: {run_dir}/resume.npz was written for another scenario than "
            f"{run_dir}/scenario.json with these --set values"
        )
    if state.get("versions") != versions:
        changed = sorted(
            k for k in versions if versions[k] != dict(state.get("versions") or {}).get(k)
        )
        raise CheckpointError(
            f"--resume: {run_dir} was run with other package versions ({', '.join(changed)}); "
            "resume it with the versions in its summary or start a new run"
        )
    server_round = state.get("round")
    if not isinstance(server_round, int) or not 0 <= server_round <= scenario.rounds:
        raise CheckpointError(f"--resume: {run_dir}/resume.npz is corrupt (round {server_round!r})")
    if server_round == scenario.rounds:
        raise CheckpointError(f"--resume: {run_dir} already finished all {server_round} rounds")
    return ResumePoint(server_round, state)


def cut_round_files(run_dir: Path, last_round: int) -> None:
    """Drop every line of the per-round logs after ``last_round`` (and later checkpoints).

    A run killed between its logs and its checkpoint has logged a round the checkpoint does
    not hold; the resumed run writes that round again.
    """
    for name in ROUND_FILES:
        path = run_dir / name
        if path.exists():
            lines = path.read_text(encoding="utf-8").splitlines()
            kept = [line for line in lines if line.strip() and _round_of(line) <= last_round]
            atomic_write_text(path, "".join(f"{line}\n" for line in kept))
    for checkpoint in sorted((run_dir / "checkpoints").glob("round_*.npz")):
        if int(checkpoint.stem.removeprefix("round_")) > last_round:
            checkpoint.unlink()


def _round_of(line: str) -> int:
    try:
        return int(json.loads(line)["round"])
    except (ValueError, KeyError, TypeError) as err:
        raise CheckpointError(f"--resume: a per-round log line is corrupt ({err})") from None


@dataclass
class RunState:
    """The live objects whose state one round leaves for the next."""

    run_dir: Path
    strategy: FedshieldStrategy
    sink: RoundSink
    failed: FailedRounds
    guard: IntegrityGuard | None
    privacy: PrivacyTracker | None
    versions: dict[str, str]

    def save(self, server_round: int, weights: list[NDArray[np.float32]]) -> None:
        """Write the checkpoint of ``server_round`` (after its metrics line)."""
        adversary = self.strategy.adversary
        state: dict[str, Any] = {
            "round": server_round,
            "scenario": self.strategy.scenario.model_dump_json(),
            "versions": self.versions,
            "weights": list(weights),
            "chain_state": self.strategy.chain_state,
            "wire_recorded": adversary._recorded,
            "forgery_warned": adversary._warned,
            "failed_streak": self.failed.streak,
            "ever_accepted": sorted(self.sink.ever_accepted),
            "numpy_global": np.random.get_state(),
        }
        if adversary.adaptive is not None:
            state["adaptive_state"] = adversary.adaptive.state
        if self.guard is not None:
            state["quarantined_until"] = dict(self.guard.state.quarantined_until)
            state["shard_sizes"] = self.guard.shard_sizes
            state["flagged_by_round"] = self.guard.flagged_by_round
        if self.privacy is not None:
            events = self.privacy.ledger._events
            state["privacy_events"] = {p: [asdict(e) for e in es] for p, es in events.items()}
            state["privacy_rounds"] = self.privacy.rounds
        write_checkpoint(self.run_dir, state)

    def restore(self, point: ResumePoint) -> None:
        """Put the checkpoint's state back into the live objects (before round r+1)."""
        state = point.state
        adversary = self.strategy.adversary
        self.strategy.chain_state = state["chain_state"]
        adversary._recorded = dict(state["wire_recorded"])
        adversary._warned = bool(state["forgery_warned"])
        self.failed.streak = int(state["failed_streak"])
        self.sink.ever_accepted = set(state["ever_accepted"])
        np.random.set_state(state["numpy_global"])
        if adversary.adaptive is not None:
            # Checkpoints written before IBA held A3FL's pattern alone, as "adaptive_trigger".
            saved = state.get("adaptive_state") or [state["adaptive_trigger"]]
            adversary.adaptive.state = list(saved)
        if self.guard is not None:
            self.guard.state = GateState(state["quarantined_until"])
            self.guard.shard_sizes = dict(state["shard_sizes"])
            self.guard.flagged_by_round = dict(state["flagged_by_round"])
        if self.privacy is not None:
            events = state["privacy_events"].items()
            self.privacy.ledger._events = defaultdict(
                list, {p: [RoundEvent(**e) for e in es] for p, es in events}
            )
            self.privacy.rounds = int(state["privacy_rounds"])


class ResumedStrategy(Strategy):
    """``inner`` with Flower's round counter shifted: Flower's round 1 is round ``after + 1``.

    Flower's ``Strategy.start`` always counts rounds from 1 and evaluates round 0 first; a
    resumed run runs ``rounds - after`` rounds through this wrapper, and its ``evaluate_fn``
    (:meth:`evaluate_fn`) skips Flower's round 0, which the first run already recorded.
    """

    def __init__(self, inner: Strategy, after: int) -> None:
        self.inner, self.after = inner, after

    def summary(self) -> None:
        """Flower logs this at start; the inner strategy's says it all."""
        self.inner.summary()

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """The inner strategy's messages for round ``after + server_round``."""
        return self.inner.configure_train(server_round + self.after, arrays, config, grid)

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """The inner strategy's aggregation of round ``after + server_round``."""
        return self.inner.aggregate_train(server_round + self.after, replies)

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """Federated evaluation of the shifted round (fedshield evaluates centrally)."""
        return self.inner.configure_evaluate(server_round + self.after, arrays, config, grid)

    def aggregate_evaluate(
        self, server_round: int, replies: Iterable[Message]
    ) -> MetricRecord | None:
        """Aggregated federated evaluation of the shifted round."""
        return self.inner.aggregate_evaluate(server_round + self.after, replies)

    def evaluate_fn(
        self, evaluate: Callable[[int, ArrayRecord], MetricRecord]
    ) -> Callable[[int, ArrayRecord], MetricRecord | None]:
        """``evaluate`` on the shifted round; nothing for Flower's round 0 (already recorded)."""

        def shifted(server_round: int, arrays: ArrayRecord) -> MetricRecord | None:
            return None if server_round == 0 else evaluate(server_round + self.after, arrays)

        return shifted


def start_rounds(
    runner: Strategy,
    grid: Grid,
    weights: list[NDArray[np.float32]],
    evaluate: Callable[[int, ArrayRecord], MetricRecord],
    state: RunState,
    resume: ResumePoint | None,
) -> Result:
    """Flower's ``start`` from the initial ``weights``, or after ``resume`` from its state."""
    scenario = state.strategy.scenario
    timeout = scenario.simulation.round_timeout
    if resume is None:
        return runner.start(
            grid,
            ArrayRecord(weights),
            num_rounds=scenario.rounds,
            timeout=timeout,
            evaluate_fn=evaluate,
        )
    state.restore(resume)
    shifted = ResumedStrategy(runner, resume.server_round)
    return shifted.start(
        grid,
        ArrayRecord(resume.weights),
        num_rounds=scenario.rounds - resume.server_round,
        timeout=timeout,
        evaluate_fn=shifted.evaluate_fn(evaluate),
    )
