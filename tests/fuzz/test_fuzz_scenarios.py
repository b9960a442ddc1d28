"""Fuzzing the scenario loader and ``--set``: every malformed input is one line, never a traceback.

The adversary writes the scenario: a researcher's typo, a generated sweep, a file from someone
else. Whatever the document holds, :func:`validate_document` returns a scenario or raises one
:class:`FedshieldError` whose message is one line naming what is wrong.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common.errors import FedshieldError
from common.schema import Scenario
from scenarios.loader import apply_overrides, read_document, validate_document
from tests.fuzz._fuzz import FUZZ, json_values, paths_of, replaced, toml_document

QUICKSTART = read_document("quickstart")
PATHS = paths_of(QUICKSTART) + [("attack", "params", "target"), ("defense", "params", "f")]


def outcome(document: Any) -> Scenario | FedshieldError:
    """The loader's answer: a scenario or its one-line error (anything else escapes)."""
    try:
        return validate_document(document)
    except FedshieldError as err:
        assert "\n" not in str(err), str(err)
        assert str(err).strip(), "an empty error message"
        return err


@settings(FUZZ, max_examples=120)
@given(path=st.sampled_from(PATHS), value=json_values())
def test_any_value_anywhere_in_a_valid_scenario(path: tuple[str, ...], value: Any) -> None:
    outcome(replaced(QUICKSTART, path, value))


@settings(FUZZ, max_examples=400)
@given(changes=st.lists(st.tuples(st.sampled_from(PATHS), json_values(4)), max_size=4))
def test_several_values_at_once(changes: list[tuple[tuple[str, ...], Any]]) -> None:
    document: Any = QUICKSTART
    for path, value in changes:
        document = replaced(document, path, value)
    outcome(document)


keys = st.lists(
    st.one_of(st.sampled_from([p[-1] for p in PATHS]), st.text(max_size=6)), min_size=0, max_size=4
)


@settings(FUZZ, max_examples=1000)
@given(
    sets=st.lists(
        st.one_of(
            st.builds(lambda k, v: ".".join(k) + "=" + v, keys, st.text(max_size=20)),
            st.text(max_size=30),
        ),
        max_size=4,
    )
)
def test_any_set_strings(sets: list[str]) -> None:
    try:
        document = apply_overrides(QUICKSTART, sets)
    except FedshieldError as err:
        assert "\n" not in str(err)
        return
    outcome(document)


@settings(FUZZ, max_examples=300)
@given(
    table=st.dictionaries(
        st.sampled_from([p[0] for p in PATHS]) | st.text(max_size=8), json_values(8), max_size=8
    )
)
def test_generated_toml_documents_through_the_file_reader(
    table: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> None:
    path = tmp_path_factory.mktemp("toml") / "scenario.toml"
    path.write_text(toml_document(table), encoding="utf-8")
    assert isinstance(tomllib.loads(path.read_text(encoding="utf-8")), dict)  # valid TOML
    try:
        outcome(read_document(str(path)))
    except FedshieldError as err:
        assert "\n" not in str(err)


@settings(FUZZ, max_examples=1000)
@given(data=st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_any_bytes_as_a_scenario_file(
    data: bytes, tmp_path_factory: pytest.TempPathFactory
) -> None:
    path: Path = tmp_path_factory.mktemp("bytes") / "scenario.toml"
    path.write_bytes(data)
    try:
        outcome(read_document(str(path)))
    except FedshieldError as err:
        assert "\n" not in str(err)
