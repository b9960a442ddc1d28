"""Keys of the records exchanged between the ServerApp and the ClientApp (one vocabulary)."""

from collections.abc import Mapping
from typing import TypeVar

T = TypeVar("T")

ARRAYS = "arrays"
CONFIG = "config"
METRICS = "metrics"
INTEGRITY = "integrity"

# ConfigRecord keys sent by the server.
SERVER_ROUND = "server-round"
SCENARIO = "scenario"
GLOBAL_DIGEST = "global-digest"
BROADCAST_SIGNATURE = "broadcast-signature"

# MetricRecord keys sent by clients.
NUM_EXAMPLES = "num-examples"
PARTITION_ID = "partition-id"
TRAIN_LOSS = "train-loss"
LOCAL_STEPS = "local-steps"
SAMPLING_RATE = "sampling-rate"
REFUSED = "refused"

# Integrity ConfigRecord keys sent by clients.
NODE_ID = "node-id"
BASE_DIGEST = "base-digest"
UPDATE_DIGEST = "update-digest"
SIGNATURE = "signature"


def number(record: Mapping[str, object], key: str) -> float:
    """A numeric metric of a reply; anything else means a malformed reply."""
    value = record[key]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"reply field {key!r}: got {value!r}; expected a number")
    return float(value)


def optional(record: Mapping[str, object], key: str, kind: type[T]) -> T | None:
    """``record[key]`` when present and of ``kind`` (e.g. a digest string), else None."""
    value = record.get(key)
    return value if isinstance(value, kind) else None
