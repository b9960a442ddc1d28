"""The collector switches of :mod:`common.collector`: paused inside the block and restored after;
frozen by the ``fedshield`` entry point only, never by :func:`fedshield.cli.main`."""

from __future__ import annotations

import gc
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from common.collector import paused_collector

ROOT = Path(__file__).resolve().parents[2]


def _python(program: str) -> subprocess.CompletedProcess[str]:
    """``program`` in a fresh interpreter (a frozen collector must not leak into pytest's)."""
    return subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, cwd=ROOT, check=True
    )


@pytest.mark.parametrize("enabled_before", [True, False])
def test_paused_collector_disables_inside_and_restores_the_previous_state(
    enabled_before: bool,
) -> None:
    (gc.enable if enabled_before else gc.disable)()
    try:
        with paused_collector():
            assert not gc.isenabled()
        assert gc.isenabled() is enabled_before
        with pytest.raises(ValueError), paused_collector():  # an import that fails
            raise ValueError
        assert gc.isenabled() is enabled_before
    finally:
        gc.enable()


def test_validation_pauses_the_collector_only_while_it_imports() -> None:
    program = (
        "import gc\n"
        "from scenarios.loader import load_scenario\n"
        "load_scenario('quickstart')\n"
        "print(gc.isenabled(), gc.get_freeze_count())\n"
    )
    done = _python(program)
    assert done.stdout.split() == ["True", "0"]  # library code never freezes


def test_the_console_script_freezes_after_main_and_main_does_not() -> None:
    (script,) = [e for e in entry_points(group="console_scripts") if e.name == "fedshield"]
    assert script.value == "fedshield.cli:script"
    program = (
        "import gc, sys\n"
        "from fedshield import cli\n"
        "sys.argv = ['fedshield', 'list', 'attacks']\n"
        "cli.main(sys.argv[1:]); after_main = gc.get_freeze_count()\n"
        "code = cli.script()\n"
        "print(code, after_main, gc.get_freeze_count() > 0, file=sys.stderr)\n"
    )
    done = _python(program)
    assert done.stderr.split() == ["0", "0", "True"]
