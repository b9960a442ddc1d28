"""``fedshield run --resume RUN_DIR``: which scenario a run directory continues, and its checkpoint.

The scenario is the one the directory recorded (``scenario.json``); a scenario file or ``--set``
values given with ``--resume`` must resolve to exactly that scenario, else the resume is refused
in one line naming the fields that differ. The checkpoint must be for that scenario and for the
installed package versions (:func:`server.resume.load_resume_point`).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from common.errors import ConfigError, FedshieldError
from common.results import read_json
from common.schema import Scenario
from scenarios.loader import apply_overrides, load_scenario, validate_document
from scenarios.preflight import check_environment

if TYPE_CHECKING:
    from server.resume import ResumePoint


def resumed_scenario(run_dir: str, source: str | None, overrides: Iterable[str]) -> Scenario:
    """The scenario ``run_dir`` recorded, checked against ``source`` and ``overrides`` if given."""
    path = Path(run_dir) / "scenario.json"
    try:
        recorded = read_json(path)
        stored = validate_document(recorded)
    except (OSError, ValueError, TypeError, RecursionError, FedshieldError) as err:
        raise ConfigError(f"--resume: got {run_dir!r}; cannot read {path} ({err})") from None
    overrides = list(overrides)
    if source is None and not overrides:
        check_environment(stored)
        return stored
    given = (
        load_scenario(source, overrides)
        if source is not None
        else validate_document(apply_overrides(recorded, overrides))
    )
    changed = _differences(stored.model_dump(mode="json"), given.model_dump(mode="json"))
    if changed:
        raise ConfigError(
            f"--resume: {run_dir} ran another scenario (differing: {', '.join(changed[:5])}); "
            "resume with the recorded scenario (no scenario argument, no --set)"
        )
    check_environment(stored)
    return stored


def _differences(a: Any, b: Any, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two JSON documents."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [
            key
            for k in sorted(set(a) | set(b))
            for key in _differences(a.get(k), b.get(k), f"{prefix}{k}.")
        ]
    return [] if a == b else [prefix.rstrip(".") or "(the document)"]


def resume_point(run_dir: Path, scenario: Scenario) -> ResumePoint:
    """The checked checkpoint of ``run_dir``; its per-round logs cut back to its round."""
    from server.resume import cut_round_files, load_resume_point
    from server.run_summary import package_versions

    point = load_resume_point(run_dir, scenario, package_versions())
    cut_round_files(run_dir, point.server_round)
    return point
