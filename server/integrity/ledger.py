"""Signed, hash-chained run ledger: one JSONL entry and one checkpoint per round, round 0 included.

Layout of a run directory::

    ledger.jsonl                  one entry per line, rounds 0, 1, 2, ... in order
    checkpoints/round_0000.npz    global weights after round r (round 0: initial weights)
    summary.json                  "integrity": the signed head (where the chain ends)

An entry is the canonical JSON (sorted keys, no whitespace, ASCII, no NaN) of::

    {"format": "fedshield-ledger/v2", "run": name of the run directory, "round": r,
     "prev_hash": H(r-1) or 64 zeros, "global_digest": digest_arrays(global),
     "checkpoint": "checkpoints/round_rrrr.npz", "checkpoint_sha256": SHA-256 of the .npz file,
     "aggregator": name, "aggregator_params": {...},
     "accepted": {"<partition>": update digest, ...},
     "verdicts": [{"partition_id": p, "decision": d, "reasons": [...]}, ...],
     "scenario_sha256": SHA-256 of scenario.json or null (round 0 only)}

plus ``"entry_hash": H(r) = SHA-256(canonical JSON of the entry above)`` and ``"signature"``,
the server's Ed25519 signature over ``H(r)`` (hex; ``common.crypto.ledger_signing``).
``verdicts`` lists the replies that were not plainly accepted. Because ``H(r)`` covers
``H(r-1)``, changing a past entry breaks every later link; without the server's key nobody can
re-sign a rewritten chain; the head (:meth:`RunLedger.head`, signed into ``summary.json`` at the
end of the run) pins where the chain ends, so cutting off its last entries is detected too;
``run`` ties every entry to its run directory, so another run's ledger (signed by the same
key) does not verify in its place. ``ledger_verify.verify_run`` checks all of it.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from common.crypto.digest import digest_arrays
from common.crypto.ledger_signing import sign_ledger_entry, sign_ledger_head
from common.crypto.signing import KeyPair
from common.errors import IntegrityError
from common.results import append_line
from server.integrity.checkpoint import file_sha256, save_checkpoint
from server.integrity.gate import Verdict

LEDGER_FILE = "ledger.jsonl"
SCENARIO_FILE = "scenario.json"
CHECKPOINT_DIR = "checkpoints"
FORMAT = "fedshield-ledger/v2"
GENESIS_HASH = "0" * 64
MAX_LINE_BYTES = 8 * 2**20
"""Longest ledger line written or read (8 MiB: about 50,000 clients' digests and verdicts in
one round). The verifier reads no more than this per line, so its memory stays bounded."""


def canonical(document: Mapping[str, Any]) -> str:
    """Sorted keys, no whitespace, ASCII, no NaN: the one serialisation an entry may have."""
    return json.dumps(
        document, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    )


def entry_hash(content: Mapping[str, Any]) -> str:
    """``H(r)``: SHA-256 of the canonical JSON of an entry without its hash and signature."""
    return hashlib.sha256(canonical(content).encode("ascii")).hexdigest()


def checkpoint_name(server_round: int) -> str:
    """Path of a round's checkpoint, relative to the run directory."""
    return f"{CHECKPOINT_DIR}/round_{server_round:04d}.npz"


def run_name(run_dir: str | os.PathLike[str]) -> str:
    """The run's identity in its ledger: the name of its directory."""
    return Path(run_dir).resolve().name


def _scenario_sha256(run_dir: Path) -> str | None:
    path = run_dir / SCENARIO_FILE
    return file_sha256(path) if path.is_file() else None


class RunLedger:
    """Appends one signed, hash-chained entry per round to ``run_dir/ledger.jsonl``.

    Opening an existing run resumes its chain; rounds must then continue where it stopped.
    """

    def __init__(self, run_dir: str | os.PathLike[str], *, key: KeyPair) -> None:
        self.run_dir = Path(run_dir)
        self.run = run_name(run_dir)
        self._key = key
        self._path = self.run_dir / LEDGER_FILE
        self._prev_hash = GENESIS_HASH
        self._next_round = 0
        if self._path.exists():
            with self._path.open("rb") as handle:
                lines = handle.read().splitlines()
            if lines:
                try:
                    last = json.loads(lines[-1])
                    self._prev_hash = str(last["entry_hash"])
                    self._next_round = int(last["round"]) + 1
                except (ValueError, KeyError, TypeError, RecursionError) as err:
                    raise IntegrityError(
                        f"{self._path}: last entry unreadable ({err}); run fedshield verify first"
                    ) from None

    @property
    def rounds(self) -> int:
        """Entries written so far (rounds 0 .. rounds - 1)."""
        return self._next_round

    def head(self) -> dict[str, Any]:
        """Where the chain ends, signed: what ``summary.json`` records for ``verify``."""
        signature = sign_ledger_head(
            self._key, run=self.run, rounds=self._next_round, head_hash=self._prev_hash
        )
        return {
            "ledger_run": self.run,
            "ledger_rounds": self._next_round,
            "ledger_head_hash": self._prev_hash,
            "ledger_head_signature": signature.hex(),
        }

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
        """Write round ``server_round``'s checkpoint, then its signed entry; return its hash.

        Both writes are atomic. A crash between them leaves a checkpoint with no entry, which
        the rerun of that round overwrites.
        """
        if server_round != self._next_round:
            raise IntegrityError(
                f"server_round: got {server_round}; the ledger expects round {self._next_round}"
            )
        checkpoint = checkpoint_name(server_round)
        save_checkpoint(self.run_dir / checkpoint, global_arrays)
        content: dict[str, Any] = {
            "format": FORMAT,
            "run": self.run,
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
        if server_round == 0:
            content["scenario_sha256"] = _scenario_sha256(self.run_dir)
        digest = entry_hash(content)
        signature = sign_ledger_entry(self._key, digest).hex()
        line = canonical({**content, "entry_hash": digest, "signature": signature})
        if len(line) + 1 > MAX_LINE_BYTES:
            raise IntegrityError(
                f"ledger round {server_round}: entry of {len(line)} bytes exceeds the "
                f"{MAX_LINE_BYTES}-byte line limit that verify reads"
            )
        append_line(self._path, line)
        self._prev_hash = digest
        self._next_round = server_round + 1
        return digest
