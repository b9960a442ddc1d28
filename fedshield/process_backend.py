"""Flower's simulation engine with the ClientApp run in the driver process: no Ray.

Flower 1.23's Simulation Engine takes its backend by name from a registry
(``flwr.server.superlink.fleet.vce.backend.supported_backends``); Ray's is the only one it
ships. A Ray backend pays a fixed cost per session that dwarfs a small federation's work: Ray's
own processes start, and every client actor imports TensorFlow and traces its model again
(about 20 s of a 12-cell quickstart sweep on 2 cores, against 5 s of training). For a
federation small enough to train in one process, :class:`ProcessBackend` runs the same
``ClientApp`` on the same ``Message`` and ``Context`` in the driver, one message at a time, as a
single Ray actor would: the engine, the ServerApp, the messages, the contexts and the replies are
Flower's own.

What a client loses without its own process (``simulation.backend = "process"``): isolation.
The driver's Python and NumPy random streams are put back after every client
(:func:`own_global_streams`), so the server draws what it draws under Ray.
A client that crashes the interpreter (a segfault in TensorFlow) ends the run instead of one
actor, and clients share the driver's memory and TensorFlow runtime. Faults the ClientApp raises
(``simulation.faults``) are reported exactly as under Ray: Flower's worker turns the
:class:`~flwr.clientapp.client_app.ClientAppException` into an error reply.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from flwr.app import Context, Message
    from flwr.clientapp import ClientApp

PROCESS_BACKEND = "fedshield-process"
"""The name under which :func:`register_process_backend` registers :class:`ProcessBackend`."""


@contextmanager
def own_global_streams() -> Iterator[None]:
    """Run the block with Python's and NumPy's process-global random streams put back after it.

    A client seeds them before it trains (``tf.keras.utils.set_random_seed``), as it may in its
    own actor process; in the driver that would move the server's streams, which the server
    draws from and saves in its resume checkpoint. Put back, the server's streams are what they
    are under Ray. TensorFlow's global seed is not put back (TF offers no way to read its op-seed
    counter): server-side TF randomness after a round follows the last client's seed, still
    deterministic for a scenario and seed.
    """
    python_state, numpy_state = random.getstate(), np.random.get_state()
    try:
        yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)


def register_process_backend() -> str:
    """Register :class:`ProcessBackend` with Flower's engine; the name to pass to
    ``run_simulation``."""
    from flwr.clientapp.client_app import ClientAppException, LoadClientAppError
    from flwr.server.superlink.fleet.vce.backend import Backend, supported_backends

    class ProcessBackend(Backend):
        """Runs each message's ClientApp in this process, on the engine's one worker thread."""

        def __init__(self, backend_config: Any) -> None:
            super().__init__(backend_config)
            self.app_fn: Callable[[], ClientApp] | None = None

        def build(self, app_fn: Callable[[], ClientApp]) -> None:
            self.app_fn = app_fn

        @property
        def num_workers(self) -> int:
            # One: the ClientApp's Keras models are cached per process and are not thread-safe.
            return 1

        def is_worker_idle(self) -> bool:
            return True

        def terminate(self) -> None:
            self.app_fn = None

        def process_message(self, message: Message, context: Context) -> tuple[Message, Context]:
            if self.app_fn is None:
                raise ValueError("build() must come before process_message()")
            # As Flower's ClientAppActor.run: a failure to load the app is the engine's; anything
            # the app raises is that client's failure.
            with own_global_streams():
                try:
                    reply = self.app_fn()(message=message, context=context)
                except LoadClientAppError:
                    raise
                except Exception as err:
                    raise ClientAppException(str(err)) from err
            return reply, context

    supported_backends[PROCESS_BACKEND] = ProcessBackend
    return PROCESS_BACKEND
