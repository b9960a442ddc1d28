"""Per-round metrics (``metrics.jsonl``), the console progress line, and the closing files.

Every file is written atomically (``common.results``): a crash after round k leaves k complete
lines and never a half-written one. Ground truth about who is malicious is used here, in the
metrics layer, and nowhere in the defense.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from common.results import append_jsonl, atomic_write_json, plot_accuracy, read_jsonl
from common.schema import Scenario
from server.durability import backdoor_durability
from server.monitoring import ClientLog
from server.round import RoundResult
from server.tensorboard_log import BoardWriter
from server.timing import rounded


class RunLog:
    """Writes one ``metrics.jsonl`` record and one progress line per evaluated round."""

    def __init__(
        self,
        run_dir: Path,
        scenario: Scenario,
        malicious: frozenset[int],
        stream: TextIO | None = None,
        warnings: TextIO | None = None,
    ) -> None:
        self.run_dir = run_dir
        self.scenario = scenario
        self.malicious = malicious
        # Resolved now, not at import: the process's streams may have been replaced since.
        self.stream = sys.stdout if stream is None else stream
        self.warnings = sys.stderr if warnings is None else warnings
        self.metrics_path = run_dir / "metrics.jsonl"
        self.clients = ClientLog(run_dir, malicious)
        self.started = time.perf_counter()
        self.board: BoardWriter | None = BoardWriter(run_dir)

    def record(
        self,
        server_round: int,
        evaluation: dict[str, float],
        result: RoundResult | None,
        extra: dict[str, Any],
        *,
        evaluate_seconds: float | None = None,
    ) -> dict[str, Any]:
        """Append the round's record and print its progress line; returns the record.

        ``time`` is the round's time split (``server/timing.py``): the result's steps plus
        ``evaluate_seconds``, the evaluation the caller timed.
        """
        row: dict[str, Any] = {"round": server_round, **evaluation}
        timing = {} if evaluate_seconds is None else {"evaluate": evaluate_seconds}
        if result is None:  # round 0: the initial global model
            row.update(num_replies=0, seconds=0.0)
        else:
            sampled_malicious = [p for p in result.sampled if p in self.malicious]
            row.update(
                num_sampled=len(result.sampled),
                sampled=list(result.sampled),
                sampled_malicious=sampled_malicious,
                malicious_sampled=len(sampled_malicious),
                num_replies=result.num_replies,
                num_failures=result.num_failures,
                failures={str(k): v for k, v in result.failures.items()},
                num_refused=len(result.refused),
                num_accepted=len(result.accepted),
                num_rejected=len(result.rejected),
                rejections={str(k): list(v) for k, v in result.rejected.items()},
                refusals={str(k): v for k, v in result.refused.items()},
                skipped=result.skipped,
                train_loss=result.train_loss,
                num_tampered=len(result.tampered),
                attack=dict(result.attack),
                seconds=round(time.perf_counter() - result.started, 4),
            )
            timing = {**result.timing, **timing}
        if timing:
            row["time"] = rounded(timing)
        row.update(extra)
        append_jsonl(self.metrics_path, row)
        if self.board is not None:
            self.board.write(row)
        if result is not None:
            self.clients.record(server_round, result)
        for partition, reason in row.get("failures", {}).items():
            print(
                f"warning: round {server_round}: client {partition} failed: {reason}",
                file=self.warnings,
                flush=True,
            )
        self._progress(row)
        return row

    def _progress(self, row: dict[str, Any]) -> None:
        parts = [f"round {row['round']:>3}/{self.scenario.rounds}", f"acc {row['accuracy']:.4f}"]
        loss = row["loss"]
        parts.append(f"loss {loss:.4f}" if math.isfinite(loss) else "loss nan")
        if "attack_success_rate" in row:
            parts.append(f"asr {row['attack_success_rate']:.4f}")
        if "robust_accuracy_pgd" in row:
            parts.append(f"pgd {row['robust_accuracy_pgd']:.4f}")
        if row["round"] > 0:
            parts.append(f"replies {row['num_replies']}/{row['num_sampled']}")
            if row["num_failures"]:
                parts.append(f"failed {row['num_failures']}")
            if row["num_rejected"] or row["num_refused"]:
                parts.append(f"rejected {row['num_rejected']} refused {row['num_refused']}")
            if row["skipped"]:
                parts.append(f"SKIPPED ({row['skipped']})")
            parts.append(f"{row['seconds']:.1f}s")
        epsilon = row.get("epsilon_max")
        if epsilon is not None:  # a seed-derived noise voids it (server.privacy.EPSILON_VOID)
            parts.append(f"eps {epsilon:.2f}" + (" VOID(seed)" if row.get("epsilon_void") else ""))
        print("  ".join(parts), file=self.stream, flush=True)

    def finish(self, summary: dict[str, Any], status: str = "finished") -> dict[str, Any]:
        """Write ``summary.json`` and ``accuracy.png`` from the recorded rounds.

        ``status`` is ``"finished"`` after the last round, ``"interrupted"`` when the run was
        stopped; ``last_round`` is the last round recorded in full either way. The TensorBoard
        event file is closed here.
        """
        if self.board is not None:
            self.board.close()
            self.board = None
        rows = read_jsonl(self.metrics_path) if self.metrics_path.exists() else []
        if not rows:  # stopped before the initial model was even evaluated
            return self._write({"status": status, "last_round": None, **summary}, rows)
        trained = [r for r in rows if r["round"] > 0] or rows
        best = max(trained, key=lambda r: r["accuracy"])
        summary = {
            "status": status,
            "last_round": rows[-1]["round"],
            "name": self.scenario.name,
            "seed": self.scenario.seed,
            "rounds": self.scenario.rounds,
            "final_accuracy": rows[-1]["accuracy"],
            "final_loss": rows[-1]["loss"],
            "best_accuracy": best["accuracy"],
            "best_round": best["round"],
            "wall_seconds": round(time.perf_counter() - self.started, 3),
            "malicious_clients": sorted(self.malicious),
            **summary,
        }
        for key in (
            "attack_success_rate",
            "attack_success_baseline",
            "attack_success_above_baseline",
            "robust_accuracy_fgsm",
            "robust_accuracy_pgd",
        ):
            if key in rows[-1]:
                summary[f"final_{key}"] = rows[-1][key]
        summary.update(backdoor_durability(rows, self.scenario.attack, self.scenario.seed))
        return self._write(summary, rows)

    def _write(self, summary: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
        atomic_write_json(self.run_dir / "summary.json", summary)
        if rows:
            plot_accuracy(rows, self.run_dir / "accuracy.png", title=self.scenario.name)
            self.clients.plot(self.scenario.name)
        return summary
