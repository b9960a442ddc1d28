"""A clean stderr (issue 15.8): nothing but fedshield's own lines unless ``--verbose``.

Real processes: in process, pytest's own warning filters would hide a stray warning.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _python(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *argv], capture_output=True, text=True, check=False, cwd=ROOT, timeout=300
    )


def test_validate_prints_nothing_on_stderr() -> None:
    done = _python("-m", "fedshield.cli", "validate", "quickstart")
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.startswith("ok: quickstart (seed 42, ")


@pytest.mark.e2e  # no Ray cluster, but two processes importing Flower, Ray and TF: slow
def test_run_imports_flower_and_the_apps_without_the_tfp_warning() -> None:
    # What `fedshield run` does before Ray starts; Flower's import used to re-enable the
    # two-line tensorflow_probability DeprecationWarning that the apps' imports then printed.
    # tensorflow_privacy is imported when a DP model is first built: imported here after.
    program = "from fedshield.runner import import_apps; import_apps({}); import tensorflow_privacy"
    quiet = _python("-c", program.format(False))
    assert (quiet.returncode, quiet.stderr) == (0, "")
    verbose = _python("-c", program.format(True))
    assert verbose.returncode == 0
    assert "DeprecationWarning: distutils Version classes are deprecated" in verbose.stderr
