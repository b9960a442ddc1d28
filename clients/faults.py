"""The round's deadline on the client side, and injected faults (``simulation.faults``).

A train message expires with its round (the server sets its TTL to ``round_timeout``). Flower's
simulation hands a node every message at once and runs them in turn, so a client still busy
with round r would otherwise train for round r+1 only after that round's deadline too, and one
slow round would starve every later one. :func:`expired` lets the ClientApp skip a message
whose round is over: the server has moved on and Flower discards any reply to it.

Injected faults test how the server copes with clients that fail. One uniform draw ``u`` per
sampled client per round, seeded with (scenario seed, round, partition) so a scenario always
fails the same clients in the same rounds:

    u < crash                          -> the client raises :class:`InjectedCrash`
    u < crash + hang                   -> it sleeps past the round's deadline (no reply arrives)
    u < crash + hang + straggle        -> it sleeps ``straggle_seconds``, then trains as usual
"""

from __future__ import annotations

import time
from typing import Literal

from flwr.app import Message

from common.schema import FaultSpec
from common.seeding import derive_rng

Fault = Literal["crash", "hang", "straggle"]

HANG_MARGIN = 1.0
"""Seconds a hanging client sleeps beyond its round's deadline."""


class InjectedCrash(RuntimeError):
    """A crash injected by ``simulation.faults.crash`` (what the server records as the reason)."""


def deadline(message: Message) -> float:
    """The epoch second after which the server no longer waits for a reply to ``message``."""
    return message.metadata.created_at + message.metadata.ttl


def expired(message: Message) -> bool:
    """Whether ``message``'s round is over before the client starts on it."""
    return time.time() >= deadline(message)


def draw_fault(faults: FaultSpec, seed: int, server_round: int, partition_id: int) -> Fault | None:
    """The fault this client suffers this round, if any (seeded, see the module docstring)."""
    if not faults.enabled:
        return None
    u = derive_rng(seed, "fault", server_round, partition_id).random()
    if u < faults.crash:
        return "crash"
    if u < faults.crash + faults.hang:
        return "hang"
    if u < faults.crash + faults.hang + faults.straggle:
        return "straggle"
    return None


def inject_fault(faults: FaultSpec, fault: Fault | None, message: Message) -> None:
    """Act out ``fault``: raise, sleep past the deadline, or sleep ``straggle_seconds``."""
    if fault == "crash":
        raise InjectedCrash(f"injected crash (simulation.faults.crash = {faults.crash})")
    if fault == "hang":
        time.sleep(max(0.0, deadline(message) - time.time()) + HANG_MARGIN)
        raise InjectedCrash("injected hang, past the round's deadline")
    if fault == "straggle":
        time.sleep(faults.straggle_seconds)
