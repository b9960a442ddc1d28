"""The round's values: the sink that hands a result to evaluation, the updates stacked once."""

from __future__ import annotations

import numpy as np
import pytest

from common.protocol import TrainReply
from server.round import RoundResult, RoundSink, RoundUpdates

BASE = [np.full((2, 2), 1.0, np.float32), np.full(3, 1.0, np.float32)]


def _reply(partition_id: int, value: float) -> TrainReply:
    arrays = [np.full(a.shape, value, np.float32) for a in BASE]
    return TrainReply(partition_id, 1000 + partition_id, 1, arrays, 10)


def test_the_sink_hands_over_each_round_once_and_remembers_only_who_was_accepted() -> None:
    sink = RoundSink()
    assert sink.take(0) is None  # the initial model has no round result
    first = RoundResult(server_round=1, started=0.0, sampled=(0, 1, 2), accepted=(0, 2))
    sink.put(first)
    assert sink.take(1) is first
    with pytest.raises(RuntimeError, match="no aggregation result for round 1"):
        sink.take(1)  # taken already: nothing is kept
    sink.put(RoundResult(server_round=2, started=0.0, sampled=(1,), accepted=(1,)))
    with pytest.raises(RuntimeError, match="round 3"):
        sink.take(3)
    assert sink.ever_accepted == {0, 1, 2}


def test_replacing_a_reply_redoes_its_row_only_and_leaves_the_original_intact() -> None:
    updates = RoundUpdates.stack([_reply(0, 2.0), _reply(1, 3.0)], BASE)
    np.testing.assert_array_equal(updates.deltas, [[1.0] * 7, [2.0] * 7])
    assert not updates.deltas.flags.writeable
    forged = _reply(1, -4.0)
    changed = updates.replaced({1: forged})
    np.testing.assert_array_equal(changed.deltas, [[1.0] * 7, [-5.0] * 7])
    assert changed.replies == (updates.replies[0], forged)
    np.testing.assert_array_equal(updates.deltas[1], [2.0] * 7)  # the input round is unchanged
    assert updates.replaced({}) is updates
    np.testing.assert_array_equal(changed.num_examples(), [10, 10])
