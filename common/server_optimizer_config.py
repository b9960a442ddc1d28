"""The ``[server_optimizer]`` section of a scenario: the optimiser that turns the robust
aggregate into the global model's step (Reddi et al. 2021: FedAdam, FedYogi, FedAdagrad;
Hsu et al. 2019: server momentum). ``name = "none"`` (the default) applies the aggregate as
it is, i.e. plain FedAvg's server step.

This module imports nothing from ``strategies``: the names and parameters are resolved against
``strategies.SERVER_OPTIMIZERS`` by the scenario checks, before Ray starts.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from common.validation import Strict


class ServerOptimizerConfig(Strict):
    """``[server_optimizer]``: a registered optimiser and its parameters, or ``"none"``."""

    name: str = "none"
    params: dict[str, Any] = Field(default_factory=dict)

    @property
    def stages(self) -> list[tuple[str, dict[str, Any]]]:
        """The ``post`` stages of :func:`strategies.build_chain`: none, or this optimiser."""
        return [] if self.name == "none" else [(self.name, self.params)]
