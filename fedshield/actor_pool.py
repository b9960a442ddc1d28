"""A client actor that dies mid-round is replaced; the round records its client as failed.

Flower 1.23's Ray backend (``RayBackend.process_message``) puts the actor of a failed job back
into its pool and re-raises. When the actor *died* (the kernel's OOM killer, a crash inside
TensorFlow, a ``kill -9``), Ray raises ``RayActorError`` and the dead actor goes back into the
pool: every later message it is handed fails the same way, so a federation loses a share of its
clients for good and ``simulation.max_failed_rounds`` soon ends the run. :func:`replace_dead`
swaps that actor for a new one (same resources, same arguments, Flower's own factory), and
:class:`ClientActorDied` is what the round records for the client whose job it was.
"""

from __future__ import annotations

import threading
from typing import Any

from flwr.clientapp.client_app import ClientAppException

_POOL_LOCK = threading.Lock()
"""Flower runs one worker thread per actor; only one of them swaps actors at a time."""


class ClientActorDied(ClientAppException):
    """The client's Ray actor died while it handled the message (a failure of that client)."""


def replace_dead(pool: Any, actor_id: str | None) -> bool:
    """Replace the idle actor ``actor_id`` of Flower's ``BasicActorPool`` with a new one.

    Returns whether it was found; an actor another thread already took from the pool fails
    that thread's job too, which replaces it then.
    """
    with _POOL_LOCK:
        for index, actor in enumerate(pool.pool):
            if actor._actor_id.hex() == actor_id:
                pool.pool[index] = pool.create_actor_fn()
                return True
    return False


def died(err: BaseException) -> ClientActorDied:
    """The one-line failure recorded for the client whose actor died with ``err``."""
    kind = type(err).__name__
    return ClientActorDied(f"the client's Ray actor died ({kind}); a new actor replaces it")
