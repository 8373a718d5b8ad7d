"""Fixtures shared by every test: the one store factory and the one NIfTI-file factory.

The factories themselves live in :mod:`support.stores` and :mod:`support.nifti`; tests import
those modules by name, never this file. Tests of ``contract``-marked modules run once per store
write path (:mod:`support.contract`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from support import contract
from support.cli import Run, cli_runner
from support.nifti import NiftiFile, make_nifti
from support.stores import MakeStore, StoreFactory


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run every test of a ``contract``-marked module once per store write path."""
    contract.parametrize(metafunc)


@pytest.fixture(scope="module")
def write_path(request: pytest.FixtureRequest) -> Iterator[contract.WritePath]:
    """The store write path the module's tests run on (``direct`` outside the contract suite)."""
    path: contract.WritePath = getattr(request, "param", contract.WRITE_PATHS[0])
    with pytest.MonkeyPatch.context() as monkeypatch:
        path.activate(monkeypatch)
        yield path


@pytest.fixture(scope="module", autouse=True)
def _write_path_in_force(write_path: contract.WritePath) -> contract.WritePath:
    """Put the write path in force before any other fixture of the module runs."""
    return write_path


@pytest.fixture
def make_store(tmp_path: Path, write_path: contract.WritePath) -> Iterator[MakeStore]:
    """``make_store(cases=None, *, name=None, **options)``: a new store under ``tmp_path``.

    See :class:`support.stores.StoreFactory`; every store made is closed when the test ends.
    The stores are opened on the test's write path (its ``options`` are the defaults).
    """
    factory = StoreFactory(tmp_path, defaults=write_path.options)
    yield factory
    factory.close_all()


@pytest.fixture
def nifti_file(tmp_path: Path) -> NiftiFile:
    """``nifti_file(name, *, value=0, dtype=np.int16, shape=(4, 5, 3))``: a filled NIfTI file.

    Written under ``tmp_path/src`` with 0.8 x 0.8 x 2.5 mm voxels; returns its path.
    """

    def make(
        name: str, *, value: int = 0, dtype: type = np.int16, shape: tuple[int, ...] = (4, 5, 3)
    ) -> Path:
        data = np.full(shape, value, dtype=dtype)
        return make_nifti(tmp_path / "src" / name, data, np.diag([0.8, 0.8, 2.5, 1.0]))

    return make


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Run:
    """Call ``medstore`` in-process: ``cli("ls", "--store", path)`` -> ``(status, out, err)``.

    ``MEDSTORE_STORE`` is cleared so the caller's environment cannot pick the store.
    """
    monkeypatch.delenv("MEDSTORE_STORE", raising=False)
    return cli_runner(capsys)
