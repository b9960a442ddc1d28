"""The docstring examples of every strategies module run, and every stage documents itself."""

from __future__ import annotations

import doctest
import importlib
import pkgutil
from types import ModuleType
from typing import Any

import pytest

import strategies

MODULES = [strategies] + [
    importlib.import_module(f"strategies.{info.name}")
    for info in pkgutil.iter_modules(strategies.__path__)
]
STAGES: dict[str, Any] = {
    f"{registry.kind} {name}": registry[name].target
    for registry in (strategies.AGGREGATORS, strategies.PRE_AGGREGATORS)
    for name in registry
}
SECTIONS = ["Parameters\n", "Returns\n", "References\n", "Examples\n", ".. math::"]


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_docstring_examples_pass(module: ModuleType) -> None:
    finder, runner = doctest.DocTestFinder(), doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for test in finder.find(module):
        runner.run(test)
    assert runner.failures == 0, f"{runner.failures} doctest failures in {module.__name__}"


@pytest.mark.parametrize("stage", STAGES, ids=str)
def test_every_stage_has_the_numpy_sections_and_an_example(stage: str) -> None:
    target = STAGES[stage]
    doc = target.__doc__ or ""
    missing = [section.strip() for section in SECTIONS if section not in doc]
    assert not missing, f"{stage}: docstring lacks {missing}"
    examples = doctest.DocTestFinder(recurse=False).find(target)
    assert sum(len(test.examples) for test in examples) >= 1
    assert target.__module__ in {m.__name__ for m in MODULES}  # so the run above covers it
