"""The ground both sides stand on (Flower's ``flwr.common``): scenario schema, data, models and
local training, the wire protocol, crypto primitives, errors, registries, seeding and atomic output.

Nothing here imports :mod:`strategies`, :mod:`attacks`, :mod:`clients`, :mod:`server`,
:mod:`scenarios` or :mod:`fedshield`; the import contracts in ``pyproject.toml`` enforce it.
"""
