"""Fuzzing the run-directory readers: a damaged directory gets a verdict, never a traceback.

The adversary has the run directory: a storage attacker editing files, a full disk cutting one
short, a copy that lost a file. ``fedshield verify`` answers 0 (intact), 1 (tampered) or 2
(cannot read) with one line; the resume checkpoint reader and the JSON readers answer with the
file's contents or one :class:`FedshieldError` line. A damaged directory never verifies unless
the damage left every signed byte as it was.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common.errors import FedshieldError
from common.results import read_json, read_jsonl
from server.checkpoint_state import CHECKPOINT_FILE, read_checkpoint, write_checkpoint
from server.integrity.ledger import LEDGER_FILE
from strategies import build_chain
from tests.fuzz._fuzz import FUZZ, copy_tree, damage, file_damage, json_values, one_line_outcome
from tests.integrity._runs import write_run

FILES = [LEDGER_FILE, "summary.json", "scenario.json", "checkpoints/round_0002.npz"]


@pytest.fixture(scope="module")
def intact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("intact") / "run"
    write_run(run_dir)
    chain = build_chain("centered_clipping", {"radius": 0.3})
    write_checkpoint(run_dir, {"round": 2, "chain_state": chain.init(16), "weights": [np.ones(3)]})
    return run_dir


@settings(FUZZ, max_examples=400)
@given(target=st.sampled_from(FILES), how=st.lists(file_damage, min_size=1, max_size=2))
def test_verify_answers_any_damaged_run_in_one_line(
    intact: Path,
    target: str,
    how: list[tuple[Any, ...]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    run_dir = copy_tree(intact, intact.parent / "damaged")
    before = (run_dir / target).read_bytes()
    for step in how:
        if (run_dir / target).is_file():
            damage(run_dir / target, step)
    code, out, _ = one_line_outcome(capsys, ["verify", str(run_dir)], codes=(0, 1, 2))
    assert len(out) <= 1
    path = run_dir / target
    if code == 0 and target == LEDGER_FILE:  # a verified ledger is byte-for-byte the signed one
        assert path.is_file() and path.read_bytes() == before


@settings(FUZZ, max_examples=400)
@given(how=st.lists(file_damage, min_size=1, max_size=2))
def test_the_resume_checkpoint_reader_answers_in_one_line(
    intact: Path, how: list[tuple[Any, ...]]
) -> None:
    run_dir = copy_tree(intact, intact.parent / "checkpoint")
    for step in how:
        if (run_dir / CHECKPOINT_FILE).is_file():
            damage(run_dir / CHECKPOINT_FILE, step)
    _expect_one_line_or_state(run_dir)


@settings(FUZZ, max_examples=400)
@given(index=st.integers(0, 20), value=json_values(8), path=st.lists(st.integers(0, 9), max_size=6))
def test_a_checkpoint_with_any_tree_answers_in_one_line(
    intact: Path, index: int, value: Any, path: list[int]
) -> None:
    run_dir = copy_tree(intact, intact.parent / "tree")
    checkpoint = run_dir / CHECKPOINT_FILE
    with np.load(checkpoint) as archive:
        members = {name: archive[name] for name in archive.files}
    tree = json.loads(str(members["tree"][()]))
    node = tree
    for step in path:  # walk somewhere into the tree and replace a value there
        children = node if isinstance(node, list) else list(node.values())
        if not children or not isinstance(children[step % len(children)], dict | list):
            break
        node = children[step % len(children)]
    if isinstance(node, dict) and node:
        node[sorted(node)[index % len(node)]] = value
    members["tree"] = np.array(json.dumps(tree))
    np.savez(checkpoint, **members)
    _expect_one_line_or_state(run_dir)


def _expect_one_line_or_state(run_dir: Path) -> None:
    try:
        state = read_checkpoint(run_dir)
    except FedshieldError as err:
        assert "\n" not in str(err)
        return
    assert isinstance(state, dict)


@settings(FUZZ, max_examples=300)
@given(target=st.sampled_from(["summary.json", LEDGER_FILE]), how=st.lists(file_damage, max_size=2))
def test_the_json_readers_answer_with_records_or_one_line(
    intact: Path, target: str, how: list[tuple[Any, ...]]
) -> None:
    run_dir = copy_tree(intact, intact.parent / "json")
    for step in how:
        if (run_dir / target).is_file():
            damage(run_dir / target, step)
    path = run_dir / target
    reader = read_json if target.endswith(".json") else read_jsonl
    try:
        reader(path)
    except FedshieldError as err:
        assert "\n" not in str(err)
    except (OSError, ValueError) as err:  # what a caller must expect besides FedshieldError
        assert isinstance(err, OSError | json.JSONDecodeError | UnicodeDecodeError), repr(err)
