"""When a round goes wrong: who failed and why, stale replies, skipped rounds, the failure limit.

Every sampled client that sent no usable reply is recorded with its own error message or the
missed deadline; a reply trained for another round is never aggregated; a run whose rounds keep
being skipped ends with one line (``simulation.max_failed_rounds``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from flwr.app import Message

from common.errors import FedshieldError
from common.protocol import TrainReply
from server.round import RoundResult


def round_failures(
    sampled: Sequence[int],
    replies: Sequence[Message],
    partition_of: Mapping[int, int],
    timeout: float,
) -> dict[int, str]:
    """Why each sampled partition sent no usable reply: its error, else a missed deadline.

    An error reply carries Flower's ``Message.error.reason`` (the ClientApp's exception wrapped
    by Flower), cut here to the client's own message on one line. ``partition_of`` maps Flower
    node ids to partitions (an unknown node is partition -1).
    """
    failures: dict[int, str] = {}
    answered = set()
    for message in replies:
        partition = partition_of.get(int(message.metadata.src_node_id), -1)
        if message.has_error():
            error = message.error
            failures[partition] = _client_message(error.reason or f"error code {error.code}")
        else:
            answered.add(partition)
    for partition in sampled:
        if partition not in answered and partition not in failures:
            failures[partition] = f"no reply within the round timeout ({timeout:g}s)"
    return dict(sorted(failures.items()))


def _client_message(reason: str, limit: int = 300) -> str:
    """Flower's ``"<class '...ClientAppException'>:<'\nException ... Message: TEXT'>"`` -> TEXT."""
    text = reason.rsplit("Message: ", 1)[-1].removesuffix("'>")
    text = " ".join(text.split())
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def drop_stale(
    server_round: int,
    replies: Sequence[TrainReply],
    rejected: Mapping[int, tuple[str, ...]],
    flagged: Mapping[int, tuple[str, ...]],
    kept: Iterable[int],
) -> tuple[dict[int, tuple[str, ...]], dict[int, tuple[str, ...]], list[int]]:
    """``(rejected, flagged, kept)`` without the rows trained for another round.

    Applied after the integrity gate, whatever its policy (a flag would aggregate them): a
    reply that missed its round's deadline never counts towards a later round.
    """
    rejected, flagged, current = dict(rejected), dict(flagged), []
    for i in kept:
        if replies[i].server_round == server_round:
            current.append(i)
        else:
            flagged.pop(replies[i].partition_id, None)
            rejected[replies[i].partition_id] = ("stale_round",)
    return rejected, flagged, current


def skip_reason(
    reason: str,
    failures: Mapping[int, str],
    rejected: Mapping[int, tuple[str, ...]],
    kept: Sequence[int],
) -> str:
    """The chain's reason for skipping a round, with what was left for it and why."""
    return f"{reason} ({len(kept)} accepted; {len(failures)} failed, {len(rejected)} rejected)"


class RoundsFailedError(FedshieldError, RuntimeError):
    """Too many consecutive rounds were skipped: the federation is not training."""


class FailedRounds:
    """Ends a run after ``limit`` consecutive skipped rounds (``simulation.max_failed_rounds``).

    Consecutive rather than total: a long sweep survives sporadic bad rounds, while a federation
    whose clients all crash or time out stops at once instead of reporting success.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.streak = 0

    def observe(self, result: RoundResult) -> None:
        """Count ``result``; raises :class:`RoundsFailedError` when the limit is reached."""
        self.streak = self.streak + 1 if result.skipped is not None else 0
        if self.streak >= self.limit:
            raise RoundsFailedError(
                f"{self.streak} consecutive rounds failed (simulation.max_failed_rounds = "
                f"{self.limit}); round {result.server_round}: {result.skipped}"
            )
