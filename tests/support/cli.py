"""Calling the ``medstore`` command in-process from tests: ``(exit status, stdout, stderr)``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from medstore.datastore.cli.main import main

Run = Callable[..., tuple[int, str, str]]


def cli_runner(capsys: pytest.CaptureFixture[str]) -> Run:
    """A function that runs ``main(argv)`` and returns its status and captured output."""

    def run(*argv: str | Path) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return code, out, err

    return run
