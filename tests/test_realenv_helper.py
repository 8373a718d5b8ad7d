"""tests/realenv.py itself: cache keys, one build across processes, nothing left by a failed build.

The builds here are stand-ins (no pip, no network); the real builds run in test_realenv_*.py.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import realenv as r


def _fake_build(name: str, building: Path, final: Path) -> None:
    """Stand-in for a venv build: a slow one, counted in the cache folder."""
    with (building.parent / "builds.log").open("a") as log:
        log.write(f"{os.getpid()}\n")
    time.sleep(0.5)
    (building / "bin").mkdir()
    (building / "bin" / "tool").write_text(f"#!{building}/bin/python\n")
    r._rewrite_paths(building, old=building, new=final)
    (building / r.MARKER).write_text(json.dumps({"name": name}))


def _worker(cache: str, out: str) -> None:
    os.environ[r.CACHE_ENV_VAR] = cache
    r._build = _fake_build  # type: ignore[assignment]  # the forked child only
    Path(out).write_text(str(r.realenv("hf-datasets").root))


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "venvs"
    monkeypatch.setenv(r.CACHE_ENV_VAR, str(folder))
    return folder


def test_key_follows_the_requirements_and_constraints_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = r.env_key("webknossos")
    assert key.startswith("webknossos-") and len(key) == len("webknossos-") + 12
    copy = tmp_path / "req"
    copy.mkdir()
    for path in r.REQUIREMENTS_DIR.glob("*.txt"):
        (copy / path.name).write_bytes(path.read_bytes())
    monkeypatch.setattr(r, "REQUIREMENTS_DIR", copy)
    monkeypatch.setattr(r, "CONSTRAINTS", copy / "constraints.txt")
    assert r.env_key("webknossos") == key
    (copy / "constraints.txt").write_text("torch==2.13.0+cpu\nnumpy<3\n")
    assert r.env_key("webknossos") != key
    with pytest.raises(r.RealEnvError, match="no venv named 'constraints'"):
        r.env_key("constraints")


def test_the_cache_folder_comes_from_the_environment(cache: Path) -> None:
    assert r.cache_root() == cache


def test_parallel_callers_build_once_and_share_the_venv(cache: Path, tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    outs = [tmp_path / f"out{i}" for i in range(3)]
    procs = [ctx.Process(target=_worker, args=(str(cache), str(out))) for out in outs]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(30)
    assert [proc.exitcode for proc in procs] == [0, 0, 0]
    final = cache / r.env_key("hf-datasets")
    assert {out.read_text() for out in outs} == {str(final)}
    assert len((cache / "builds.log").read_text().split()) == 1
    assert (final / "bin" / "tool").read_text() == f"#!{final}/bin/python\n"
    assert [p.name for p in cache.iterdir() if ".build-" in p.name] == []


def test_a_failed_build_leaves_nothing_and_the_next_call_builds(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(name: str, building: Path, final: Path) -> None:
        (building / "half-made").write_text("x")
        raise r.RealEnvError("pip failed")

    monkeypatch.setattr(r, "_build", broken)
    with pytest.raises(r.RealEnvError, match="pip failed"):
        r.realenv("hf-datasets")
    assert sorted(p.name for p in cache.iterdir()) == [f"{r.env_key('hf-datasets')}.lock"]

    monkeypatch.setattr(r, "_build", _fake_build)
    env = r.realenv("hf-datasets")
    assert env.root == cache / r.env_key("hf-datasets")
    assert env.python == env.root / "bin" / "python"


def test_leftovers_of_a_killed_build_are_removed(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = r.env_key("hf-datasets")
    stale = cache / f".{key}.build-killed"
    (stale / "bin").mkdir(parents=True)
    unfinished = cache / key  # a venv without its marker is not trusted
    unfinished.mkdir()
    monkeypatch.setattr(r, "_build", _fake_build)
    env = r.realenv("hf-datasets")
    assert not stale.exists()
    assert (env.root / r.MARKER).is_file()


def test_run_reports_the_output_of_a_failed_command(tmp_path: Path) -> None:
    env = r.RealEnv("host", Path(sys.prefix))  # any venv will do
    done = env.run("print('hello')", cwd=tmp_path)
    assert done.stdout == "hello\n"
    with pytest.raises(r.RealEnvError, match=r"exit 3[\s\S]*boom"):
        env.run("import sys; print('boom', file=sys.stderr); sys.exit(3)", cwd=tmp_path)
    failed = env.run(["-c", "raise SystemExit(4)"], cwd=tmp_path, check=False)
    assert failed.returncode == 4


def test_clone_is_a_private_copy(tmp_path: Path) -> None:
    source = tmp_path / "src"
    (source / "bin").mkdir(parents=True)
    (source / "bin" / "tool").write_text(f"#!{source}/bin/python\n")
    (source / "lib.txt").write_text("shared")
    copy = r.RealEnv("x", source).clone(tmp_path / "copy")
    assert (copy.root / "bin" / "tool").read_text() == f"#!{copy.root}/bin/python\n"
    assert (source / "bin" / "tool").read_text() == f"#!{source}/bin/python\n"
    (copy.root / "lib.txt").unlink()
    assert (source / "lib.txt").read_text() == "shared"


def test_a_library_venv_copied_from_the_torch_base_leaves_the_base_alone(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = cache / "torch-base"
    (base / "bin").mkdir(parents=True)
    (base / "bin" / "pip").write_text(f"#!{base}/bin/python\n")
    (base / r.MARKER).write_text('{"name": "torch"}')
    (base / "realenv-constraints.txt").write_text("torch==2.13.0+cpu\n")
    installs: list[tuple[str, ...]] = []
    monkeypatch.setattr(r, "_torch_base", lambda: r.RealEnv(r.TORCH_BASE, base))
    monkeypatch.setattr(r.RealEnv, "pip", lambda self, *args, cwd: installs.append(args))
    env = r.realenv("scale-nucleus")
    assert json.loads((env.root / r.MARKER).read_text())["name"] == "scale-nucleus"
    assert (env.root / "bin" / "pip").read_text() == f"#!{env.root}/bin/python\n"
    assert (base / r.MARKER).read_text() == '{"name": "torch"}'
    assert (base / "bin" / "pip").read_text() == f"#!{base}/bin/python\n"
    [args] = installs
    assert args[:3] == ("install", "--quiet", "-r")
    assert (args[-4], args[-2]) == ("-c", "--build-constraint")
    assert args[-3] == args[-1]
    assert Path(args[-1]).name == env.constraints.name  # in the folder being built


def test_torch_falls_back_to_the_plain_pypi_release_and_is_pinned_to_what_went_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, ...]] = []

    def pip(self: r.RealEnv, *args: str, cwd: Path, check: bool = True) -> SimpleNamespace:
        calls.append(args)
        return SimpleNamespace(returncode=1 if "torch==2.13.0+cpu" in args else 0)

    def run(self: r.RealEnv, code: str, *, cwd: Path) -> SimpleNamespace:
        return SimpleNamespace(stdout="2.13.0\n")

    monkeypatch.setattr(r.RealEnv, "pip", pip)
    monkeypatch.setattr(r.RealEnv, "run", run)
    env = r.RealEnv(r.TORCH_BASE, tmp_path)
    r._install_torch(env)
    assert calls == [
        ("install", "--quiet", "torch==2.13.0+cpu"),  # no local CPU wheel here
        ("install", "--quiet", "torch==2.13.0"),
    ]
    pins = [line for line in env.constraints.read_text().splitlines() if line.startswith("torch")]
    assert pins == ["torch==2.13.0"]
