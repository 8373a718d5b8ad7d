"""Issue 12 case 19: one split save is one unit, even when the process is killed mid-append.

``save`` appends a save's lines in one ``write``. SIGKILL during a large write stops it partway
(the kernel returns a short write to a dying process): 100,000 images re-assigned from train to
val, killed at random 10 times, left 200 to 17,661 of them in val and one with no split in 8
kills (after the change: 10 of 10 as before the save). The child here writes half of the save's
bytes and kills itself, which is what those kills left on disk. Replay applies
only complete saves: the log answers as before the interrupted save, and the next save is whole.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
from medstore.datastore import LocalDatastore, SplitLog

pytestmark = pytest.mark.contract  # runs once per store write path (support.contract)

_KILLED_HALFWAY = """
import os, signal, sys
import medstore.datastore.store.split_log as split_log
from medstore.datastore import LocalDatastore, SplitLog

real_write = os.write
def half_then_die(fd, data):
    real_write(fd, bytes(data[: len(data) // 2]))
    os.kill(os.getpid(), signal.SIGKILL)

store = LocalDatastore(sys.argv[1], refresh=False)
split_log.os.write = half_then_die
ids = [f"img{i:03d}" for i in range(200)]
SplitLog(store).save(dict.fromkeys(ids, "val"), source="local", force=True)
"""


def _splits(root: Path) -> dict[str, str]:
    store = LocalDatastore(root, refresh=False, read_only=True)
    try:
        return {image: a.split for image, a in SplitLog(store).assignments().items()}
    finally:
        store.close()


def test_a_save_killed_mid_append_is_not_applied_in_part(tmp_path: Path) -> None:
    root = tmp_path / "store"
    ids = [f"img{i:03d}" for i in range(200)]
    store = LocalDatastore(root)
    SplitLog(store).save(dict.fromkeys(ids, "train"), source="local")
    store.close()
    child = subprocess.run(
        [sys.executable, "-c", _KILLED_HALFWAY, str(root)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]
    assert _splits(root) == dict.fromkeys(ids, "train")  # before: ~50 in val, one in none
    store = LocalDatastore(root)
    assert SplitLog(store).save(dict.fromkeys(ids, "test"), source="local", force=True) == 200
    store.close()
    assert _splits(root) == dict.fromkeys(ids, "test")


def test_as_of_never_cuts_a_save_in_two(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: each line of a save had its own time, and ``as_of`` between two applied part."""
    from medstore.datastore.store import split_log

    ticks = iter(f"2026-01-01T10:00:{second:02d}.000000Z" for second in range(60))
    monkeypatch.setattr(split_log, "iso_utc", lambda *_: next(ticks))
    store = LocalDatastore(tmp_path / "store")
    try:
        SplitLog(store).save({"a": "train", "b": "train", "c": "train"}, source="local")
        got = SplitLog(store).assignments("2026-01-01T10:00:00.500000Z")
        assert {image: a.split for image, a in got.items()} == dict.fromkeys("abc", "train")
    finally:
        store.close()
