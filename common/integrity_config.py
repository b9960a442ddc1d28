"""Scenario section ``[integrity]``: which checks the gate runs and what a failure does.

Each check has an *action*:

* ``"reject"``: the reply is dropped this round (never reaches the aggregator);
* ``"flag"``: the reply is aggregated but recorded as suspicious (monitoring mode);
* ``"quarantine"``: dropped, and every reply of that partition is rejected for the next
  ``quarantine_rounds`` rounds as well.

Checks whose failure leaves nothing an aggregator can use (wrong shape or dtype, NaN/Inf) cannot
be ``"flag"``: a flagged reply is aggregated, and such a reply would crash the aggregator or
poison every coordinate.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from common.registry import Params

Action = Literal["reject", "flag", "quarantine"]
DropAction = Literal["reject", "quarantine"]


class WatermarkConfig(Params):
    """WAFFLE server-side watermarking (Tekgul et al., SRDS 2021); see ``watermark.py``."""

    enabled: bool = False
    """Embed the watermark into the global model after each aggregation."""
    num_triggers: int = Field(default=100, ge=1, le=100_000)
    """Size of the trigger set (spread evenly over the classes; WAFFLE uses 100)."""
    target_accuracy: float = Field(default=0.98, gt=0.0, le=1.0)
    """Retraining stops once the global model labels this fraction of triggers correctly."""
    max_server_epochs: int = Field(default=30, ge=1, le=10_000)
    """Upper bound on the epochs spent reaching ``target_accuracy`` per round (WAFFLE's cap)."""
    extra_epochs: int = Field(default=60, ge=0, le=10_000)
    """Retraining epochs after the target is met, every round: a longer embedding schedule
    that widens the triggers' margin (0 is plain WAFFLE; see ``docs/integrity.md`` for what
    fine-tuning and pruning leave of each)."""
    learning_rate: float = Field(default=0.05, gt=0.0, le=10.0)
    """SGD learning rate of the server-side retraining."""
    verify_threshold: float = Field(default=0.5, gt=0.0, le=1.0)
    """Trigger accuracy above which a model is declared watermarked (chance is 1/classes)."""
    key_file: str | None = None
    """Where the secret key is written (0600, atomically; a symlink is refused). It must lie
    outside the run directory, which keeps only the key's hash. ``None``:
    ``~/.fedshield/watermark_keys/<run directory name>.json``."""


class IntegrityConfig(Params):
    """Integrity gate, signatures, ledger and watermark of one scenario."""

    enabled: bool = False
    """Master switch: sign broadcasts and replies, run the gate, write the ledger."""
    signature: Action = "reject"
    """Missing, unknown-client or invalid reply signature, or arrays that do not match the
    signed update digest (tampered in transit)."""
    base_digest: Action = "reject"
    """Reply trained on another global model than this round's (stale or tampered base), signed
    for another round (replay), or a second reply of the same partition in one round."""
    shape: DropAction = "reject"
    """Arrays whose number, shapes or dtypes differ from the global model's, or
    ``num_examples < 1``."""
    non_finite: DropAction = "reject"
    """NaN or infinite value in any array."""
    norm: Action = "reject"
    """Update delta norm above ``max_norm`` or above ``max_norm_ratio`` x the round's median."""
    max_norm: float | None = Field(default=None, gt=0.0)
    """Absolute cap on ``||w_i - w_global||_2``; ``None`` disables it."""
    # inf is the one non-finite value allowed anywhere in a scenario: it is how TOML says "off"
    # (NaN still fails ge=1).
    max_norm_ratio: float | None = Field(default=3.0, ge=1.0, allow_inf_nan=True)
    """Cap ``k`` relative to the median delta norm of the round's well-formed replies; ``inf``
    (TOML has no null) or ``None`` disables it (k < 1 would reject half of the honest clients).

    Default 3.0, from honest spreads measured on digits (``docs/integrity.md``): the largest
    honest ``||d_i|| / median`` over 10 quickstart rounds is 1.27 (IID, seeds 42/1/2; 1.97 and
    2.59 under Dirichlet(0.5) for seeds 42/1), so 3 leaves a 2.4x margin on IID shards and still
    rejects a x10 boosted update (ratio 9-11). Strongly non-IID federations can exceed it (6.35
    once for Dirichlet(0.5) seed 2): raise it there."""
    num_examples: Action = "reject"
    """Reply claiming more examples than the shard size its node reported at the handshake
    (FedAvg weights by this claim: x100 would give one client the round)."""
    cosine: Action = "flag"
    """Update pointing away from the others (see ``cosine_min``)."""
    cosine_min: float | None = Field(default=None, ge=-1.0, lt=1.0)
    """Minimum cosine between a delta and the sum of the other deltas; ``None`` disables it."""
    quarantine_rounds: int = Field(default=3, ge=1, le=1_000_000)
    """Rounds a quarantined partition stays rejected after the round it was caught in."""
    keys_dir: str | None = None
    """Directory of PEM keys (``server_0000.key``, ``client_{partition:04d}.pub``); ``None``
    derives simulation keys from the scenario seed."""
    watermark: WatermarkConfig = WatermarkConfig()
    """Server-side WAFFLE watermark."""
