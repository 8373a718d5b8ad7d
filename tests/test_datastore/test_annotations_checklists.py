"""The API checklists behind the issue's counts: one item per line, a verdict and a why."""

from __future__ import annotations

from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
VERDICTS = {"WORKS", "DIFFERS", "N.A."}


@pytest.mark.parametrize(
    "name", ["datamint_annotations_items.txt", "nucleus_items.txt", "webknossos_items.txt"]
)
def test_checklist_lines(name: str) -> None:
    items = [
        line for line in (FIXTURES / name).read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]  # fmt: skip
    assert len(items) >= 20
    names = []
    for line in items:
        parts = [part.strip() for part in line.split(" | ")]
        assert len(parts) == 3, line
        item, verdict, why = parts
        assert item and why and verdict in VERDICTS, line
        names.append(item)
    assert len(set(names)) == len(names), "an item is listed twice"
