"""The docstring Examples of the installed ``medstore.datastore`` and ``medstore.datasets``.

Each module is imported by its installed name (never from the checkout as a top-level
``datastore``), so the examples see the same classes a user's code does.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil
from types import ModuleType

import medstore.datasets
import medstore.datastore
import pytest

_FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _module_names() -> list[str]:
    names: list[str] = []
    for package in (medstore.datastore, medstore.datasets):
        names.append(package.__name__)
        for info in pkgutil.walk_packages(package.__path__, prefix=f"{package.__name__}."):
            names.append(info.name)
    return sorted(names)


def _examples() -> list[tuple[str, str]]:
    finder = doctest.DocTestFinder(exclude_empty=True)
    found: list[tuple[str, str]] = []
    for name in _module_names():
        module = importlib.import_module(name)
        for test in finder.find(module, module=module):
            if test.examples:
                found.append((name, test.name))
    return found


_EXAMPLES = _examples()


def _find(module: ModuleType, test_name: str) -> doctest.DocTest:
    for test in doctest.DocTestFinder(exclude_empty=True).find(module, module=module):
        if test.name == test_name:
            return test
    raise LookupError(test_name)


def test_every_module_has_a_docstring() -> None:
    missing = [n for n in _module_names() if not importlib.import_module(n).__doc__]
    assert missing == []


def test_examples_are_found() -> None:
    assert len(_EXAMPLES) > 100


@pytest.mark.parametrize(("module_name", "test_name"), _EXAMPLES, ids=[t for _, t in _EXAMPLES])
def test_docstring_example(module_name: str, test_name: str) -> None:
    test = _find(importlib.import_module(module_name), test_name)
    report: list[str] = []
    runner = doctest.DocTestRunner(optionflags=_FLAGS)
    runner.run(test, out=report.append)
    assert runner.failures == 0, "".join(report)
