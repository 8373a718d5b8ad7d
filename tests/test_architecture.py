"""The package's shape: the import graph has no cycles, layers point one way, names are medstore's.

The graph is read from the source with :mod:`ast` (no code runs): every ``import`` and
``from ... import`` anywhere in a module (inside functions and ``if TYPE_CHECKING:`` blocks too)
and every ``importlib.import_module("literal")`` call is an edge. Relative imports resolve to their
installed names (``medstore.datastore...``); ``from pkg import name`` is an edge to ``pkg.name``
when that is a module of ours, else to ``pkg``.
"""

from __future__ import annotations

import ast
import importlib.metadata
import itertools
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = {"medstore.datastore": REPO / "datastore", "medstore.datasets": REPO / "datasets"}

Graph = dict[str, dict[str, list[int]]]  # module -> {imported module: lines of those imports}


def _module_files() -> dict[str, Path]:
    """``{installed module name: source file}`` for every module of both packages."""
    modules: dict[str, Path] = {}
    for package, folder in PACKAGES.items():
        for path in sorted(folder.rglob("*.py")):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join([package, *parts])] = path
    return modules


def _resolve(module: str, is_package: bool, level: int, target: str | None) -> str:
    """The absolute name of a (possibly relative) ``from`` import in ``module``."""
    if level == 0:
        return target or ""
    base = module.split(".")
    drop = level - 1 if is_package else level
    if drop:
        base = base[:-drop]
    return ".".join([*base, target] if target else base)


def _imports(module: str, path: Path, known: set[str]) -> Iterator[tuple[str, int]]:
    """Every module ``module`` imports, with the line, as installed names."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            source = _resolve(module, is_package, node.level, node.module)
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                yield (submodule if submodule in known else source), node.lineno
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id)
            == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            yield node.args[0].value, node.lineno


def import_graph() -> tuple[Graph, dict[str, Path]]:
    """The graph between our own modules (imports of other libraries left out)."""
    files = _module_files()
    known = set(files)
    graph: Graph = {}
    for module, path in files.items():
        edges: dict[str, list[int]] = {}
        for target, line in _imports(module, path, known):
            if target.startswith(tuple(PACKAGES)) and target != module:
                edges.setdefault(target, []).append(line)
        graph[module] = {target: sorted(set(lines)) for target, lines in edges.items()}
    return graph, files


def find_cycles(graph: Graph) -> list[list[str]]:
    """One cycle path (first module repeated at the end) per strongly connected component."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's algorithm; the graph is ~100 nodes deep at most
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in graph.get(node, {}):
            if succ not in graph:
                continue
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [_cycle_in(graph, set(component), component[0]) for component in sorted(components)]


def _cycle_in(graph: Graph, members: set[str], start: str) -> list[str]:
    """A shortest path ``start -> ... -> start`` inside one strongly connected component."""
    parents: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for succ in sorted(graph[node]):
                if succ == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(parents[path[-1]])
                    return [start, *reversed(path[:-1]), start]
                if succ in members and succ not in parents:
                    parents[succ] = node
                    following.append(succ)
        frontier = following
    raise AssertionError(f"{start} is in no cycle")  # pragma: no cover - SCCs always have one


def _where(path: Path, line: int) -> str:
    """Where in its file an import sits: module level, ``if TYPE_CHECKING:`` or a function."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.If)
            and "TYPE_CHECKING" in ast.unparse(node.test)
            and node.lineno <= line <= (node.end_lineno or node.lineno)
        ):
            return "if TYPE_CHECKING"
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.lineno <= line <= (
            node.end_lineno or node.lineno
        ):
            return f"in {node.name}()"
    return "module level"


def _describe(cycle: list[str], graph: Graph, files: dict[str, Path]) -> str:
    steps = []
    for a, b in itertools.pairwise(cycle):
        places = [f"{files[a].relative_to(REPO)}:{n} ({_where(files[a], n)})" for n in graph[a][b]]
        steps.append(f"    {a} -> {b}  " + ", ".join(places))
    return " -> ".join(cycle) + "\n" + "\n".join(steps)


def test_graph_is_read_from_every_module() -> None:
    graph, files = import_graph()
    assert "medstore.datastore.store.local" in graph
    assert "medstore.datasets.volume" in graph
    # The reader sees relative imports as installed names (a graph without edges proves nothing).
    assert any(target.startswith("medstore.datastore.") for target in graph["medstore.datastore"])
    assert len(files) == len(graph) > 20


def test_find_cycles_reports_a_path() -> None:
    graph: Graph = {"x": {"y": [1]}, "y": {"z": [1]}, "z": {"x": [1], "w": [1]}, "w": {}}
    assert find_cycles(graph) == [["x", "y", "z", "x"]]
    assert find_cycles({"a": {"b": [1]}, "b": {}}) == []


def test_import_graph_has_no_cycles() -> None:
    graph, files = import_graph()
    cycles = find_cycles(graph)
    report = "\n".join(_describe(cycle, graph, files) for cycle in cycles)
    assert not cycles, f"{len(cycles)} import cycle(s) between modules:\n{report}"


def test_datastore_never_imports_datasets() -> None:
    graph, files = import_graph()
    wrong = [
        f"{source} -> {target}  ({files[source].relative_to(REPO)}:{line})"
        for source, edges in sorted(graph.items())
        if source.startswith("medstore.datastore")
        for target, lines in sorted(edges.items())
        if target.startswith("medstore.datasets")
        for line in lines
    ]
    assert not wrong, "datastore imports datasets:\n" + "\n".join(wrong)


def _run_outside(tmp_path: Path, code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` with this environment's python in ``tmp_path``, away from the clone."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSAFEPATH")}
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_installed_names_outside_the_clone(tmp_path: Path) -> None:
    code = (
        "import medstore.datastore, medstore.datasets\n"
        "print(medstore.datastore.LocalDatastore.__module__)\n"
    )
    done = _run_outside(tmp_path, code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().startswith("medstore.datastore.")


@pytest.mark.parametrize("name", ["datastore", "datasets"])
def test_no_top_level_names_outside_the_clone(tmp_path: Path, name: str) -> None:
    code = (
        "import sys\n"
        "try:\n"
        f"    import {name} as mod\n"
        "except ModuleNotFoundError as err:\n"
        f"    assert err.name == {name!r}, err.name\n"
        "    print('missing')\n"
        "else:\n"
        "    print(mod.__file__)\n"
    )
    done = _run_outside(tmp_path, code)
    assert done.returncode == 0, done.stderr
    found = done.stdout.strip()
    # Only another project's package of that name (Hugging Face ``datasets``) may answer.
    assert found == "missing" or not Path(found).resolve().is_relative_to(REPO), found


def test_entry_points_name_the_console_script_and_commands() -> None:
    scripts = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="console_scripts")}
    assert scripts.get("medstore", "").startswith("medstore.datastore.cli")
    commands = {ep.name: ep for ep in importlib.metadata.entry_points(group="medstore.commands")}
    assert "demo" in commands
    assert commands["demo"].value.startswith("medstore.datasets.")
