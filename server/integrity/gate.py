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
from common.crypto.signing import KeyPair, PublicKey, sign_reply, verify_reply
from common.integrity_config import Action, IntegrityConfig
from server.integrity._delta_maths import (
    all_finite,
    digest_and_delta_sq_norm,
    leave_one_out_cosines,
)
from server.integrity.claims import num_examples_failure

Decision = Literal["accepted", "flagged", "rejected", "quarantined"]

_SEVERITY: Mapping[str, Decision] = {"quarantine": "quarantined", "reject": "rejected"}


@dataclass(frozen=True)
class SignedReply:
    """One client reply as the server received it; every field but ``node_id`` is a claim.

    ``node_id`` must be filled from the Flower message metadata (the transport's sender), not
    from the reply content, so that a relayed reply fails its signature.
    """

    partition_id: int
    node_id: int
    server_round: int
    arrays: Sequence[NDArray[np.generic]]
    num_examples: int
    base_digest: str
    update_digest: str
    signature: bytes | None


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

    def to_json(self) -> dict[str, int]:
        """JSON-ready form (string keys), for a run checkpoint."""
        return {str(partition): last for partition, last in self.quarantined_until.items()}

    @classmethod
    def from_json(cls, document: Mapping[str, int]) -> GateState:
        """Inverse of :meth:`to_json`."""
        return cls({int(partition): int(last) for partition, last in document.items()})


@dataclass(frozen=True)
class GateResult:
    """Replies to aggregate (flagged ones included), one verdict per input reply, next state."""

    accepted: list[SignedReply]
    verdicts: list[Verdict]
    state: GateState
    accepted_digests: dict[int, str]
    """Recomputed update digest of each accepted reply, for the ledger."""


def seal_reply(
    key: KeyPair,
    *,
    partition_id: int,
    node_id: int,
    server_round: int,
    arrays: Sequence[NDArray[np.generic]],
    num_examples: int,
    base_digest: str,
) -> SignedReply:
    """Client side: digest the new weights and sign the reply claims."""
    update_digest = digest_arrays(arrays)
    signature = sign_reply(
        key,
        server_round=server_round,
        node_id=node_id,
        base_digest=base_digest,
        update_digest=update_digest,
        num_examples=num_examples,
    )
    return SignedReply(
        partition_id,
        node_id,
        server_round,
        arrays,
        num_examples,
        base_digest,
        update_digest,
        signature,
    )


def _signature_failure(reply: SignedReply, public_keys: Mapping[int, PublicKey]) -> str | None:
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


def _structure_failure(
    reply: SignedReply, global_arrays: Sequence[NDArray[np.generic]]
) -> str | None:
    if reply.num_examples < 1:
        return "bad_num_examples"
    if len(reply.arrays) != len(global_arrays):
        return "shape_mismatch"
    for array, reference in zip(reply.arrays, global_arrays, strict=True):
        if array.shape != reference.shape:
            return "shape_mismatch"
        if array.dtype != reference.dtype:
            return "dtype_mismatch"
    return None


def _decision(failures: Sequence[tuple[str, Action]]) -> Decision:
    actions = {action for _, action in failures}
    for action in ("quarantine", "reject"):
        if action in actions:
            return _SEVERITY[action]
    return "flagged" if failures else "accepted"


def _dropped(failures: Sequence[tuple[str, Action]]) -> bool:
    return _decision(failures) in ("rejected", "quarantined")


def run_gate(
    replies: Sequence[SignedReply],
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
    failures: list[list[tuple[str, Action]]] = [[] for _ in replies]
    digests: dict[int, str] = {}
    sq_norms: dict[int, float] = {}
    replies_per_partition = Counter(reply.partition_id for reply in replies)

    for index, reply in enumerate(replies):
        failed = failures[index]
        if state.is_quarantined(reply.partition_id, server_round):
            failed.append(("quarantined", "reject"))
            continue
        if replies_per_partition[reply.partition_id] > 1:
            failed.append(("duplicate_reply", config.base_digest))
        if reply.server_round != server_round:
            failed.append(("stale_round", config.base_digest))
        if reply.base_digest != global_digest:
            failed.append(("stale_base", config.base_digest))
        signature_reason = _signature_failure(reply, public_keys)
        if signature_reason is not None:
            failed.append((signature_reason, config.signature))
        if _dropped(failed):
            continue  # do not spend a hash pass on a reply already dropped
        structure_reason = _structure_failure(reply, global_arrays)
        if structure_reason is None:
            # Hash and delta in one trip through memory (see _delta_maths).
            digests[index], sq_norm = digest_and_delta_sq_norm(reply.arrays, global_arrays)
        else:
            digests[index], sq_norm = digest_arrays(reply.arrays), math.nan
        if digests[index] != reply.update_digest:
            failed.append(("digest_mismatch", config.signature))
        if structure_reason is not None:
            failed.append((structure_reason, config.shape))
        claim_reason = num_examples_failure(reply.partition_id, reply.num_examples, shard_sizes)
        if claim_reason is not None:
            failed.append((claim_reason, config.num_examples))
        if _dropped(failed):
            continue
        # A non-finite sum means a NaN/Inf input or, rarely, an overflowing huge delta: only
        # then is a second pass needed to tell the two apart (an overflow is a finite reply
        # with an infinite norm, which the norm checks handle).
        if not math.isfinite(sq_norm) and not all_finite(reply.arrays):
            failed.append(("non_finite", config.non_finite))
            continue
        sq_norms[index] = sq_norm
        if config.max_norm is not None and math.sqrt(sq_norm) > config.max_norm:
            failed.append(("norm_above_cap", config.norm))

    def in_running() -> list[int]:
        return [index for index in sq_norms if not _dropped(failures[index])]

    if config.max_norm_ratio is not None and (candidates := in_running()):
        median = statistics.median(math.sqrt(sq_norms[index]) for index in candidates)
        for index in candidates:
            if math.sqrt(sq_norms[index]) > config.max_norm_ratio * median:
                failures[index].append(("norm_above_ratio", config.norm))

    if config.cosine_min is not None and len(candidates := in_running()) >= 2:
        cosines = leave_one_out_cosines(
            [replies[index].arrays for index in candidates],
            global_arrays,
            [sq_norms[index] for index in candidates],
        )
        for index, cosine in zip(candidates, cosines, strict=True):
            if cosine < config.cosine_min:
                failures[index].append(("cosine_outlier", config.cosine))

    verdicts = [
        Verdict(
            reply.partition_id,
            _decision(failed),
            tuple(reason for reason, _ in failed),
            math.sqrt(sq_norms[index]) if index in sq_norms else None,
        )
        for index, (reply, failed) in enumerate(zip(replies, failures, strict=True))
    ]
    kept = [
        index
        for index, verdict in enumerate(verdicts)
        if verdict.decision in ("accepted", "flagged")
    ]
    return GateResult(
        accepted=[replies[index] for index in kept],
        verdicts=verdicts,
        state=_next_state(state, verdicts, server_round, config.quarantine_rounds),
        accepted_digests={replies[index].partition_id: digests[index] for index in kept},
    )


def _next_state(
    state: GateState, verdicts: Sequence[Verdict], server_round: int, quarantine_rounds: int
) -> GateState:
    # Entries whose last round has passed are dropped, so the state does not grow forever.
    until = {
        partition: last
        for partition, last in state.quarantined_until.items()
        if last > server_round
    }
    for verdict in verdicts:
        if verdict.decision == "quarantined":
            until[verdict.partition_id] = server_round + quarantine_rounds
    return GateState(until)
