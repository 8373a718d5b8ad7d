"""The contract suite's machinery: marked modules run once per write path, others as before."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.contract import MARKER, WRITE_PATHS, WritePath
from support.stores import MakeStore, StoreFactory

pytestmark = pytest.mark.contract

_TESTS = Path(__file__).parent
_SHOW_ENV = (
    "import os; print(os.environ.get('MEDSTORE_CONTRACT_SET', '-'), "
    "os.environ.get('MEDSTORE_CONTRACT_GONE', '-'))"
)


def test_each_test_runs_once_per_write_path_named_in_its_id(
    request: pytest.FixtureRequest, write_path: WritePath
) -> None:
    assert request.node.get_closest_marker(MARKER) is not None
    assert request.node.callspec.params["write_path"] is write_path
    assert request.node.name.endswith(f"[{write_path.name}]")
    assert write_path in WRITE_PATHS
    for key, value in write_path.env.items():
        assert os.environ.get(key) == value


def test_activate_sets_and_unsets_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDSTORE_CONTRACT_GONE", "1")
    path = WritePath("x", env={"MEDSTORE_CONTRACT_SET": "j", "MEDSTORE_CONTRACT_GONE": None})
    with pytest.MonkeyPatch.context() as inner:
        path.activate(inner)
        seen = subprocess.run(  # child processes (crash points, torture, CLI) inherit the path
            [sys.executable, "-c", _SHOW_ENV],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        assert seen == ["j", "-"]
    assert "MEDSTORE_CONTRACT_SET" not in os.environ
    assert os.environ["MEDSTORE_CONTRACT_GONE"] == "1"


def test_make_store_opens_stores_with_the_path_options(
    make_store: MakeStore, write_path: WritePath, tmp_path: Path
) -> None:
    store = make_store()
    assert store.root.is_dir()
    factory = StoreFactory(tmp_path / "other", defaults={"extensions": ("*.nrrd",)})
    try:
        # a path's options reach the stores the factory opens, and a test's own options win
        assert factory().extensions == ("*.nrrd",)
        assert factory(extensions=("*.nii",)).extensions == ("*.nii",)
    finally:
        factory.close_all()


def test_only_marked_modules_are_parametrized() -> None:
    listed = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--collect-only",
            "-q",
            "-p",
            "no:cacheprovider",
            str(_TESTS / "test_contract_suite.py"),
            str(_TESTS / "test_architecture.py"),
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=_TESTS.parent,
    ).stdout.splitlines()
    ours = [line for line in listed if "test_contract_suite.py::" in line]
    others = [line for line in listed if "test_architecture.py::" in line]
    assert ours and others
    names = [path.name for path in WRITE_PATHS]
    per_test: dict[str, list[str]] = {}
    for line in ours:
        test, _, param = line.partition("[")
        per_test.setdefault(test, []).append(param.rstrip("]").split("-")[-1])
    assert all(sorted(params) == sorted(names) for params in per_test.values()), per_test
    assert not any(f"[{name}]" in line or f"-{name}]" in line for line in others for name in names)
