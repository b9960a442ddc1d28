"""The ``[dp]`` section of a scenario: DP-SGD on honest clients or client-level DP on the server.

Two modes, never both at once:

* ``local``: every honest client trains with DP-SGD (Abadi et al. 2016, "Deep Learning with
  Differential Privacy"): per-example (or per-microbatch) gradients are clipped to L2 norm
  ``l2_norm_clip`` = C and Gaussian noise N(0, (noise_multiplier * C)^2) is added to their sum.
  The guarantee is example-level, per client, and accounted by
  :mod:`server.privacy_accounting` over the rounds each client actually took part in.
* ``central``: the server clips every client's update (its delta to the global weights) to
  ``clipping_norm`` and adds N(0, (central_noise_multiplier * clipping_norm / m)^2) to the mean
  of the m sampled updates (McMahan et al. 2018, "Learning Differentially Private Recurrent
  Language Models", DP-FedAvg with fixed clipping). The guarantee is client-level.

This module imports no TensorFlow: the scenario schema loads it before any worker starts.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from common.errors import ConfigError
from common.validation import FieldError


class DPConfig(BaseModel):
    """Differential-privacy settings of one scenario (``[dp]`` table)."""

    # The attribute docstrings below become the fields' descriptions (JSON schema, `list`).
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    enabled: bool = False
    """Master switch; ``false`` trains every client without clipping or noise."""

    mode: Literal["local", "central"] = "local"
    """``local``: DP-SGD on each honest client (example-level DP). ``central``: clipping and
    noise on the server via Flower's ``DifferentialPrivacyServerSideFixedClipping``
    (client-level DP)."""

    l2_norm_clip: float = Field(1.0, gt=0.0)
    """C in Abadi et al.: the L2 bound on each per-example (per-microbatch) gradient."""

    noise_multiplier: float = Field(1.1, ge=0.0)
    """sigma in Abadi et al.: the noise standard deviation is ``sigma * C`` on the summed clipped
    gradients. 0 clips without noise (no privacy; the accountant then reports infinity)."""

    num_microbatches: int | None = Field(None, ge=1)
    """Microbatches per batch; ``None`` means one example per microbatch (the tight case).
    A microbatch of k > 1 examples doubles the add/remove-one sensitivity, so the accountant
    halves the effective noise multiplier (tensorflow-privacy's ``used_microbatching``).
    Must divide the batch size, hence only allowed with ``sampling = "shuffle"``."""

    delta: float = Field(1e-5, gt=0.0, lt=1.0)
    """delta of the reported (epsilon, delta) guarantee; keep it below 1 / (examples per client)."""

    sampling: Literal["poisson", "shuffle"] = "poisson"
    """How local batches are drawn (see :func:`common.learning.batching.batch_plan`).

    Default ``poisson``: each example joins each step independently with probability
    q = batch_size / n, which is the sampling the RDP accountant's amplification-by-subsampling
    theorem assumes (Mironov, Talwar, Zhang 2019); with the step divided by the expected batch
    size (``common.learning.dp.PoissonDPSequential``) the reported epsilon is a proven bound.
    ``shuffle`` (each example once per epoch, fixed-size batches) only has the much weaker
    once-per-epoch bound proven; the Poisson number printed for it would be a heuristic."""

    clipping_norm: float = Field(1.0, gt=0.0)
    """Central mode: L2 bound on each client's update delta (S in McMahan et al. 2018)."""

    central_noise_multiplier: float = Field(1.0, ge=0.0)
    """Central mode: z in McMahan et al. 2018; noise std is ``z * clipping_norm / m`` on the mean
    of the m sampled clients' clipped updates."""

    reproducible_noise: bool = False
    """``false`` (default): DP noise and DP batch sampling come from the operating system's
    entropy, fresh in every client round, so nobody who holds the scenario and its seed (the
    server first) can regenerate the noise and subtract it. ``true``: both derive from the seed,
    so a DP run is reproducible, and every epsilon it reports is marked void against anyone who
    holds the seed (``epsilon_void`` in ``metrics.jsonl``, ``summary.json`` and the progress
    line)."""

    report_train_loss: bool = False
    """With DP on, whether replies carry the client's training loss. It is computed on the
    private shard without noise, so it is a side channel outside the accounted mechanism;
    ``false`` withholds it and ``metrics.jsonl`` records ``train_loss`` as null with a reason."""

    @model_validator(mode="after")
    def _check_microbatches(self) -> DPConfig:
        # A Poisson batch has a random size, which a fixed microbatch count cannot divide.
        if self.num_microbatches is not None and self.sampling == "poisson":
            raise FieldError(
                "dp.num_microbatches",
                self.num_microbatches,
                'must be unset (one example per microbatch) with dp.sampling = "poisson"',
            )
        return self

    @property
    def reports_train_loss(self) -> bool:
        """Whether a client's reply carries its training loss (always without DP)."""
        return not self.enabled or self.report_train_loss

    def microbatch_size(self, batch_size: int) -> int:
        """Examples per microbatch for a batch of ``batch_size`` (1 when unset).

        The scenario loader calls it once before Ray starts, so a count that does not divide
        the batch size fails there in one line instead of inside a worker's training step.
        """
        if self.num_microbatches is None:
            return 1
        if batch_size % self.num_microbatches:
            raise ConfigError(
                f"dp.num_microbatches: got {self.num_microbatches!r}; "
                f"must divide train.batch_size ({batch_size})"
            )
        return batch_size // self.num_microbatches
