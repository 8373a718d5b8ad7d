"""The README walkthrough runs as written: every command, in order, on a copy of sample_store/.

Each ``$ command`` line between the walkthrough markers is run with bash in a scratch folder that
holds a copy of ``sample_store/``, through the installed ``medstore`` console script; its standard
output must equal the lines shown under it once paths, dates, checksums, timings and training
figures are normalised. Training runs with the ``--epochs 1`` the README shows.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from support.console import console_env

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
BEGIN, END = "<!-- walkthrough: begin -->", "<!-- walkthrough: end -->"
SHOWN_HOME = "/home/me"


def walkthrough_steps(text: str) -> list[tuple[str, list[str]]]:
    """``(command, expected output lines)`` for each ``$`` line of the console blocks."""
    section = text.split(BEGIN, 1)[1].split(END, 1)[0]
    steps: list[tuple[str, list[str]]] = []
    for block in re.findall(r"```console\n(.*?)```", section, flags=re.S):
        for line in block.splitlines():
            if line.startswith("$ "):
                steps.append((line[2:], []))
            elif steps:
                steps[-1][1].append(line)
    return steps


_RULES = (
    (re.compile(r"\S*/medstore-demo-[^/\s]+"), "<tmp>"),
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z"), "<time>"),
    (re.compile(r"\b[0-9a-f]{16}\b"), "<checksum>"),
    (re.compile(r"\d+ threads"), "<n> threads"),
)
_FIGURES = re.compile(r"-?\d+\.\d+s?")


def normalise(lines: list[str], workdir: str | None = None) -> list[str]:
    """Lines with paths, times, checksums and training figures replaced by placeholders."""
    out = []
    for line in lines:
        if workdir:
            line = line.replace(workdir, SHOWN_HOME)
        for pattern, repl in _RULES:
            line = pattern.sub(repl, line)
        if line.startswith(("epoch ", "Done in ")):
            line = _FIGURES.sub("<x>", line)
        out.append(line.rstrip())
    while out and not out[-1]:
        out.pop()
    return out


def test_the_walkthrough_parses() -> None:
    steps = walkthrough_steps(README.read_text(encoding="utf-8"))
    assert len(steps) == 10
    assert all(c.startswith("medstore ") for c, _ in steps)
    for needed in ("init", "add", "label", "preview", "demo"):
        assert any(needed in c.split() for c, _ in steps), needed
    assert any("--epochs 1" in c for c, _ in steps)


@pytest.mark.timeout(900)
def test_readme_walkthrough_runs_as_shown(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    shutil.copytree(ROOT / "sample_store", work / "sample_store")
    env = console_env(TMPDIR=str(tmp_path))
    for command, expected in walkthrough_steps(README.read_text(encoding="utf-8")):
        done = subprocess.run(
            ["bash", "-c", command],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert done.returncode == 0, f"{command}\n{done.stderr}"
        got = normalise(done.stdout.splitlines(), str(work))
        assert got == normalise(expected), f"$ {command}\n" + "\n".join(got)
    assert (work / "phantom_01-final-preview.png").is_file()
