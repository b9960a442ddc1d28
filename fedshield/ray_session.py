"""A private local Ray instance per run, torn down with the run, and the signals that stop it.

Flower's Ray backend calls ``ray.init()`` only when Ray is not initialised yet
(``RayBackend.init_ray``), and a bare ``ray.init()`` joins any cluster it finds on the machine
(``ray start --head`` leaves a session file that it reads), where Flower's ``num_cpus`` is then
refused and Flower's engine waits forever. So the runner starts Ray itself, first:
``address="local"`` always starts a new instance (Ray ignores ``RAY_ADDRESS`` then), in a
private temporary directory that every Ray process of the run names on its command line.

Teardown, in every way the driver can end:

- normally or by a signal: ``ray.shutdown()``, then :func:`kill_session` sweeps whatever is left
  (Ray's dashboard and runtime-env agents are the raylet's children and survive it);
- SIGKILL of the driver: Ray's own fate sharing (``PR_SET_PDEATHSIG``) covers only the
  driver's direct children, so a watchdog process (``python -m fedshield.ray_session``), in its
  own session so the terminal's Ctrl-C does not reach it, waits for its parent to disappear and
  runs the same sweep.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from types import FrameType
from typing import Any

from common.errors import FedshieldError

ENGINE_BACKEND = "fedshield-ray"
"""The name under which :func:`register_watched_backend` registers Flower's Ray backend."""


def session_pids(temp_dir: Path) -> list[int]:
    """Processes (not this one) whose command line names ``temp_dir``: the run's Ray processes."""
    needle = str(temp_dir).encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return found


def kill_session(temp_dir: Path) -> None:
    """SIGKILL every process of the session until none is left (a few sweeps: agents respawn)."""
    for _ in range(20):
        pids = session_pids(temp_dir)
        if not pids:
            break
        for pid in pids:
            with suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)
    shutil.rmtree(temp_dir, ignore_errors=True)


def _start_watchdog(temp_dir: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "fedshield.ray_session", str(os.getpid()), str(temp_dir)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def first_line(err: BaseException) -> str:
    """The first line of ``err``'s message ("" when it has none), for a one-line report."""
    text = str(err).strip()
    return text.splitlines()[0] if text else ""


@contextmanager
def private_ray(init_args: dict[str, Any]) -> Iterator[Path]:
    """A new local Ray instance for the ``with`` block; yields its private temporary directory.

    ``init_args`` are ``ray.init`` keyword arguments (never ``address``). A failure to start is
    one :class:`FedshieldError`; nothing of the instance outlives the block.
    """
    import ray

    temp_dir = Path(tempfile.mkdtemp(prefix="fsray-"))
    watchdog = _start_watchdog(temp_dir)
    try:
        try:
            ray.init(
                address="local",
                _temp_dir=str(temp_dir),
                # As Flower's own ray.init: the workers import the project from the driver's path.
                runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(sys.path)}},
                **init_args,
            )
        except Exception as err:
            raise FedshieldError(
                f"could not start a local Ray instance: {type(err).__name__}: {first_line(err)}"
            ) from err
        yield temp_dir
    finally:
        try:
            ray.shutdown()
        except Exception:  # the sweep below ends whatever a failed shutdown left
            logging.getLogger(__name__).debug("ray.shutdown failed", exc_info=True)
        watchdog.kill()
        watchdog.wait()
        kill_session(temp_dir)


@contextmanager
def stop_on_signals(on_signal: Callable[[int], None]) -> Iterator[None]:
    """Route SIGINT and SIGTERM to ``on_signal(signum)`` (main thread), restored afterwards.

    Installed after ``ray.init``, which sets its own SIGTERM handler in the driver.
    """

    def handler(signum: int, frame: FrameType | None) -> None:
        del frame
        on_signal(signum)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def register_watched_backend(
    on_failure: Callable[[BaseException], None], pool_size: int | None = None
) -> str:
    """Register Flower's Ray backend, reporting a failure to set it up or build its actor pool.

    Flower's engine catches that failure, then waits for the ServerApp thread, which waits for
    replies that never come; ``on_failure`` lets the runner stop the ServerApp instead.
    ``pool_size`` caps the actor pool, which Flower sizes to the whole Ray instance
    (:func:`fedshield.sweep.plan.pool_share`). Returns the backend name to pass to
    ``run_simulation``.
    """
    from flwr.server.superlink.fleet.vce.backend import supported_backends
    from flwr.server.superlink.fleet.vce.backend.raybackend import RayBackend
    from flwr.simulation.ray_transport.ray_actor import BasicActorPool, ClientAppActor
    from ray.exceptions import RayActorError

    from fedshield.actor_pool import died, replace_dead

    class WatchedRayBackend(RayBackend):
        def __init__(self, backend_config: Any) -> None:
            try:
                super().__init__(backend_config)
            except BaseException as err:
                on_failure(err)
                raise

        def build(self, app_fn: Any) -> None:
            try:
                if pool_size is None:
                    super().build(app_fn)
                else:
                    self._build_capped(app_fn, pool_size)
            except BaseException as err:
                on_failure(err)
                raise

        def _build_capped(self, app_fn: Any, size: int) -> None:
            # Flower's RayBackend.build with the pool's capacity capped before it is filled.
            self.pool = BasicActorPool(
                actor_type=ClientAppActor,
                client_resources=self.client_resources,
                actor_kwargs=self.actor_kwargs,
            )
            self.pool.actors_capacity = min(self.pool.actors_capacity, size)
            self.pool.add_actors_to_pool(self.pool.actors_capacity)
            self.app_fn = app_fn

        def process_message(self, message: Any, context: Any) -> Any:
            try:
                return super().process_message(message, context)
            except RayActorError as err:  # fedshield/actor_pool.py: replace it, fail the client
                replace_dead(self.pool, err.actor_id)
                raise died(err) from None

    supported_backends[ENGINE_BACKEND] = WatchedRayBackend
    return ENGINE_BACKEND


def watch(parent: int, temp_dir: Path, poll: float = 0.2) -> None:
    """The watchdog: once ``parent`` is gone (this process re-parented), sweep the session."""
    while os.getppid() == parent:
        time.sleep(poll)
    kill_session(temp_dir)


def run_in_thread(target: Callable[[], None]) -> threading.Thread:
    """Start ``target`` in a daemon thread (Flower's engine: the main thread handles signals)."""
    thread = threading.Thread(target=target, name="flower-simulation", daemon=True)
    thread.start()
    return thread


if __name__ == "__main__":
    watch(int(sys.argv[1]), Path(sys.argv[2]))
