"""Checks of what a reply *claims* about its training, against what the server already knows.

Its arrays must fit the global model (:func:`structure_failure`). Its example count:

``num_examples`` weighs a reply in FedAvg (``sum_i n_i d_i / sum_i n_i``, McMahan et al. 2017),
and the client signs whatever number it likes: a signature proves who claimed it, not that it
is true. The handshake (``server/handshake.py``) records each node's shard size once, before
any round; a later claim above it is refused, so a poisoner cannot buy a larger share of the
average mid-run. What this does not stop: a node that lies at the handshake itself (the size
is self-reported; only an unweighted rule such as ``fedavg`` with ``weighted = false`` or a
median ignores it), or a claim below the truth (it only lowers the client's own weight).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from numpy.typing import NDArray

from common.protocol import TrainReply

NUM_EXAMPLES_ABOVE_SHARD = "num_examples_above_shard"


def num_examples_failure(
    partition_id: int, num_examples: int, shard_sizes: Mapping[int, int] | None
) -> str | None:
    """The failure reason when ``num_examples`` exceeds the handshake's shard size, else None.

    ``shard_sizes`` is ``None`` when no handshake sizes are known (unit uses of the gate); a
    partition missing from it never took part in the handshake, and its claim cannot be
    backed by anything: it fails too.
    """
    if shard_sizes is None:
        return None
    declared = shard_sizes.get(partition_id)
    if declared is None or num_examples > declared:
        return NUM_EXAMPLES_ABOVE_SHARD
    return None


def structure_failure(
    reply: TrainReply, global_arrays: Sequence[NDArray[np.generic]]
) -> str | None:
    """Stage 4: why ``reply`` does not fit the global model (None when it does)."""
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
