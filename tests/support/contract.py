"""The store's write paths, and the contract suite every one of them must pass.

A *write path* is one way the store makes a change durable. Today there is one, ``direct``: each
mutation rewrites ``datastore_v2.json`` under the lock (temp file, fsync, replace). A journal path
(recent changes appended to a log and folded into the manifest later) must keep exactly the same
promises, so the behavioural tests that state those promises (every "lose nothing" reproduction,
the crash points, the kill -9 torture) are written once and run against every path:

- a test module opts in with ``pytestmark = pytest.mark.contract``;
- ``pytest_generate_tests`` in ``tests/conftest.py`` (through :func:`parametrize`) then runs each
  of its tests once per entry of :data:`WRITE_PATHS`; the path's name ends the test id
  (``test_case11_...[direct]``), so ``-k journal`` selects one path;
- the ``write_path`` fixture puts the path in force for the test's whole module before anything
  else of the module runs: its environment variables are set (stores opened anywhere in the test,
  and every child process it starts, inherit them), and ``make_store`` passes its store options
  to :class:`~medstore.datastore.LocalDatastore`.

Modules that are not marked run once, with the first (default) path, and keep their test ids.

Adding a write path (for example the journal):

1. Make the store choose it from an environment variable, e.g. ``MEDSTORE_WRITE_PATH=journal``.
   That is what reaches every store a contract test opens, including the ones tests build with
   ``LocalDatastore(root)`` directly and the ones in child processes (crash points, torture,
   ``medstore`` CLI runs). A constructor option alone reaches only ``make_store``'s stores.
2. Add one line to :data:`WRITE_PATHS`::

       WritePath("journal", env={"MEDSTORE_WRITE_PATH": "journal"}),

   (``options={...}`` adds constructor options for ``make_store``'s stores as well). Every
   contract test then runs on both paths; ``make test`` time grows by the contract modules'
   time for each path added.

Examples:
    >>> [path.name for path in WRITE_PATHS]
    ['direct', 'journal']
    >>> WritePath("journal", env={"MEDSTORE_WRITE_PATH": "journal"}).env["MEDSTORE_WRITE_PATH"]
    'journal'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import pytest

__all__ = ["FIXTURE", "MARKER", "WRITE_PATHS", "WritePath", "parametrize"]

MARKER = "contract"
"""The marker that makes a test module part of the contract suite."""

FIXTURE = "write_path"
"""The fixture that holds the write path a test runs on."""


def _frozen(values: Mapping[str, Any] | None = None) -> Mapping[str, Any]:
    return MappingProxyType(dict(values or {}))


@dataclass(frozen=True)
class WritePath:
    """One way the store writes, as the tests select it.

    Args:
        name: Short name; it ends the ids of the contract tests run on this path.
        env: Environment variables that select the path (``None`` as a value unsets one), in
            force for the whole test module and inherited by child processes.
        options: Extra :class:`~medstore.datastore.LocalDatastore` keyword arguments for the
            stores ``make_store`` builds.
    """

    name: str
    env: Mapping[str, str | None] = field(default_factory=_frozen)
    options: Mapping[str, Any] = field(default_factory=_frozen)

    def activate(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Put this path in force through ``monkeypatch`` (undone when it is)."""
        for key, value in self.env.items():
            if value is None:
                monkeypatch.delenv(key, raising=False)
            else:
                monkeypatch.setenv(key, value)


#: Every write path the store has; the first is the default for tests outside the contract suite.
#: A new path is one more line here (see the module docstring).
WRITE_PATHS: tuple[WritePath, ...] = (
    WritePath("direct", env={"MEDSTORE_WRITE_PATH": "direct"}),
    WritePath("journal", env={"MEDSTORE_WRITE_PATH": "journal"}),
)


def parametrize(metafunc: pytest.Metafunc) -> None:
    """Run a test of a ``contract``-marked module once per write path (``pytest_generate_tests``).

    Args:
        metafunc: The test being collected.
    """
    if metafunc.definition.get_closest_marker(MARKER) is None:
        return
    if FIXTURE not in metafunc.fixturenames:
        return
    metafunc.parametrize(
        FIXTURE, WRITE_PATHS, ids=[path.name for path in WRITE_PATHS], indirect=True
    )
