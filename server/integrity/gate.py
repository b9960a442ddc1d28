"""The integrity gate: a pure function from one round's replies to accepted replies + verdicts.

Checks, in order (a reply dropped by one stage is not examined by the next; each reason is a
short stable string, and the policy that decides its action is in brackets):

1. ``quarantined`` (always reject): the partition is serving a quarantine from an earlier round.
2. Authenticity and freshness, all evaluated together:
   ``duplicate_reply`` [base_digest]: the partition replied more than once this round (all of
   its replies are dropped, since the genuine one cannot be told apart);
   ``stale_round`` [base_digest]: the reply is signed for another round (replay);
   ``stale_base`` [base_digest]: it trained from another global model than this round's;
   ``missing_signature`` / ``unknown_client`` / ``bad_signature`` [signature].
3. ``digest_mismatch`` [signature]: the arrays do not hash to the signed ``update_digest``
   (changed in transit: bit flip, noise, swapped layers).
4. ``bad_num_examples`` / ``shape_mismatch`` / ``dtype_mismatch`` [shape] against the global;
   ``num_examples_above_shard`` [num_examples]: more examples claimed than the handshake's
   shard size (``claims.py``; only when ``shard_sizes`` is given).
5. ``non_finite`` [non_finite]: a NaN or infinity anywhere.
6. ``norm_above_cap`` [norm]: ``||w_i - w_g||_2 > max_norm``.
7. ``norm_above_ratio`` [norm]: ``||w_i - w_g||_2 > k * median_j ||w_j - w_g||_2`` over the
   replies still in the running after stage 6 (so forged or malformed replies cannot move the
   median); the median is robust while fewer than half of those replies are malicious.
8. ``cosine_outlier`` [cosine]: ``cos(d_i, sum_{j != i} d_j) < cosine_min`` over the replies
   still in the running after stage 7 (needs at least 2). A heuristic in the spirit of FLTrust
   (Cao et al., NDSS 2021), which scores updates by cosine to a trusted direction; here the
   direction is the leave-one-out sum of the other clients' deltas.

The decision combines every failed check: any ``quarantine`` action -> ``"quarantined"``, else
any ``reject`` -> ``"rejected"``, else any ``flag`` -> ``"flagged"`` (aggregated), else
``"accepted"``. Who is malicious is never an input: the gate sees only the replies.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from common.crypto.digest import digest_arrays
from common.crypto.signing import PublicKey, verify_reply
from common.integrity_config import Action, IntegrityConfig
from common.protocol import TrainReply
from server.integrity._delta_maths import (
    all_finite,
    digest_and_delta_sq_norm,
    leave_one_out_cosines,
)
from server.integrity.claims import num_examples_failure, structure_failure

Decision = Literal["accepted", "flagged", "rejected", "quarantined"]

_SEVERITY: Mapping[str, Decision] = {"quarantine": "quarantined", "reject": "rejected"}


@dataclass(frozen=True)
class Verdict:
    """The gate's decision on one reply, with the reasons (empty when accepted)."""

    partition_id: int
    decision: Decision
    reasons: tuple[str, ...]
    delta_norm: float | None = None


@dataclass(frozen=True)
class GateState:
    """State carried between rounds: partition -> last round (inclusive) it stays rejected."""

    quarantined_until: Mapping[int, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # A read-only copy, so a state value can never change after it was returned.
        object.__setattr__(
            self, "quarantined_until", MappingProxyType(dict(self.quarantined_until))
        )

    def is_quarantined(self, partition_id: int, server_round: int) -> bool:
        """True when ``partition_id`` must be rejected in ``server_round``."""
        return server_round <= self.quarantined_until.get(partition_id, -1)


@dataclass(frozen=True)
class GateResult:
    """Replies to aggregate (flagged ones included), one verdict per input reply, next state."""

    accepted: list[TrainReply]
    verdicts: list[Verdict]
    state: GateState
    accepted_digests: dict[int, str]
    """Recomputed update digest of each accepted reply, for the ledger."""


def _signature_failure(reply: TrainReply, public_keys: Mapping[int, PublicKey]) -> str | None:
    if reply.signature is None:
        return "missing_signature"
    public_key = public_keys.get(reply.partition_id)
    if public_key is None:
        return "unknown_client"
    valid = verify_reply(
        public_key,
        server_round=reply.server_round,
        node_id=reply.node_id,
        base_digest=reply.base_digest,
        update_digest=reply.update_digest,
        num_examples=reply.num_examples,
        signature=reply.signature,
    )
    return None if valid else "bad_signature"


Failures = list[tuple[str, Action]]


def _decision(failures: Failures) -> Decision:
    actions = {action for _, action in failures}
    for action in ("quarantine", "reject"):
        if action in actions:
            return _SEVERITY[action]
    return "flagged" if failures else "accepted"


def _dropped(failures: Failures) -> bool:
    return _decision(failures) in ("rejected", "quarantined")


@dataclass(frozen=True)
class _Round:
    """What every reply of one round is checked against."""

    config: IntegrityConfig
    server_round: int
    global_arrays: Sequence[NDArray[np.generic]]
    global_digest: str
    public_keys: Mapping[int, PublicKey]
    shard_sizes: Mapping[int, int] | None


@dataclass
class _Checked:
    """Stages 1-6 on one reply: its failures, recomputed digest and squared delta norm."""

    failures: Failures
    digest: str | None = None
    sq_norm: float | None = None  # set while the reply is in the running for stages 7 and 8


def _check_reply(
    reply: TrainReply, round_: _Round, *, quarantined: bool, duplicated: bool
) -> _Checked:
    """Stages 1-6; a reply dropped by one stage is not examined by the next."""
    if quarantined:
        return _Checked([("quarantined", "reject")])
    config = round_.config
    failed: Failures = []
    if duplicated:
        failed.append(("duplicate_reply", config.base_digest))
    if reply.server_round != round_.server_round:
        failed.append(("stale_round", config.base_digest))
    if reply.base_digest != round_.global_digest:
        failed.append(("stale_base", config.base_digest))
    if (signature_reason := _signature_failure(reply, round_.public_keys)) is not None:
        failed.append((signature_reason, config.signature))
    if _dropped(failed):
        return _Checked(failed)  # do not spend a hash pass on a reply already dropped
    structure_reason = structure_failure(reply, round_.global_arrays)
    if structure_reason is None:
        # Hash and delta in one trip through memory (see _delta_maths).
        digest, sq_norm = digest_and_delta_sq_norm(reply.arrays, round_.global_arrays)
    else:
        digest, sq_norm = digest_arrays(reply.arrays), math.nan
    if digest != reply.update_digest:
        failed.append(("digest_mismatch", config.signature))
    if structure_reason is not None:
        failed.append((structure_reason, config.shape))
    claim = num_examples_failure(reply.partition_id, reply.num_examples, round_.shard_sizes)
    if claim is not None:
        failed.append((claim, config.num_examples))
    if _dropped(failed):
        return _Checked(failed, digest)
    # A non-finite sum means a NaN/Inf input or, rarely, an overflowing huge delta: only then
    # is a second pass needed to tell the two apart (an overflow is a finite reply with an
    # infinite norm, which the norm checks handle).
    if not math.isfinite(sq_norm) and not all_finite(reply.arrays):
        return _Checked([*failed, ("non_finite", config.non_finite)], digest)
    if config.max_norm is not None and math.sqrt(sq_norm) > config.max_norm:
        failed.append(("norm_above_cap", config.norm))
    return _Checked(failed, digest, sq_norm)


def _in_running(checked: Sequence[_Checked]) -> dict[int, float]:
    """Index -> squared delta norm of the replies not dropped so far."""
    return {
        i: c.sq_norm
        for i, c in enumerate(checked)
        if c.sq_norm is not None and not _dropped(c.failures)
    }


def _norm_ratio_stage(checked: Sequence[_Checked], config: IntegrityConfig) -> None:
    """Stage 7: ``||d_i|| > k * median_j ||d_j||`` over the replies still in the running."""
    norms = {i: math.sqrt(sq_norm) for i, sq_norm in _in_running(checked).items()}
    if config.max_norm_ratio is None or not norms:
        return
    median = statistics.median(norms.values())
    for index, norm in norms.items():
        if norm > config.max_norm_ratio * median:
            checked[index].failures.append(("norm_above_ratio", config.norm))


def _cosine_stage(
    checked: Sequence[_Checked], replies: Sequence[TrainReply], round_: _Round
) -> None:
    """Stage 8: ``cos(d_i, sum_{j != i} d_j) < cosine_min`` over the replies still running."""
    config = round_.config
    candidates = _in_running(checked)
    if config.cosine_min is None or len(candidates) < 2:
        return
    cosines = leave_one_out_cosines(
        [replies[index].arrays for index in candidates],
        round_.global_arrays,
        list(candidates.values()),
    )
    for index, cosine in zip(candidates, cosines, strict=True):
        if cosine < config.cosine_min:
            checked[index].failures.append(("cosine_outlier", config.cosine))


def run_gate(
    replies: Sequence[TrainReply],
    *,
    config: IntegrityConfig,
    server_round: int,
    global_arrays: Sequence[NDArray[np.generic]],
    global_digest: str,
    public_keys: Mapping[int, PublicKey],
    state: GateState,
    shard_sizes: Mapping[int, int] | None = None,
) -> GateResult:
    """Run every check of the module docstring on one round's replies; inputs are only read.

    Cost: one SHA-256 pass and one delta pass per reply, plus two more passes when the cosine
    test is on; see ``benchmarks/integrity.py``.
    """
    round_ = _Round(config, server_round, global_arrays, global_digest, public_keys, shard_sizes)
    replies_per_partition = Counter(reply.partition_id for reply in replies)
    checked = [
        _check_reply(
            reply,
            round_,
            quarantined=state.is_quarantined(reply.partition_id, server_round),
            duplicated=replies_per_partition[reply.partition_id] > 1,
        )
        for reply in replies
    ]
    _norm_ratio_stage(checked, config)
    _cosine_stage(checked, replies, round_)
    verdicts = [
        Verdict(
            reply.partition_id,
            _decision(c.failures),
            tuple(reason for reason, _ in c.failures),
            None if c.sq_norm is None else math.sqrt(c.sq_norm),
        )
        for reply, c in zip(replies, checked, strict=True)
    ]
    kept = [i for i, verdict in enumerate(verdicts) if verdict.decision in ("accepted", "flagged")]
    return GateResult(
        accepted=[replies[index] for index in kept],
        verdicts=verdicts,
        state=_next_state(state, verdicts, server_round, config.quarantine_rounds),
        accepted_digests={replies[i].partition_id: checked[i].digest or "" for i in kept},
    )


def _next_state(
    state: GateState, verdicts: Sequence[Verdict], server_round: int, quarantine_rounds: int
) -> GateState:
    # Entries whose last round has passed are dropped, so the state does not grow forever.
    until = {p: last for p, last in state.quarantined_until.items() if last > server_round}
    for verdict in verdicts:
        if verdict.decision == "quarantined":
            until[verdict.partition_id] = server_round + quarantine_rounds
    return GateState(until)
