"""Scenario section ``[inversion]``: an honest-but-curious server that inverts what it receives.

Two attacks, both measurements of leakage and never part of the defense (``docs/inversion.md``):

* **from the updates** (``clients`` x ``rounds``): gradient inversion of a client's reply
  (Zhu et al. 2019, "Deep Leakage from Gradients"; Geiping et al. 2020, "Inverting Gradients",
  cosine distance + total variation; labels from the last layer's bias gradient as in iDLG,
  Zhao et al. 2020). PSNR and SSIM against the client's true images go to ``summary.json`` and a
  picture grid ``inversion_updates.png`` to the run directory.
* **from the final model** (``class_representatives``): one image per class that the final
  global model finds most typical (Fredrikson et al. 2015, MI-FACE), compared with each class's
  mean training image (``inversion_classes.png``, ``inversion_similarity.png``).

This module imports no TensorFlow: the scenario schema loads it before any worker starts.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from common.errors import ConfigError
from common.validation import Strict


class InversionConfig(Strict):
    """The ``[inversion]`` table (off unless ``clients`` or ``class_representatives`` is set)."""

    clients: tuple[int, ...] = ()
    """Partition ids whose replies the server inverts (each in ``[0, data.num_clients)``)."""
    rounds: tuple[int, ...] = (1,)
    """Rounds in which it does so (each in ``[1, rounds]``); a client not sampled in a round
    is skipped and recorded as such."""
    loss: Literal["cosine", "l2"] = "cosine"
    """``cosine``: 1 - cos(grad, target) over all parameters (Geiping et al. 2020);
    ``l2``: the squared Euclidean gradient distance of DLG (Zhu et al. 2019)."""
    iterations: int = Field(1000, ge=1, le=100_000)
    """Adam steps on the dummy images (Geiping et al. use 24,000 on CIFAR; 8x8 digits need far
    fewer)."""
    learning_rate: float = Field(0.1, gt=0.0)
    """Adam's step size on the dummy images (Geiping et al.: 0.1)."""
    tv_weight: float = Field(1e-3, ge=0.0)
    """alpha of the total-variation prior (Geiping et al. 2020); 0 is plain DLG."""
    num_images: int | None = Field(None, ge=1, le=1024)
    """Images to reconstruct per reply; unset: ``train.batch_size`` (exact for one local step)."""
    class_representatives: bool = False
    """Also invert the final global model, one image per class (MI-FACE)."""
    class_iterations: int = Field(500, ge=1, le=100_000)
    """Gradient steps of MI-FACE per class."""

    @property
    def enabled(self) -> bool:
        """Whether any inversion runs."""
        return bool(self.clients) or self.class_representatives


def check_inversion(config: InversionConfig, *, num_clients: int, rounds: int) -> None:
    """The cross-section bounds of ``[inversion]`` (one-line error naming the field)."""
    bad_clients = [c for c in config.clients if not 0 <= c < num_clients]
    if bad_clients:
        raise ConfigError(
            f"inversion.clients: got {list(config.clients)!r}; each must be a partition id in "
            f"[0, {num_clients}) (data.num_clients = {num_clients})"
        )
    bad_rounds = [r for r in config.rounds if not 1 <= r <= rounds]
    if config.clients and (bad_rounds or not config.rounds):
        raise ConfigError(
            f"inversion.rounds: got {list(config.rounds)!r}; give at least one round, each in "
            f"[1, {rounds}] (rounds = {rounds})"
        )
