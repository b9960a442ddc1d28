"""Checks of the host a run will use, before Ray starts: output directory, key files, GPUs.

A run that starts and then fails on one of these wastes the Ray start-up and leaves a traceback
(a missing ``.pub`` was measured failing after 59 s); here each fails in one line.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

from common.errors import ConfigError, FedshieldError
from common.schema import Scenario
from scenarios.resources import check_memory


def check_environment(scenario: Scenario, *, local_gpus: bool = True) -> None:
    """Every host resource the scenario needs: a writable output directory, every key file
    when ``integrity.keys_dir`` is set, a GPU when ``simulation.num_gpus > 0`` and the clients
    run on this host (``local_gpus``; a Ray cluster's GPUs are on its nodes), and, on this host
    too, the memory the concurrent client actors need (:mod:`scenarios.resources`)."""
    check_output(scenario.output)
    if scenario.integrity.enabled and scenario.integrity.keys_dir is not None:
        check_keys(scenario)
    if local_gpus and scenario.simulation.num_gpus > 0:
        check_gpus(scenario.simulation.num_gpus)
    if local_gpus:  # a cluster's actors live in its nodes' memory, not this host's
        check_memory(scenario)


def check_output(output: str) -> None:
    """``output`` is, or can be created as, a directory fedshield can write run directories in.

    The nearest existing ancestor must be a directory, and a probe directory is created and
    removed in it: permission bits alone do not say that ``/proc`` or a read-only mount refuses.
    """
    path = Path(output).expanduser()
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        what = "is a file" if existing == path else f"is under {str(existing)!r}, a file"
        raise ConfigError(f"output: got {output!r}; {what}, not a directory")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".fedshield-probe-", dir=existing))
    except OSError as err:
        raise ConfigError(
            f"output: got {output!r}; cannot create a directory in {str(existing)!r} "
            f"({err.strerror}): choose a writable directory"
        ) from None


def _key_loads(scenario: Scenario) -> Iterator[tuple[str, Callable[[], object]]]:
    """(file name, load) for every key file a run reads, with the loaders the run uses."""
    from common.crypto.keys import client_key, client_public_keys, server_key, server_public_key
    from common.crypto.signing import key_name

    config, seed = scenario.integrity, scenario.seed
    yield f"{key_name('server', 0)}.key", lambda: server_key(config, run_seed=seed)
    yield f"{key_name('server', 0)}.pub", lambda: server_public_key(config, run_seed=seed)
    for p in range(scenario.data.num_clients):
        name = key_name("client", p)
        yield f"{name}.key", partial(client_key, config, run_seed=seed, partition_id=p)
        yield f"{name}.pub", partial(client_public_keys, config, run_seed=seed, partition_ids=[p])


def check_keys(scenario: Scenario) -> None:
    """Open every key a run reads from ``integrity.keys_dir`` (a server's and each client's)."""
    keys_dir = scenario.integrity.keys_dir
    needed = (
        "it must hold server_0000.key/.pub and client_NNNN.key/.pub for every client 0 to "
        f"{scenario.data.num_clients - 1}, private keys readable by their owner only"
    )
    for name, load in _key_loads(scenario):
        try:
            load()
        except OSError as err:
            raise ConfigError(
                f"integrity.keys_dir: got {keys_dir!r}; cannot read {name} ({err.strerror}): "
                f"{needed}"
            ) from None
        except FedshieldError as err:  # the loaders' own one-line refusal (missing, PEM, mode)
            raise ConfigError(f"integrity.keys_dir: got {keys_dir!r}; {err}: {needed}") from None


def check_gpus(num_gpus: float) -> None:
    """``num_gpus`` per client needs that many GPUs that TensorFlow can see on this host.

    Without one Ray would never schedule a client and every round would wait for its timeout.
    """
    import tensorflow as tf

    visible = len(tf.config.list_physical_devices("GPU"))
    if num_gpus > visible:
        raise ConfigError(
            f"simulation.num_gpus: got {num_gpus}; this host has {visible} GPU(s) that "
            f"TensorFlow can see: set it to at most {visible}"
        )
