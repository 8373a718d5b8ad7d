"""Running the installed ``medstore`` console script as a real process, from tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

MEDSTORE = Path(sys.executable).with_name("medstore")


def console_env(**extra: str) -> dict[str, str]:
    """The environment for a child: the venv's ``bin`` first on PATH, no ``MEDSTORE_STORE``."""
    env = {k: v for k, v in os.environ.items() if k != "MEDSTORE_STORE"}
    env["PATH"] = f"{MEDSTORE.parent}{os.pathsep}{env.get('PATH', '')}"
    env["COLUMNS"] = "100"
    env.update(extra)
    return env


def run_medstore(
    *argv: str | Path, cwd: Path | None = None, timeout: float = 120, **extra_env: str
) -> subprocess.CompletedProcess[str]:
    """Run ``medstore ARGV...`` and return the finished process (text output captured)."""
    return subprocess.run(
        [str(MEDSTORE), *(str(a) for a in argv)],
        cwd=cwd,
        env=console_env(**extra_env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
