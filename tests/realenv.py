"""Throw-away venvs with real third-party libraries, one per library, cached between runs.

medstore reads and writes formats owned by other projects (MONAI Label, WEBKNOSSOS, Nucleus,
Datamint, nnU-Net) and shares import space with Hugging Face ``datasets``. Tests prove that
against the real libraries, each installed in its own venv and never as a project dependency:

* ``tests/realenv/<name>.txt`` lists what one venv holds (with the reason for any pin);
  ``tests/realenv/constraints.txt`` applies to every venv (torch pinned to its CPU build).
* A requirements file holding the line ``#realenv: +medstore-deps`` also gets medstore's own
  runtime dependencies, read from ``pyproject.toml`` (for venvs a test installs medstore into).
* A venv lives in ``$MEDSTORE_VENV_CACHE`` (default ``~/.cache/medstore/venvs``) as
  ``<name>-<hash>``, the hash taken over the requirements file, the constraints file, the Python
  version (and medstore's dependencies where included), so editing a requirements file builds
  a new venv and never reuses a stale one.
* ``torch==2.13.0`` goes in first: from a local ``+cpu`` wheel where pip finds one
  (``find-links``), else the plain PyPI release of the same version. It is installed once, into a
  base venv (``torch-<hash>``), and every library venv starts as a hard-linked copy of that base,
  so torch costs its install time and disk space once. Later installs, and the builds of source
  packages, are constrained to exactly the torch that went in.
* A build runs into a temporary folder beside the final one under a file lock, then is renamed
  into place, so parallel test workers build a venv once and a failed build leaves nothing.

Tests take their marks from ``marks(name)`` and run the venv's interpreter from ``tmp_path``::

    pytestmark = marks("hf-datasets")

    def test_it(tmp_path):
        env = realenv("hf-datasets")
        env.run("import datasets; print(datasets.__version__)", cwd=tmp_path)

From a shell, ``.venv/bin/python tests/realenv.py monailabel`` builds (or finds) the venv and
prints its interpreter, for example for ``bench/bench_store.py --ml-python``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from filelock import FileLock

if TYPE_CHECKING:
    import pytest

REQUIREMENTS_DIR = Path(__file__).resolve().with_name("realenv")
CONSTRAINTS = REQUIREMENTS_DIR / "constraints.txt"
CHECKOUT = Path(__file__).resolve().parents[1]
CACHE_ENV_VAR = "MEDSTORE_VENV_CACHE"
TORCH_VERSION = "2.13.0"
BUILD_TIMEOUT_S = 1800
"""Seconds a test may wait for a cold build (used as its pytest-timeout)."""
WITH_MEDSTORE_DEPS = "#realenv: +medstore-deps"
TORCH_BASE = "torch"
"""Cache name of the venv holding only torch, which every library venv is copied from."""
MARKER = "realenv.json"
ML_SERVER_EXTRAS = ("orjson", "msgspec", "defusedxml", "tqdm")
"""medstore's own needs that MONAI Label's server environment does not bring (installed beside a
``--no-deps`` medstore there)."""
"""Written last into a finished venv: what it was built from and how long the build took."""

_DROPPED_ENV = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV")


def marks(name: str) -> list[pytest.MarkDecorator]:
    """The marks of a test module that uses venv ``name``.

    ``realenv``; a pytest-timeout long enough for a cold build; and an xdist group, so that
    under ``pytest -n 2 --dist loadgroup`` one worker runs the module (building its venv once)
    while the other worker runs other tests instead of waiting for the same build.
    """
    import pytest

    group = pytest.mark.xdist_group(f"realenv-{name}")
    return [pytest.mark.realenv, pytest.mark.timeout(BUILD_TIMEOUT_S), group]


class RealEnvError(RuntimeError):
    """A venv could not be built, or a command in it failed."""


@dataclass(frozen=True)
class RealEnv:
    """One built venv: its folder and how to run its interpreter.

    Attributes:
        name: The requirements file's stem, e.g. ``"monailabel"``.
        root: The venv's folder.
    """

    name: str
    root: Path

    @property
    def python(self) -> Path:
        """The venv's interpreter."""
        return self.root / "bin" / "python"

    @property
    def constraints(self) -> Path:
        """The constraints the venv was built with, torch pinned to the build installed in it."""
        return self.root / "realenv-constraints.txt"

    @property
    def constraint_args(self) -> list[str]:
        """pip options that hold installs, and the builds of source packages, to the constraints.

        Build isolation ignores ``-c``: without ``--build-constraint`` a source package that needs
        torch to build (MONAI Label pulls ``sam2``) would fetch a CUDA torch for its build.
        """
        return ["-c", str(self.constraints), "--build-constraint", str(self.constraints)]

    def run(
        self,
        code_or_args: str | Sequence[str],
        *,
        cwd: Path,
        check: bool = True,
        timeout: float = 900,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run Python code (a string) or interpreter arguments (a sequence) in this venv.

        Args:
            code_or_args: Source for ``python -c``, or the arguments after ``python``.
            cwd: Working folder; tests pass ``tmp_path`` (some libraries write into it).
            check: Raise ``RealEnvError`` with the output when the exit status is not 0.
            timeout: Seconds before the command is killed.
            env: Extra environment variables.

        Returns:
            The finished process, stdout and stderr as text.

        Raises:
            RealEnvError: The command failed and ``check`` is true.
        """
        args = ["-c", code_or_args] if isinstance(code_or_args, str) else list(code_or_args)
        return _run(
            [str(self.python), *args],
            cwd=cwd,
            check=check,
            timeout=timeout,
            env=_child_env(self.root, env),
        )

    def pip(self, *args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run ``python -m pip ARGS`` in this venv (long timeout: installs download)."""
        return self.run(["-m", "pip", *args], cwd=cwd, check=check, timeout=BUILD_TIMEOUT_S)

    def clone(self, dest: Path) -> RealEnv:
        """A private copy at ``dest`` that a test may install into or uninstall from.

        Files are hard links where the filesystem allows (seconds, no extra space): pip
        replaces and removes files rather than writing into them, so the cached venv is
        untouched.

        Args:
            dest: A folder that does not exist yet.

        Returns:
            The copy.
        """
        try:
            shutil.copytree(self.root, dest, symlinks=True, copy_function=os.link)
        except (OSError, shutil.Error):
            shutil.rmtree(dest, ignore_errors=True)
            shutil.copytree(self.root, dest, symlinks=True)
        _rewrite_paths(dest, old=self.root, new=dest)
        return RealEnv(self.name, dest)


def cache_root() -> Path:
    """The folder holding every realenv venv: ``$MEDSTORE_VENV_CACHE`` or the user cache."""
    configured = os.environ.get(CACHE_ENV_VAR)
    if configured:
        return Path(configured).expanduser().resolve()
    return Path.home() / ".cache" / "medstore" / "venvs"


def requirements_file(name: str) -> Path:
    """The committed requirements file of venv ``name``.

    Raises:
        RealEnvError: There is no such file.
    """
    path = REQUIREMENTS_DIR / f"{name}.txt"
    if not path.is_file() or name == CONSTRAINTS.stem:
        known = sorted(p.stem for p in REQUIREMENTS_DIR.glob("*.txt") if p != CONSTRAINTS)
        raise RealEnvError(f"no venv named {name!r}; known: {', '.join(known)}")
    return path


def env_key(name: str) -> str:
    """``<name>-<hash>``: the hash covers the requirements, the constraints and Python's version."""
    digest = hashlib.sha256()
    digest.update(requirements_file(name).read_bytes())
    digest.update(b"\0")
    digest.update(CONSTRAINTS.read_bytes())
    digest.update(f"\0py{sys.version_info.major}.{sys.version_info.minor}".encode())
    digest.update("\0".join(_extra_requirements(name)).encode())
    return f"{name}-{digest.hexdigest()[:12]}"


def realenv(name: str) -> RealEnv:
    """The venv for ``name``, built first if the cache does not hold it yet.

    Safe to call from several processes at once: one builds, the others wait for it.

    Args:
        name: A requirements file's stem in ``tests/realenv/``.

    Returns:
        The ready venv.

    Raises:
        RealEnvError: The build failed (nothing is left behind).
    """
    return _cached(name, env_key(name), _build)


def _cached(name: str, key: str, build: Callable[[str, Path, Path], None]) -> RealEnv:
    """The venv ``key`` in the cache; else ``build(name, temp, final)`` it, then rename it there."""
    cache = cache_root()
    cache.mkdir(parents=True, exist_ok=True)
    final = cache / key
    if (final / MARKER).is_file():
        return RealEnv(name, final)
    with FileLock(str(cache / f"{key}.lock"), timeout=BUILD_TIMEOUT_S):
        if (final / MARKER).is_file():
            return RealEnv(name, final)
        for stale in [final, *cache.glob(f".{key}.build-*")]:
            shutil.rmtree(stale, ignore_errors=True)
        building = Path(tempfile.mkdtemp(prefix=f".{key}.build-", dir=cache))
        try:
            build(name, building, final)
            building.rename(final)
        except BaseException:
            shutil.rmtree(building, ignore_errors=True)
            raise
    return RealEnv(name, final)


def install_checkout(env: RealEnv, *, cwd: Path, no_deps: bool = False) -> Path:
    """``pip install`` this checkout into ``env``, non-editable, as a user would install it.

    Only what the wheel is built from is copied to ``cwd`` first, so the build never writes into
    the work tree. Dependencies are constrained like the venv's own (torch stays the CPU build).

    Args:
        env: The venv (usually a ``clone``).
        cwd: A scratch folder.
        no_deps: Install medstore alone, with none of its dependencies.

    Returns:
        The wheel that was built and installed (``pip install --no-deps WHEEL`` reinstalls it).
    """
    source = cwd / "medstore-src"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build")
    for part in ("datastore", "datasets"):
        shutil.copytree(CHECKOUT / part, source / part, ignore=ignore)
    for part in ("pyproject.toml", "README.md"):
        shutil.copy2(CHECKOUT / part, source / part)
    dist = cwd / "dist"
    env.pip("wheel", "--quiet", "--no-deps", *env.constraint_args, "-w", str(dist), str(source),
            cwd=cwd)  # fmt: skip
    [wheel] = dist.glob("medstore-*.whl")
    args = ["install", "--quiet", *env.constraint_args, str(wheel)]
    env.pip(*args, *(["--no-deps"] if no_deps else []), cwd=cwd)
    return wheel


def _torch_base() -> RealEnv:
    """pip and torch only: every library venv starts as a hard-linked copy of it."""
    digest = hashlib.sha256(CONSTRAINTS.read_bytes())
    digest.update(f"\0py{sys.version_info.major}.{sys.version_info.minor}".encode())
    return _cached(TORCH_BASE, f"{TORCH_BASE}-{digest.hexdigest()[:12]}", _build_base)


def _build_base(name: str, building: Path, final: Path) -> None:
    start = time.monotonic()
    _run([sys.executable, "-m", "venv", str(building)], cwd=building.parent, timeout=600)
    env = RealEnv(name, building)
    env.pip("install", "--quiet", "--upgrade", "pip", cwd=building)
    _install_torch(env)
    _finish(env, final, start)


def _build(name: str, building: Path, final: Path) -> None:
    start = time.monotonic()
    building.rmdir()
    env = RealEnv(name, _torch_base().clone(building).root)
    wanted = ["-r", str(requirements_file(name)), *_extra_requirements(name)]
    env.pip("install", "--quiet", *wanted, *env.constraint_args, cwd=building)
    _finish(env, final, start)


def _finish(env: RealEnv, final: Path, start: float) -> None:
    """Point the venv at its final folder and write the marker that says it is complete."""
    _rewrite_paths(env.root, old=env.root, new=final)
    path = REQUIREMENTS_DIR / f"{env.name}.txt"
    record = {
        "name": env.name,
        "requirements": path.read_text() if path.is_file() else "",
        "constraints": env.constraints.read_text(),
        "python": sys.version.split()[0],
        "build_seconds": round(time.monotonic() - start, 1),
    }
    marker = env.root / MARKER
    marker.unlink(missing_ok=True)  # in a copy of the base it is a hard link to the base's
    marker.write_text(json.dumps(record, indent=2) + "\n")


def medstore_dependencies() -> list[str]:
    """medstore's runtime requirements as ``pyproject.toml`` declares them."""
    with (CHECKOUT / "pyproject.toml").open("rb") as file:
        return list(tomllib.load(file)["project"]["dependencies"])


def _extra_requirements(name: str) -> list[str]:
    lines = requirements_file(name).read_text().splitlines()
    return medstore_dependencies() if WITH_MEDSTORE_DEPS in lines else []


def _install_torch(env: RealEnv) -> None:
    """torch first: the pinned CPU build where pip can find it, else PyPI's same version."""
    lines = CONSTRAINTS.read_text().splitlines()
    pins = [line.split("#")[0].split("==", 1)[1].strip() for line in lines if _is_torch(line)]
    wanted = pins[0] if pins else TORCH_VERSION
    first = env.pip("install", "--quiet", f"torch=={wanted}", cwd=env.root, check=False)
    if first.returncode != 0:
        env.pip("install", "--quiet", f"torch=={wanted.split('+')[0]}", cwd=env.root)
    probe = "import importlib.metadata as m; print(m.version('torch'))"
    installed = env.run(probe, cwd=env.root).stdout.strip()
    pinned = [f"torch=={installed}" if _is_torch(line) else line for line in lines]
    env.constraints.write_text("\n".join(pinned) + "\n")


def _is_torch(line: str) -> bool:
    return line.split("==")[0].strip().lower() == "torch"


def _rewrite_paths(root: Path, *, old: Path, new: Path) -> None:
    """Point the scripts' shebangs and ``pyvenv.cfg`` at the venv's new folder."""
    before, after = str(old).encode(), str(new).encode()
    for path in [root / "pyvenv.cfg", *(root / "bin").iterdir()]:
        if path.is_symlink() or not path.is_file():
            continue
        data = path.read_bytes()
        if before in data:
            # A new file, never a write into this one: in a clone it is a hard link to the cache.
            fresh = path.with_name(f".{path.name}.rewrite")
            fresh.write_bytes(data.replace(before, after))
            shutil.copymode(path, fresh)
            fresh.replace(path)


def _child_env(root: Path, extra: Mapping[str, str] | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _DROPPED_ENV}
    env["VIRTUAL_ENV"] = str(root)
    env["PATH"] = f"{root / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONNOUSERSITE"] = "1"
    env.update(extra or {})
    return env


def _run(
    args: list[str],
    *,
    cwd: Path,
    timeout: float,
    check: bool = True,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        raise RealEnvError(
            f"{' '.join(args)}\nexit {result.returncode}\n--- stdout\n{result.stdout[-4000:]}"
            f"\n--- stderr\n{result.stderr[-4000:]}"
        )
    return result


def main(argv: list[str] | None = None) -> int:
    """Build or find venvs and print each one's interpreter, one per line."""
    names = sorted(p.stem for p in REQUIREMENTS_DIR.glob("*.txt") if p != CONSTRAINTS)
    parser = argparse.ArgumentParser(description="Build or find a realenv venv; print its python.")
    parser.add_argument("names", nargs="*", help=f"any of: {', '.join(names)} (default: all)")
    args = parser.parse_args(argv)
    for name in args.names or names:
        start = time.monotonic()
        try:
            env = realenv(name)
        except RealEnvError as err:
            print(err, file=sys.stderr)
            return 1
        print(f"{name}: ready in {time.monotonic() - start:.0f} s", file=sys.stderr)
        print(env.python)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
