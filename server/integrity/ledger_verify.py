"""``fedshield verify``: check a run's ledger, checkpoints and signed head against the server key.

Adversary: a storage attacker who can rewrite every file of a run directory but does not hold
the server's private key. Trusted: the server key given with ``--server-key`` (else the one the
run's ``scenario.json`` names, which that attacker could have swapped too: the output says which
was used), SHA-256 and Ed25519. Every entry must hash, chain and verify under that key; every
checkpoint must match its entry; ``summary.json``'s signed head must say that the chain ends
where it does. The answer is one of three:

* ``ok``: every check passed;
* ``tampered`` (exit 1): the input was read and something differs from what the key signed; the
  reason names the first bad round (or ``summary.json``);
* ``unreadable`` (exit 2): the verifier refuses to read the input, so it cannot conclude: a line
  longer than :data:`MAX_LINE_BYTES`, JSON nested deeper than Python's parser allows, an integer
  over 20 digits, a checkpoint NumPy or ``zipfile`` cannot open, a missing run directory.

Memory stays bounded: a line is read at most :data:`MAX_LINE_BYTES` + 1 bytes at a time, one
line and one checkpoint at a time (a 200 MB line costs 8 MiB, not the 836 MB measured before).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from common.crypto.digest import digest_arrays, is_hex_digest
from common.crypto.keys import key_source, server_public_key
from common.crypto.ledger_signing import verify_ledger_entry, verify_ledger_head
from common.crypto.signing import PublicKey
from common.integrity_config import IntegrityConfig
from server.integrity.checkpoint import UnreadableCheckpoint, file_sha256, load_checkpoint
from server.integrity.ledger import (
    FORMAT,
    GENESIS_HASH,
    LEDGER_FILE,
    MAX_LINE_BYTES,
    SCENARIO_FILE,
    canonical,
    checkpoint_name,
    entry_hash,
    run_name,
)

SUMMARY_FILE = "summary.json"
MAX_FILE_BYTES = 64 * 2**20
"""Largest ``summary.json`` or ``scenario.json`` read (64 MiB)."""
_MAX_INT_DIGITS = 20  # a u64 has 20; nothing fedshield writes needs more


class Unreadable(Exception):
    """The verifier will not read this input (a limit was exceeded, or it cannot be parsed)."""


@dataclass(frozen=True)
class VerifyReport:
    """Outcome of :func:`verify_run`; ``first_bad_round`` is None when the ledger is fine."""

    status: Literal["ok", "tampered", "unreadable"]
    reason: str
    first_bad_round: int | None = None
    rounds: int = 0
    head_hash: str | None = None

    @property
    def ok(self) -> bool:
        """True when every check passed."""
        return self.status == "ok"


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > _MAX_INT_DIGITS:
        raise Unreadable(f"a number with {len(text.lstrip('-'))} digits")
    return int(text)


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def loads_bounded(text: str | bytes) -> Any:
    """``json.loads`` that refuses what fedshield never writes; a ValueError means bad JSON."""
    try:
        return json.loads(text, parse_int=_parse_int, parse_constant=_no_constant)
    except RecursionError:
        raise Unreadable("JSON nested deeper than the parser allows") from None


def read_json_file(path: Path, *, max_bytes: int = MAX_FILE_BYTES) -> Any:
    """A small JSON file, refused unread beyond ``max_bytes``; ValueError means bad JSON."""
    with path.open("rb") as handle:
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise Unreadable(f"{path.name} is larger than {max_bytes} bytes")
    return loads_bounded(data)


def run_server_key(run_dir: str | os.PathLike[str]) -> tuple[PublicKey, str]:
    """The server key the run's own ``scenario.json`` names, and where it came from."""
    path = Path(run_dir) / SCENARIO_FILE
    try:
        scenario = read_json_file(path)
        config = IntegrityConfig.model_validate(scenario.get("integrity", {}))
        seed = int(scenario["seed"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise Unreadable(f"{path}: cannot find the server key there ({err})") from None
    if config.keys_dir is None:
        where = "seed-derived from scenario.json: anyone with the seed could have signed"
    else:
        where = f"{key_source(config)} named by scenario.json; pin it with --server-key"
    return server_public_key(config, run_seed=seed), where


def _content_problem(entry: dict[str, Any], server_round: int, prev: str, run: str) -> str | None:
    """Why the fields of a hash-valid, signed entry do not fit its place in the chain."""
    if entry.get("format") != FORMAT:
        return f"entry format {entry.get('format')!r}, expected {FORMAT!r}"
    if entry.get("run") != run:
        return f"entry belongs to run {entry.get('run')!r}, not {run!r}"
    if entry.get("round") != server_round:
        return f"entry claims round {entry.get('round')!r}"
    if entry.get("prev_hash") != prev:
        return "prev_hash does not match the previous entry"
    return None


def _files_problem(entry: dict[str, Any], server_round: int, root: Path) -> str | None:
    """Why the checkpoint (and, at round 0, scenario.json) differ from the entry."""
    checkpoint = root / checkpoint_name(server_round)
    if entry.get("checkpoint") != checkpoint_name(server_round) or not checkpoint.is_file():
        return f"checkpoint {entry.get('checkpoint')!r} is missing"
    if file_sha256(checkpoint) != entry.get("checkpoint_sha256"):
        return "checkpoint file digest does not match the entry"
    if digest_arrays(load_checkpoint(checkpoint)) != entry.get("global_digest"):
        return "checkpoint weights do not match the global digest"
    expected = entry.get("scenario_sha256") if server_round == 0 else None
    scenario = root / SCENARIO_FILE
    if expected is not None and (not scenario.is_file() or file_sha256(scenario) != expected):
        return "scenario.json differs from the one the run started with"
    return None


def _entry_problem(
    line: bytes, server_round: int, prev: str, root: Path, key: PublicKey
) -> tuple[str | None, str]:
    """(why the line of ``server_round`` is not valid or None, its entry hash)."""
    try:
        text = line.decode("ascii")
        entry = loads_bounded(text)
    except (UnicodeDecodeError, ValueError):
        return "entry is not valid ASCII JSON", ""
    if not isinstance(entry, dict) or canonical(entry) != text:
        # Every byte is significant: a JSON-equivalent rewrite is still an edit.
        return "entry is not in canonical form", ""
    content = {k: v for k, v in entry.items() if k not in ("entry_hash", "signature")}
    digest = entry_hash(content)
    if entry.get("entry_hash") != digest:
        return "entry hash does not match its content", ""
    signature = entry.get("signature")
    if not (
        isinstance(signature, str)
        and len(signature) == 128
        and is_hex_digest(signature[:64])
        and is_hex_digest(signature[64:])
        and verify_ledger_entry(key, digest, bytes.fromhex(signature))
    ):
        return "entry signature does not verify with the server key", ""
    problem = _content_problem(content, server_round, prev, run_name(root))
    return (problem or _files_problem(content, server_round, root)), digest


def _chain(root: Path, key: PublicKey, max_line_bytes: int) -> VerifyReport:
    """Every entry of the ledger, in order; stops at the first bad one."""
    prev, server_round = GENESIS_HASH, 0
    with (root / LEDGER_FILE).open("rb") as handle:
        while line := handle.readline(max_line_bytes + 1):
            if not line.endswith(b"\n"):
                if len(line) > max_line_bytes:
                    raise Unreadable(f"round {server_round}: line longer than {max_line_bytes} B")
                return VerifyReport("tampered", "ledger does not end with a newline", server_round)
            try:
                problem, prev = _entry_problem(line[:-1], server_round, prev, root, key)
            except (Unreadable, UnreadableCheckpoint) as err:
                raise Unreadable(f"round {server_round}: {err}") from None
            if problem is not None:
                return VerifyReport("tampered", problem, server_round)
            server_round += 1
    if server_round == 0:
        return VerifyReport("tampered", "ledger is empty", 0)
    return VerifyReport("ok", f"{server_round} rounds verified", None, server_round, prev)


def _head_problem(chain: VerifyReport, root: Path, key: PublicKey) -> VerifyReport | None:
    """The chain against summary.json's signed head: truncated, extended or swapped."""
    path = root / SUMMARY_FILE
    if not path.is_file():
        return VerifyReport("tampered", "summary.json is missing: nothing signs the chain's end")
    try:
        head = read_json_file(path)["integrity"]
        run, rounds = str(head["ledger_run"]), int(head["ledger_rounds"])
        head_hash, signature = str(head["ledger_head_hash"]), str(head["ledger_head_signature"])
        signed = bytes.fromhex(signature)
    except (ValueError, KeyError, TypeError):
        return VerifyReport("tampered", "summary.json has no readable signed ledger head")
    if not verify_ledger_head(
        key, run=run_name(root), rounds=rounds, head_hash=head_hash, signature=signed
    ) or run != run_name(root):
        return VerifyReport("tampered", "summary.json's ledger head signature does not verify")
    if chain.rounds < rounds:
        reason = f"missing: summary.json's signed head has {rounds} rounds (ledger truncated)"
        return VerifyReport("tampered", reason, chain.rounds)
    if chain.rounds > rounds:
        return VerifyReport("tampered", f"after the signed head ({rounds} rounds)", rounds)
    if chain.head_hash != head_hash:
        return VerifyReport("tampered", "entry hash differs from the signed head", rounds - 1)
    return None


def verify_run(
    run_dir: str | os.PathLike[str],
    public_key: PublicKey,
    *,
    max_line_bytes: int = MAX_LINE_BYTES,
    check_head: bool = True,
) -> VerifyReport:
    """Check the whole run under ``public_key``; name the first bad round (module docstring).

    ``check_head=False`` skips ``summary.json`` (the server's own check before writing it).
    """
    root = Path(run_dir)
    if not (root / LEDGER_FILE).is_file():
        return VerifyReport("unreadable", f"{root / LEDGER_FILE} does not exist")
    try:
        chain = _chain(root, public_key, max_line_bytes)
        if not chain.ok or not check_head:
            return chain
        return _head_problem(chain, root, public_key) or chain
    except (Unreadable, UnreadableCheckpoint, OSError) as err:
        return VerifyReport("unreadable", str(err))
