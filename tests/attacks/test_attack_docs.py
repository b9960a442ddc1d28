"""Every attack documents itself: numpy sections, a formula, and an example that runs."""

from __future__ import annotations

import doctest
import importlib
import inspect
import pkgutil
from types import ModuleType

import pytest

import attacks
from attacks import ATTACKS

SECTIONS = ("Parameters\n", "Returns\n", "References\n", "Examples\n")


def _modules() -> list[ModuleType]:
    names = [m.name for m in pkgutil.iter_modules(attacks.__path__)]
    return [attacks, *(importlib.import_module(f"attacks.{name}") for name in names)]


@pytest.mark.parametrize("module", _modules(), ids=lambda m: m.__name__)
def test_doctests_of_every_attacks_module_pass(module: ModuleType) -> None:
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{module.__name__}: {result.failed} doctest(s) failed"


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_every_registered_attack_has_sections_a_formula_and_an_example(name: str) -> None:
    target = ATTACKS[name].target
    doc = inspect.getdoc(target) or ""
    missing = [section.strip() for section in SECTIONS if section not in doc]
    assert not missing, f"{name}: docstring lacks {missing}"
    if name != "none":
        assert ".. math::" in doc, f"{name}: no formula in a math block"
    examples = doctest.DocTestFinder(recurse=False).find(target, name)
    assert examples and examples[0].examples, f"{name}: no runnable example"
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    runner.run(examples[0])
    assert runner.failures == 0, f"{name}: its example fails"
