"""Crash points (issue 6 item 2): a save killed at any named point ends old or new, never mixed."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from medstore.datastore import LocalDatastore, crashpoints
from medstore.datastore.store.manifest import parse_manifest
from support import reliability_harness as h
from support.contract import WritePath

pytestmark = pytest.mark.contract  # runs once per store write path (support.contract)

# the journal path's own steps: a record half-written or not yet synced, a compaction's new
# manifest and new log (the direct path has none of them)
JOURNAL_POINTS = [
    "journal.mid_record",
    "journal.before_sync",
    "journal.before_replace",
    "journal.compact_manifest",
    "journal.compact_log",
]
POINTS = [
    "lock.acquired",
    "create.before_fsync",
    "pending.mid_write",
    "pending.half_written",
    "pending.before_replace",
    "pending.before_dir_fsync",
    "txn.after_record",
    "txn.after_step",
    "manifest.mid_write",
    "manifest.half_written",
    "manifest.before_replace",
    "manifest.before_dir_fsync",
    "txn.after_manifest",
    *JOURNAL_POINTS,
]
INFO_KEYS = ("mark",)


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A small store (img000 has a final label, img001 an alice label) and a mixed op list."""
    base = tmp_path_factory.mktemp("crash")
    template = base / "template"
    h.write_indexed_store(template, 4, labels={"final": [0], "alice": [1]})
    sources = base / "sources"
    sources.mkdir()
    for name, seed in (("a", 11), ("b", 12), ("c", 13)):
        (sources / f"{name}.nii.gz").write_bytes(h.seeded_nifti_bytes(seed))
    (sources / "new.nii.gz").write_bytes(h.seeded_nifti_bytes(14, dtype="int16"))
    src = str(sources)
    ops = [
        {
            "op": "save_label",
            "image": "img000",
            "tag": "final",
            "src": f"{src}/a.nii.gz",
            "mark": "a",
        },
        {
            "op": "save_label",
            "image": "img002",
            "tag": "final",
            "src": f"{src}/b.nii.gz",
            "mark": "b",
        },
        {"op": "update_image_info", "image": "img003", "info": {"mark": "u1"}},
        {"op": "compact"},  # the journal folded in half-way, and again near the end
        {"op": "promote_label", "image": "img001", "from": "alice", "to": "final"},
        {
            "op": "save_label",
            "image": "img000",
            "tag": "final",
            "src": f"{src}/c.nii.gz",
            "mark": "c",
        },
        {"op": "remove_label", "image": "img002", "tag": "final"},
        {"op": "add_image", "image": "img004", "src": f"{src}/new.nii.gz", "mark": "n"},
        {"op": "remove_image", "image": "img003"},
        {"op": "compact"},
        {"op": "restore_label", "image": "img000", "tag": "final", "version": 1},
    ]
    ops_file = base / "ops.json"
    ops_file.write_text(json.dumps(ops))
    return {"base": base, "template": template, "ops": ops, "ops_file": ops_file}


def _reference(scenario: dict[str, Any], point: str, tmp_path: Path) -> tuple[list[Any], int]:
    """Run the ops without crashing: the state after each, and how often ``point`` is reached."""
    root = tmp_path / "reference"
    shutil.copytree(scenario["template"], root, symlinks=True)
    states = [h.logical_state(root, info_keys=INFO_KEYS)]
    with crashpoints.armed_crashpoint(point, 10**9) as plan:
        h.run_ops(
            root,
            scenario["ops"],
            lambda i: states.append(h.logical_state(root, info_keys=INFO_KEYS)),
        )
    return states, plan.hits


# The journal path's steps are tried in full; the steps it shares with the direct path (the
# same transaction code) at their first and last visit, and without the interrupts, unless
# MEDSTORE_SOAK=1 (this keeps `make test` within its time on 2 cores).
SOAK = os.environ.get("MEDSTORE_SOAK") == "1"


def _occurrences(hits: int, *, brief: bool = False) -> list[int]:
    if brief:
        return sorted({1, hits} - {0}) if hits else []
    return sorted({1, 2, (hits + 1) // 2, hits} - {0}) if hits else []


def _brief(point: str, write_path: WritePath) -> bool:
    """Whether a shared step is tried briefly on this path (see :data:`SOAK`)."""
    return not SOAK and write_path.name == "journal" and point not in JOURNAL_POINTS


def _label_contents(root: Path) -> dict[str, str]:
    """Checksum → one path, for every label-like file under ``labels/``."""
    return {h.sha256_file(p): str(p) for p in (root / "labels").rglob("*.nii.gz") if p.is_file()}


def _kept_contents(root: Path) -> set[str]:
    """Checksums of every file anywhere in the store (labels, history, trash)."""
    return {h.sha256_file(p) for p in root.rglob("*") if p.is_file() and not p.is_symlink()}


def _check_stopped_store(root: Path, states: list[Any], acked: int, where: str) -> None:
    """A store whose writer was stopped after ``acked`` acknowledged ops ends old or new."""
    # Before anyone recovers: the manifest on disk still parses.
    parse_manifest((root / h.MANIFEST).read_bytes(), source="after crash")
    on_disk_before = _label_contents(root)
    # The next opener takes the lock at once and completes or drops the interrupted save.
    store = LocalDatastore(root, lock_timeout=2.0)
    state = h.logical_state(root, info_keys=INFO_KEYS)
    allowed = states[acked : acked + 2]
    assert state in allowed, f"{where} after {acked} acks: a mixed state"
    for obj in state.values():
        for tag_state in obj["labels"].values():
            assert tag_state["file"] is not None
            # refresh-adopted labels carry no checksum yet; saved ones must match their file
            assert tag_state["listed"] in (None, tag_state["file"])
    # Nothing that was on disk as a label file is destroyed by recovery.
    assert set(on_disk_before) <= _kept_contents(root), f"{where} lost a file"
    # Every label file is adopted or reported as an orphan; refresh deletes nothing.
    files = {p.relative_to(root).as_posix() for p in (root / "labels").rglob("*.nii.gz")}
    found = store.refresh()
    listed = {
        f"labels/{tag}/{image}{label['ext']}"
        for image, obj in store.json()["objects"].items()
        for tag, label in obj["labels"].items()
    }
    assert files <= listed | set(found.orphans)
    assert files <= {p.relative_to(root).as_posix() for p in (root / "labels").rglob("*.nii.gz")}
    assert not h.has_redo_records(root)


@pytest.mark.slow  # each point 5-10 s (a killed child process, then a reference run)
@pytest.mark.parametrize("point", POINTS)
def test_crash_at_point_ends_old_or_new(
    point: str, scenario: dict[str, Any], tmp_path: Path, write_path: WritePath
) -> None:
    if point in JOURNAL_POINTS and write_path.name != "journal":
        pytest.skip("a journal step: the direct path has no journal")
    states, hits = _reference(scenario, point, tmp_path)
    assert hits >= 2, f"{point} is reached only {hits} time(s): the scenario misses it"
    tried = 0
    for occurrence in _occurrences(hits, brief=_brief(point, write_path)):
        root = tmp_path / f"crash-{occurrence}"
        shutil.copytree(scenario["template"], root, symlinks=True)
        env = {**os.environ, "MEDSTORE_CRASHPOINT": f"{point}:{occurrence}"}
        run = subprocess.run(
            [sys.executable, str(h.HARNESS), "ops", str(root), str(scenario["ops_file"])],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert run.returncode == -signal.SIGKILL, (point, occurrence, run.stderr[-2000:])
        _check_stopped_store(root, states, run.stdout.count("ack "), f"{point}:{occurrence}")
        tried += 1
    print(f"\nCRASHPOINT {point}: reached {hits}x, {tried} crash states tried")
    assert tried >= 2


def test_orphan_label_without_image_is_reported_not_deleted(tmp_path: Path) -> None:
    root = tmp_path / "store"
    h.write_indexed_store(root, 2)
    ghost = root / "labels" / "final" / "ghost.nii.gz"
    ghost.write_bytes(h.seeded_nifti_bytes(5))
    found = LocalDatastore(root).refresh()
    assert "labels/final/ghost.nii.gz" in found.orphans
    assert ghost.read_bytes() == h.seeded_nifti_bytes(5)


def test_label_file_dropped_in_is_adopted_by_refresh(tmp_path: Path) -> None:
    root = tmp_path / "store"
    h.write_indexed_store(root, 2)
    store = LocalDatastore(root)
    (root / "labels" / "final" / "img001.nii.gz").write_bytes(h.seeded_nifti_bytes(6))
    store.refresh()
    assert store.get_labeled_images() == ["img001"]
    assert Path(store.get_label_uri("img001", "final")).read_bytes() == h.seeded_nifti_bytes(6)


# The child's exit status per interruption: Python re-raises an uncaught KeyboardInterrupt as
# SIGINT; SIGTERM's default action kills; the handled SIGTERM exits through SystemExit(143).
INTERRUPT_STATUS = {"sigint": -signal.SIGINT, "sigterm": -signal.SIGTERM, "sigterm-exit": 143}


@pytest.fixture(scope="module")
def references() -> dict[tuple[str, str], tuple[list[Any], int]]:
    """Reference runs, one per point, shared by its interruptions."""
    return {}


@pytest.mark.slow  # each point and interruption 3-8 s (child processes, a reference run per point)
@pytest.mark.parametrize("how", sorted(INTERRUPT_STATUS))
@pytest.mark.parametrize("point", POINTS)
def test_interrupt_at_point_ends_old_or_new(
    point: str,
    how: str,
    scenario: dict[str, Any],
    references: dict[tuple[str, str], tuple[list[Any], int]],
    tmp_path: Path,
    write_path: WritePath,
) -> None:
    """Ctrl-C (KeyboardInterrupt) or SIGTERM at a crash point: old state or new, never a
    manifest naming a label file that never landed."""
    if point in JOURNAL_POINTS and write_path.name != "journal":
        pytest.skip("a journal step: the direct path has no journal")
    if _brief(point, write_path):
        pytest.skip("a step shared with the direct path: interrupted there (all: MEDSTORE_SOAK=1)")
    key = (write_path.name, point)  # each write path reaches a point a different number of times
    if key not in references:
        references[key] = _reference(scenario, point, tmp_path)
    states, hits = references[key]
    for occurrence in _occurrences(hits):
        root = tmp_path / f"{how}-{occurrence}"
        shutil.copytree(scenario["template"], root, symlinks=True)
        env = {**os.environ, "MEDSTORE_CRASHPOINT": f"{point}:{occurrence}"}
        command = [sys.executable, str(h.HARNESS), "ops", str(root), str(scenario["ops_file"])]
        run = subprocess.run(
            [*command, "--interrupt", how], env=env, capture_output=True, text=True, timeout=120
        )
        where = f"{how} at {point}:{occurrence}"
        assert run.returncode == INTERRUPT_STATUS[how], (where, run.stderr[-2000:])
        _check_stopped_store(root, states, run.stdout.count("ack "), where)
