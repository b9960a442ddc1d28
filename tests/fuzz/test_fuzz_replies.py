"""Fuzzing reply decoding on the server: any reply content is a recorded rejection, never a crash.

The adversary is a client (or anyone on its link) who sends whatever a Flower message can
carry: records missing or renamed, fields of any type and value, arrays of any shape and dtype.
The server's round must go on: ``aggregate_train`` returns, and the round's result records the
reply as accepted, refused or rejected with a one-line reason, with and without the integrity
gate.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import numpy as np
import pytest
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from common import protocol as P
from common.data.shards import malicious_clients
from common.protocol import ProtocolError
from scenarios.loader import load_scenario
from server.evaluation import Evaluator
from server.guard import IntegrityGuard
from strategies import build_chain
from tests.fuzz._fuzz import FUZZ
from tests.server._round import GRID, client_reply, make_strategy, partition_of

BASE = [np.zeros((3, 4), np.float32), np.zeros(4, np.float32)]
PLAIN = load_scenario("quickstart")
GATED = load_scenario("quickstart", ["integrity.enabled=true"])
NAMES = st.sampled_from(
    [P.ARRAYS, P.METRICS, P.CONFIG, P.INTEGRITY, P.PARTITION_ID, P.SERVER_ROUND, P.NUM_EXAMPLES]
    + [P.TRAIN_LOSS, P.LOCAL_STEPS, P.SAMPLING_RATE, P.REFUSED, P.SIGNATURE, P.BASE_DIGEST]
    + [P.UPDATE_DIGEST, "x"]
)
ints = st.integers(-(2**63), 2**63 - 1)
floats = st.floats(allow_nan=True, allow_infinity=True)
metric_values = st.one_of(ints, floats, st.lists(ints, max_size=3), st.lists(floats, max_size=3))
config_values = st.one_of(
    metric_values, st.text(max_size=20), st.binary(max_size=70), st.booleans()
)
arrays = st.lists(
    hnp.arrays(
        st.sampled_from([np.float32, np.float64, np.int32, np.uint8, np.bool_]),
        hnp.array_shapes(min_dims=0, max_dims=3, max_side=5),
    ),
    max_size=3,
)
records = st.one_of(
    arrays.map(lambda a: ArrayRecord([np.ascontiguousarray(x) for x in a])),
    st.dictionaries(NAMES, metric_values, max_size=6).map(MetricRecord),
    st.dictionaries(NAMES, config_values, max_size=6).map(ConfigRecord),
)
# A valid reply with some records replaced, some fields of its metrics set to anything.
edits = st.tuples(
    st.dictionaries(NAMES, st.one_of(st.none(), records), max_size=3),
    st.dictionaries(NAMES, metric_values, max_size=3),
)


def _edited(sent: Message, edit: tuple[dict[str, Any], dict[str, Any]]) -> Message:
    honest = client_reply(sent, [a + 0.5 for a in BASE])
    content = {name: honest.content[name] for name in honest.content}
    for name, record in edit[0].items():
        if record is None:
            content.pop(name, None)
        else:
            content[name] = record
    metrics = content.get(P.METRICS)
    if isinstance(metrics, MetricRecord):
        content[P.METRICS] = MetricRecord({**metrics, **edit[1]})
    return Message(content=RecordDict(content), reply_to=sent)


def _play(strategy: Any, replies: list[Message]) -> None:
    arrays, _ = strategy.aggregate_train(1, replies)
    result = strategy.sink.take(1)
    assert arrays is not None and result is not None
    for reasons in result.rejected.values():
        assert all("\n" not in reason for reason in reasons), reasons
    assert all("\n" not in reason for reason in result.refused.values())


def _round(strategy: Any) -> list[Message]:
    return list(strategy.configure_train(1, ArrayRecord(BASE), ConfigRecord(), GRID))


@settings(FUZZ, max_examples=500)
@given(edits=st.lists(edits, min_size=1, max_size=3))
def test_edited_replies_are_decoded_or_rejected(
    edits: list[tuple[dict[str, Any], dict[str, Any]]],
) -> None:
    strategy = make_strategy(PLAIN, build_chain("fedavg", {}), num_params=16)
    sent = _round(strategy)
    replies = [_edited(m, e) for m, e in zip(sent, edits, strict=False)]
    for reply in replies:  # decoding alone: a reply or one ProtocolError line
        try:
            P.decode_train_reply(reply)
        except ProtocolError as err:
            assert "\n" not in str(err)
    _play(strategy, replies)


@settings(FUZZ, max_examples=250)
@given(contents=st.lists(st.dictionaries(NAMES, records, max_size=4), min_size=1, max_size=3))
def test_generated_contents_through_the_integrity_gate(
    contents: list[dict[str, Any]], tmp_path_factory: pytest.TempPathFactory
) -> None:
    scenario = GATED
    evaluator = cast(Evaluator, SimpleNamespace(model=None, dataset=None))  # watermark off
    run_dir: Path = tmp_path_factory.mktemp("gate")
    guard = IntegrityGuard(scenario, run_dir, malicious=frozenset(), evaluator=evaluator)
    guard.start(BASE, shard_sizes=dict.fromkeys(range(scenario.data.num_clients), 10))
    strategy = make_strategy(
        scenario,
        build_chain("fedavg", {}),
        num_params=16,
        malicious=malicious_clients(scenario),
        guard=guard,
    )
    sent = _round(strategy)
    replies = [
        Message(content=RecordDict(c), reply_to=m) for m, c in zip(sent, contents, strict=False)
    ]
    _play(strategy, replies)
    assert {partition_of(m) for m in sent} >= set(strategy.sink.ever_accepted)
