"""Kill -9 torture (issue 6 item 1): writers SIGKILLed at random lose no acknowledged save."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support import reliability_harness as h

pytestmark = pytest.mark.contract  # runs once per store write path (support.contract)

SOAK = os.environ.get("MEDSTORE_SOAK") == "1"
DURATION = 300.0 if SOAK else float(os.environ.get("MEDSTORE_TORTURE_S", "20"))
MIN_KILLS = 300


def _torture(tmp_path: Path, kind: str, duration: float) -> tuple[Path, dict]:
    root = tmp_path / "store"
    h.write_indexed_store(root, 8, labels={f"w{i}": [] for i in range(4)})
    out = tmp_path / "events.json"
    subprocess.run(
        [
            sys.executable,
            str(h.HARNESS),
            "torture",
            str(root),
            "--out",
            str(out),
            "--duration",
            str(duration),
            "--kind",
            kind,
            "--min-kills",
            str(MIN_KILLS if kind == "good" else 0),
        ],
        check=True,
        timeout=4 * duration + 120,
        stderr=subprocess.PIPE if kind != "good" else None,
    )
    return root, json.loads(out.read_text())


@pytest.mark.slow
@pytest.mark.timeout(4 * DURATION + 240)
def test_kill9_torture_loses_no_acknowledged_save(tmp_path: Path) -> None:
    root, run = _torture(tmp_path, "good", DURATION)
    problems, figures = h.verify_torture(root, run["events"])
    print(
        f"\nTORTURE kills={run['kills']} duration={run['duration']:.1f}s "
        f"acked_labels={figures['acked_labels']} acked_infos={figures['acked_infos']} "
        f"losses={figures['losses']} writer_errors={run['exits']} "
        f"leftover_temp_files={figures['leftover_temp_files']}"
    )
    assert problems == []
    assert figures["losses"] == 0
    assert run["exits"] == 0, "a writer died of an error, not of a kill"
    assert run["kills"] >= MIN_KILLS
    assert run["duration"] >= DURATION
    assert figures["acked_labels"] >= 20 and figures["acked_infos"] >= 20


@pytest.mark.parametrize("kind", ["broken", "stale"])
def test_harness_catches_a_broken_writer(tmp_path: Path, kind: str) -> None:
    """In-place, unlocked writes (and MONAI Label's stale-copy writes) must be reported."""
    root, run = _torture(tmp_path, kind, 3.0)
    problems, figures = h.verify_torture(root, run["events"], check_history=False)
    print(f"\nBROKEN[{kind}] kills={run['kills']} problems={len(problems)} {problems[:2]}")
    assert figures["acked_labels"] > 0
    assert problems, "the harness failed to notice a writer that loses data"
