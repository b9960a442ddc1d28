"""Shared by the ``fedshield`` command-line tests: one in-process call and what it printed."""

from __future__ import annotations

import pytest


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[str], list[str]]:
    """Exit code, stdout lines and stderr lines of one in-process ``fedshield`` call."""
    from fedshield.cli import main

    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out.splitlines(), captured.err.splitlines()
