"""Read a scenario TOML file (``tomllib``), apply ``--set`` overrides, validate, check plug-ins.

Every failure is a :class:`~common.errors.ConfigError` whose message is one line naming the
field, the value and what is allowed; all of it happens before Ray starts. The checks live in
:mod:`scenarios.checks` (plug-ins and data) and :mod:`scenarios.preflight` (the host: output
directory, key files, GPUs); :func:`load_scenario` runs them all.
"""

from __future__ import annotations

import secrets
import tomllib
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from common.errors import ConfigError
from common.schema import Scenario
from common.validation import one_line
from scenarios.checks import check_plugins
from scenarios.preflight import check_environment


def packaged_scenarios() -> list[str]:
    """Names of the scenario files shipped as package data (``fedshield run NAME``)."""
    root = resources.files("scenarios")
    return sorted(p.name.removesuffix(".toml") for p in root.iterdir() if p.name.endswith(".toml"))


def read_document(source: str | Path) -> dict[str, Any]:
    """The parsed TOML of a scenario file, or of the packaged scenario of that name."""
    path = Path(source)
    if not path.exists():
        packaged = resources.files("scenarios") / f"{source}.toml"
        if not packaged.is_file():
            raise ConfigError(
                f"scenario: no file {str(source)!r} and no packaged scenario of that name; "
                f"packaged: {', '.join(packaged_scenarios())}"
            )
        text = packaged.read_text(encoding="utf-8")
    else:
        text = _read_text(path)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"scenario {str(source)!r}: not valid TOML ({err})") from None


def _read_text(path: Path) -> str:
    if path.is_dir():
        raise ConfigError(f"scenario: got {str(path)!r}; a directory, expected a TOML file")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(
            f"scenario: got {str(path)!r}; not a UTF-8 text file (byte {err.start}), expected TOML"
        ) from None
    except OSError as err:
        raise ConfigError(f"scenario: cannot read {str(path)!r}: {err.strerror}") from None


def _parse_value(raw: str) -> Any:
    """A ``--set`` value is a TOML value (``2``, ``0.5``, ``true``, ``"krum"``, ``[1, 2]``).

    Anything that does not parse as one is a bare string (``--set defense.aggregator=krum``).
    """
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def apply_overrides(document: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Return a copy of ``document`` with each ``dotted.key=value`` override set."""
    fields: list[tuple[str, Any]] = []
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set: got {item!r}; expected dotted.key=value")
        fields.append((key.strip(), _parse_value(raw.strip())))
    return set_fields(document, fields)


def set_fields(document: dict[str, Any], fields: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """Return a copy of ``document`` with each ``(dotted.key, value)`` set, in order.

    ``value`` replaces the field whole (a table replaces a table: ``defense.params = {f = 1}``
    drops the base's other parameters). Shared by ``--set`` and ``fedshield sweep``.
    """
    result: dict[str, Any] = _deep_copy(document)
    for key, value in fields:
        *parents, leaf = key.split(".")
        node = result
        for part in parents:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"{key}: {part!r} is a value, not a table")
            node = child
        node[leaf] = _deep_copy(value)
    return result


def _deep_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value


def validate_document(document: Mapping[str, Any]) -> Scenario:
    """Validate a parsed document into a :class:`Scenario`, check every plug-in it names and
    the data it deals (the host is :func:`scenarios.preflight.check_environment`'s).

    A missing ``seed`` is drawn once here and written into the resolved scenario, so every run
    is reproducible from its run directory.
    """
    document = dict(document)
    document.setdefault("seed", secrets.randbelow(2**31))
    try:
        scenario = Scenario.model_validate(document)
    except ValidationError as err:
        raise ConfigError(one_line(err)) from None
    check_plugins(scenario)
    return scenario


def load_scenario(source: str | Path, overrides: Iterable[str] = ()) -> Scenario:
    """Read, override, validate, check the host: the one entry point of ``validate`` and ``run``.

    After it returns, everything a run needs has been checked or opened: plug-in names and
    parameters, the dataset's files, the partition, the key files, the output directory, GPUs.
    """
    scenario = read_scenario(source, overrides)
    check_environment(scenario)
    return scenario


def read_scenario(source: str | Path, overrides: Iterable[str] = ()) -> Scenario:
    """Read, override and validate, without the host checks (a deployment's server checks only
    what it holds: it has the clients' public keys, never their private ones)."""
    return validate_document(apply_overrides(read_document(source), overrides))
