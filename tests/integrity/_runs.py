"""A run directory as the server leaves it: scenario.json, signed ledger, checkpoints, summary."""

from __future__ import annotations

from pathlib import Path

from common.crypto.signing import KeyPair
from common.results import atomic_write_json
from server.integrity.gate import Verdict
from server.integrity.ledger import RunLedger
from tests.integrity._builders import RUN_SEED, global_model

ROUNDS = 4  # rounds 0 (initial weights) .. 3
SERVER = KeyPair.from_seed(RUN_SEED, "server")


def record_rounds(ledger: RunLedger, rounds: range) -> None:
    """Rounds with a rejected client 1 and accepted clients 0 and 2 (round 0: none)."""
    for server_round in rounds:
        ledger.record_round(
            server_round,
            global_arrays=global_model(server_round),
            aggregator="krum",
            aggregator_params={"num_byzantine": 1, "multi": False},
            accepted_digests={} if server_round == 0 else {0: "ab" * 32, 2: "cd" * 32},
            verdicts=[Verdict(0, "accepted", ()), Verdict(1, "rejected", ("bad_signature",))],
        )


def write_run(run_dir: Path, *, rounds: int = ROUNDS, key: KeyPair = SERVER) -> RunLedger:
    """A finished run signed by ``key``, its scenario naming seed-derived keys of RUN_SEED."""
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(run_dir / "scenario.json", {"seed": RUN_SEED, "integrity": {"enabled": True}})
    ledger = RunLedger(run_dir, key=key)
    record_rounds(ledger, range(rounds))
    atomic_write_json(run_dir / "summary.json", {"integrity": ledger.head()})
    return ledger
