"""Every bad input of issue 15 fails ``fedshield validate`` and ``fedshield run`` in one line.

The user (who can put anything in a scenario file, ``--set`` or the file system) gets exit code
2 and exactly the line ``docs/reliability.md`` lists, before Ray starts and before any run
directory exists. In process, no Ray: each case takes well under a second after the first.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import ray

from fedshield.cli import main
from tests.scenarios._bad_inputs import CASES, BadInput, expand, expected_table, make_workspace

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("bad_inputs").resolve()
    make_workspace(tmp)
    return tmp


def _gpus() -> int:
    import tensorflow as tf

    return len(tf.config.list_physical_devices("GPU"))


def _skip_where_the_host_differs(case: BadInput) -> None:
    if "num_gpus" in case.case and _gpus():
        pytest.skip("this host has a GPU")


@pytest.mark.parametrize("case", CASES, ids=[c.case for c in CASES])
def test_validate_answers_in_one_line(
    capsys: pytest.CaptureFixture[str], workspace: Path, case: BadInput
) -> None:
    _skip_where_the_host_differs(case)
    code = main(["validate", *(expand(arg, workspace) for arg in case.argv)])
    captured = capsys.readouterr()
    assert (code, captured.out) == (2, "")
    assert captured.err.splitlines() == [expand(case.line, workspace)]


@pytest.mark.parametrize("case", CASES, ids=[c.case for c in CASES])
def test_run_stops_before_ray_with_the_same_line(
    capsys: pytest.CaptureFixture[str], workspace: Path, tmp_path: Path, case: BadInput
) -> None:
    _skip_where_the_host_differs(case)
    argv = [expand(arg, workspace) for arg in case.argv]
    if not any(arg.startswith("output=") for arg in argv):
        argv += ["--set", f'output="{tmp_path / "runs"}"']
    code = main(["run", *argv])
    captured = capsys.readouterr()
    assert (code, captured.out) == (2, "")
    assert captured.err.splitlines() == [expand(case.line, workspace)]
    assert not ray.is_initialized()
    assert not (tmp_path / "runs").exists()


def test_the_reliability_table_lists_every_case() -> None:
    # python -m tests.scenarios._bad_inputs measures the same table with the real command.
    document = (ROOT / "docs" / "reliability.md").read_text(encoding="utf-8")
    assert expected_table() in document
