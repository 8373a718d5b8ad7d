"""The contract suite's machinery: marked tests run once per write path, others as before.

The tests here are marked one by one (a contract module marks itself with ``pytestmark``), so that
the file also holds an unmarked test.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.contract import MARKER, WRITE_PATHS, WritePath
from support.stores import MakeStore, StoreFactory

_SHOW_ENV = (
    "import os; print(os.environ.get('MEDSTORE_CONTRACT_SET', '-'), "
    "os.environ.get('MEDSTORE_CONTRACT_GONE', '-'))"
)


@pytest.mark.contract
def test_each_test_runs_once_per_write_path_named_in_its_id(
    request: pytest.FixtureRequest, write_path: WritePath
) -> None:
    assert request.node.get_closest_marker(MARKER) is not None
    assert request.node.callspec.params["write_path"] is write_path
    assert request.node.name.endswith(f"[{write_path.name}]")
    assert write_path in WRITE_PATHS
    for key, value in write_path.env.items():
        assert os.environ.get(key) == value


@pytest.mark.contract
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


@pytest.mark.contract
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


@pytest.mark.contract
def test_every_marked_test_runs_on_every_path_and_no_other_test_does(
    request: pytest.FixtureRequest,
) -> None:
    names = {path.name for path in WRITE_PATHS}
    runs: dict[str, set[str]] = {}
    for item in request.session.items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if item.get_closest_marker(MARKER) is None:
            assert "write_path" not in params, item.nodeid
        else:
            runs.setdefault(item.nodeid.partition("[")[0], set()).add(params["write_path"].name)
    assert runs and all(paths == names for paths in runs.values()), runs


def test_an_unmarked_test_runs_once_on_the_default_path(
    request: pytest.FixtureRequest, write_path: WritePath
) -> None:
    assert request.node.get_closest_marker(MARKER) is None
    assert "write_path" not in getattr(getattr(request.node, "callspec", None), "params", {})
    assert write_path is WRITE_PATHS[0]
    assert "[" not in request.node.name


def _marks_module_contract(path: Path) -> bool:
    """Whether a test module's ``pytestmark`` holds ``pytest.mark.contract``."""
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets
        ):
            return any(
                isinstance(n, ast.Attribute) and n.attr == MARKER for n in ast.walk(node.value)
            )
    return False


def test_every_lose_nothing_module_is_in_the_contract_suite() -> None:
    """Issue 12: every 'lose nothing' reproduction runs against every write path."""
    modules = sorted(Path(__file__).parent.glob("test_datastore/test_lose_nothing*.py"))
    assert len(modules) >= 6
    assert [m.name for m in modules if not _marks_module_contract(m)] == []
