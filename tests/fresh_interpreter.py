"""Programs run in a fresh interpreter: for what a test process cannot show about itself (it has
run TensorFlow ops, sized its thread pools, frozen nothing)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def python_output(program: str, *, env: Mapping[str, str] | None = None) -> str:
    """``program``'s stdout, run by this Python at the repository root (``env``: the whole
    environment, None: this one); a failing program fails the test with its stderr."""
    done = subprocess.run(
        [sys.executable, "-c", program],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=None if env is None else dict(env),
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout
