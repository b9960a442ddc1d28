"""Hash-chained run ledger: one JSONL entry and one checkpoint per round, round 0 included.

Layout of a run directory::

    ledger.jsonl                  one entry per line, rounds 0, 1, 2, ... in order
    checkpoints/round_0000.npz    global weights after round r (round 0: initial weights)

An entry is the canonical JSON (sorted keys, no whitespace, ASCII, no NaN) of::

    {"format": "fedshield-ledger/v1", "round": r, "prev_hash": H(r-1) or 64 zeros,
     "global_digest": digest_arrays(global), "checkpoint": "checkpoints/round_rrrr.npz",
     "checkpoint_sha256": SHA-256 of the .npz file, "aggregator": name,
     "aggregator_params": {...}, "accepted": {"<partition>": update digest, ...},
     "verdicts": [{"partition_id": p, "decision": d, "reasons": [...]}, ...]}

plus ``"entry_hash": H(r) = SHA-256(canonical JSON of the entry above)``. ``verdicts`` lists the
replies that were not plainly accepted (flagged, rejected, quarantined). Because ``H(r)`` covers
``H(r-1)``, changing any past entry breaks every later link; changing a checkpoint breaks its
entry's ``checkpoint_sha256``. Truncating the tail is the one edit a chain cannot reveal on its
own: publish :attr:`VerifyReport.head_hash` (e.g. in the run's final metrics) to pin it.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from common.crypto.digest import digest_arrays
from common.errors import IntegrityError
from common.results import append_line
from server.integrity.checkpoint import file_sha256, load_checkpoint, save_checkpoint
from server.integrity.gate import Verdict

LEDGER_FILE = "ledger.jsonl"
CHECKPOINT_DIR = "checkpoints"
FORMAT = "fedshield-ledger/v1"
GENESIS_HASH = "0" * 64


def _canonical(document: Mapping[str, Any]) -> str:
    return json.dumps(
        document, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    )


def _entry_hash(content: Mapping[str, Any]) -> str:
    return hashlib.sha256(_canonical(content).encode("ascii")).hexdigest()


def checkpoint_name(server_round: int) -> str:
    """Path of a round's checkpoint, relative to the run directory."""
    return f"{CHECKPOINT_DIR}/round_{server_round:04d}.npz"


class RunLedger:
    """Appends one hash-chained entry per round to ``run_dir/ledger.jsonl``.

    Opening an existing run resumes its chain; rounds must then continue where it stopped.
    """

    def __init__(self, run_dir: str | os.PathLike[str]) -> None:
        self.run_dir = Path(run_dir)
        self._path = self.run_dir / LEDGER_FILE
        self._prev_hash = GENESIS_HASH
        self._next_round = 0
        if self._path.exists():
            lines = self._path.read_text(encoding="ascii").splitlines()
            if lines:
                try:
                    last = json.loads(lines[-1])
                    self._prev_hash = str(last["entry_hash"])
                    self._next_round = int(last["round"]) + 1
                except (ValueError, KeyError, TypeError) as err:
                    raise IntegrityError(
                        f"{self._path}: last entry unreadable ({err}); run verify_run first"
                    ) from None

    def record_round(
        self,
        server_round: int,
        *,
        global_arrays: Sequence[NDArray[np.generic]],
        aggregator: str,
        aggregator_params: Mapping[str, Any],
        accepted_digests: Mapping[int, str],
        verdicts: Sequence[Verdict],
    ) -> str:
        """Write round ``server_round``'s checkpoint, then its ledger entry; return its hash.

        Both writes are atomic. A crash between them leaves a checkpoint with no entry, which
        the rerun of that round overwrites.
        """
        if server_round != self._next_round:
            raise IntegrityError(
                f"server_round: got {server_round}; the ledger expects round {self._next_round}"
            )
        checkpoint = checkpoint_name(server_round)
        save_checkpoint(self.run_dir / checkpoint, global_arrays)
        content = {
            "format": FORMAT,
            "round": server_round,
            "prev_hash": self._prev_hash,
            "global_digest": digest_arrays(global_arrays),
            "checkpoint": checkpoint,
            "checkpoint_sha256": file_sha256(self.run_dir / checkpoint),
            "aggregator": aggregator,
            "aggregator_params": dict(aggregator_params),
            "accepted": {str(partition): digest for partition, digest in accepted_digests.items()},
            "verdicts": [
                {"partition_id": v.partition_id, "decision": v.decision, "reasons": list(v.reasons)}
                for v in verdicts
                if v.decision != "accepted"
            ],
        }
        entry_hash = _entry_hash(content)
        append_line(self._path, _canonical({**content, "entry_hash": entry_hash}))
        self._prev_hash = entry_hash
        self._next_round = server_round + 1
        return entry_hash


@dataclass(frozen=True)
class VerifyReport:
    """Outcome of :func:`verify_run`; ``first_bad_round`` is None when ``ok``."""

    ok: bool
    first_bad_round: int | None
    reason: str
    rounds: int = 0
    head_hash: str | None = None


def _entry_problem(line: str, expected_round: int, prev_hash: str, run_dir: Path) -> str | None:
    """Why the ledger line of ``expected_round`` is not valid, or None when it is."""
    try:
        entry = json.loads(line)
    except json.JSONDecodeError:
        return "entry is not valid JSON"
    if not isinstance(entry, dict) or _canonical(entry) != line:
        # Every byte is significant: a JSON-equivalent rewrite is still an edit.
        return "entry is not in canonical form"
    content = {key: value for key, value in entry.items() if key != "entry_hash"}
    if entry.get("entry_hash") != _entry_hash(content):
        return "entry hash does not match its content"
    if content.get("round") != expected_round:
        return f"entry claims round {content.get('round')!r}"
    if content.get("prev_hash") != prev_hash:
        return "prev_hash does not match the previous entry"
    checkpoint = run_dir / str(content.get("checkpoint"))
    if content.get("checkpoint") != checkpoint_name(expected_round) or not checkpoint.is_file():
        return f"checkpoint {content.get('checkpoint')!r} is missing"
    if file_sha256(checkpoint) != content.get("checkpoint_sha256"):
        return "checkpoint file digest does not match the entry"
    try:
        arrays = load_checkpoint(checkpoint)
    except (OSError, ValueError, IntegrityError) as err:
        return f"checkpoint cannot be read: {err}"
    if digest_arrays(arrays) != content.get("global_digest"):
        return "checkpoint weights do not match the global digest"
    return None


def verify_run(run_dir: str | os.PathLike[str]) -> VerifyReport:
    """Recompute the whole chain and every checkpoint digest; name the first bad round."""
    root = Path(run_dir)
    path = root / LEDGER_FILE
    if not path.is_file():
        return VerifyReport(False, None, f"{path} does not exist")
    # A non-ASCII byte becomes U+FFFD, which then fails the canonical-form check of its line.
    lines = path.read_bytes().decode("ascii", errors="replace").split("\n")
    if lines[-1] != "":
        return VerifyReport(False, len(lines) - 1, "ledger does not end with a newline")
    prev_hash = GENESIS_HASH
    for server_round, line in enumerate(lines[:-1]):
        problem = _entry_problem(line, server_round, prev_hash, root)
        if problem is not None:
            return VerifyReport(False, server_round, f"round {server_round}: {problem}")
        prev_hash = json.loads(line)["entry_hash"]
    rounds = len(lines) - 1
    if rounds == 0:
        return VerifyReport(False, None, "ledger is empty")
    return VerifyReport(True, None, f"{rounds} rounds verified", rounds, prev_hash)
