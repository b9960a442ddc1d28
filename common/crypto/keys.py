"""Which key each side of a run uses: derived from the seed (simulation) or read from files.

With ``IntegrityConfig.keys_dir`` unset, keys come from :meth:`KeyPair.from_seed` with the
scenario seed, so a simulation needs no files, and **protects nothing**: the seed travels in
the clear inside every train message's scenario JSON and sits in ``scenario.json``, so anyone
who has seen one message or the run directory can sign as the server or as any client. The run
says so on its first line and in ``summary.json`` (:func:`key_source`). With ``keys_dir`` set,
the server reads ``server_0000.key`` and ``client_{p:04d}.pub``; client ``p`` reads
``client_{p:04d}.key``; the server's public key is ``server_0000.pub`` (the names written by
:meth:`KeyPair.save` and :func:`generate_keys`).

A client must not learn from the message it verifies whether to verify it or with which key:
a network attacker would set ``integrity.enabled = false`` or point ``keys_dir`` at its own
keys. Its trust anchor is local (:class:`ClientTrust`, read from the ``FEDSHIELD_CLIENT_TRUST``
environment variable, which the runner sets before Ray starts its workers; a deployed
SuperNode sets it in its own environment).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from common.crypto.keyfiles import private_mode_problem
from common.crypto.signing import KeyPair, PublicKey, key_name, load_public
from common.errors import ConfigError, IntegrityError
from common.integrity_config import IntegrityConfig

SERVER_ROLE = "server"
CLIENT_ROLE = "client"
TRUST_ENV = "FEDSHIELD_CLIENT_TRUST"
SEED_DERIVED = "seed-derived (no protection)"


def _own_key(config: IntegrityConfig, run_seed: int, role: str, index: int) -> KeyPair:
    if config.keys_dir is None:
        return KeyPair.from_seed(run_seed, role, index)
    return KeyPair.load(Path(config.keys_dir) / f"{key_name(role, index)}.key")


def _public_key(config: IntegrityConfig, run_seed: int, role: str, index: int) -> PublicKey:
    if config.keys_dir is None:
        return KeyPair.from_seed(run_seed, role, index).public_key
    return load_public(Path(config.keys_dir) / f"{key_name(role, index)}.pub")


def server_key(config: IntegrityConfig, *, run_seed: int) -> KeyPair:
    """The server's signing key (ServerApp)."""
    return _own_key(config, run_seed, SERVER_ROLE, 0)


def server_public_key(config: IntegrityConfig, *, run_seed: int) -> PublicKey:
    """What a client verifies train messages with, and ``verify`` checks the ledger with."""
    return _public_key(config, run_seed, SERVER_ROLE, 0)


def client_key(config: IntegrityConfig, *, run_seed: int, partition_id: int) -> KeyPair:
    """Client ``partition_id``'s signing key (ClientApp)."""
    return _own_key(config, run_seed, CLIENT_ROLE, partition_id)


def client_public_keys(
    config: IntegrityConfig, *, run_seed: int, partition_ids: Iterable[int]
) -> dict[int, PublicKey]:
    """Partition -> public key, the ``public_keys`` argument of ``run_gate`` (ServerApp)."""
    return {p: _public_key(config, run_seed, CLIENT_ROLE, p) for p in partition_ids}


def key_source(config: IntegrityConfig) -> str:
    """Where the run's keys come from, as ``summary.json`` and the first line of a run say."""
    return SEED_DERIVED if config.keys_dir is None else f"files in {config.keys_dir}"


def generate_keys(directory: str | os.PathLike[str], *, num_clients: int) -> list[Path]:
    """Fresh random keys (OS entropy): the server's pair and one pair per client.

    Private keys are written 0600 (also over an existing file); a symlink in the way is
    refused. Returns the written paths, server first.
    """
    if num_clients < 1:
        raise ConfigError(f"--clients: got {num_clients}; must be >= 1")
    pairs = [KeyPair.generate(SERVER_ROLE, 0)]
    pairs += [KeyPair.generate(CLIENT_ROLE, p) for p in range(num_clients)]
    return [path for pair in pairs for path in pair.save(directory)]


def key_files_problem(config: IntegrityConfig, *, num_clients: int) -> str | None:
    """Why the key files a run needs are unusable (missing, too open), or None; for validate."""
    if not config.enabled or config.keys_dir is None:
        return None
    directory = Path(config.keys_dir)
    private = [key_name(SERVER_ROLE, 0)] + [key_name(CLIENT_ROLE, p) for p in range(num_clients)]
    for name in private:
        if (problem := private_mode_problem(directory / f"{name}.key")) is not None:
            return f"integrity.keys_dir: {problem}"
        if not (directory / f"{name}.pub").is_file():
            return f"integrity.keys_dir: {directory / f'{name}.pub'}: no such key file"
    return None


@dataclass(frozen=True)
class ClientTrust:
    """What a client trusts from its own machine, never from the message it checks."""

    signed: bool
    """Refuse any train message that does not carry a valid server signature."""
    keys_dir: str | None
    """Directory of ``server_0000.pub``; ``None``: the seed-derived key of ``run_seed``."""
    run_seed: int

    @classmethod
    def of(cls, config: IntegrityConfig, run_seed: int) -> ClientTrust:
        """The trust a run's own scenario asks for (what the runner hands its clients)."""
        return cls(signed=config.enabled, keys_dir=config.keys_dir, run_seed=run_seed)

    def environment(self) -> dict[str, str]:
        """``{TRUST_ENV: json}``, to set before the client processes start."""
        fields = {"signed": self.signed, "keys_dir": self.keys_dir, "run_seed": self.run_seed}
        return {TRUST_ENV: json.dumps(fields, sort_keys=True)}

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> ClientTrust | None:
        """The trust set in ``environ``; None when unset (a client used outside a run)."""
        raw = environ.get(TRUST_ENV)
        if raw is None:
            return None
        try:
            fields = json.loads(raw)
            return cls(bool(fields["signed"]), fields["keys_dir"], int(fields["run_seed"]))
        except (ValueError, KeyError, TypeError):
            raise IntegrityError(f"{TRUST_ENV}: got {raw[:80]!r}; not a client trust") from None

    def server_public_key(self) -> PublicKey:
        """The key train messages must be signed with."""
        config = IntegrityConfig(enabled=self.signed, keys_dir=self.keys_dir)
        return server_public_key(config, run_seed=self.run_seed)
