"""One small error hierarchy for the whole project.

Every error a user can cause is a :class:`FedshieldError`; the CLI prints its message on one
line and exits non-zero, so a message must name the field, the value and what is allowed.
"""


class FedshieldError(Exception):
    """Base class of every error fedshield raises on purpose."""


class ConfigError(FedshieldError, ValueError):
    """A scenario, a plug-in name or a plug-in parameter is invalid."""


class AggregationError(FedshieldError, RuntimeError):
    """An aggregation rule cannot run on the updates it was given (e.g. too few for its bound)."""


class IntegrityError(FedshieldError, RuntimeError):
    """Weights, a signature, a ledger entry or a checkpoint failed an integrity check."""
