"""Issue 12 cases 1 and 2: the filesystem probes leave nothing behind in the store, ever.

A writable store probes its filesystem's name rules once, with throw-away files in
``.medstore/``. A process killed in the middle of that probe (the crash point ``probe.names``)
must not leave a probe file there for good: the next probe clears leftovers of earlier, killed
probes (never the fresh files of a probe running beside it in another process).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from medstore.datastore.store.fs_probe import probe_names
from medstore.datastore.store.local import LocalDatastore

pytestmark = pytest.mark.contract  # runs once per store write path (support.contract)

_ADD_IN_CHILD = """
import sys
from medstore.datastore.store.local import LocalDatastore
store = LocalDatastore(sys.argv[1], lock_timeout=5.0)
store.add_image("case_0", sys.argv[2])
"""


def _probe_files(side: Path) -> list[str]:
    return sorted(name for name in os.listdir(side) if name.startswith(".name-probe-"))


def test_a_probe_killed_midway_leaves_no_file_for_good(
    tmp_path: Path, nifti_file: Callable[..., Path]
) -> None:
    root = tmp_path / "store"
    source = nifti_file("a.nii.gz", shape=(6, 5, 4))
    env = {**os.environ, "MEDSTORE_CRASHPOINT": "probe.names:1"}
    run = subprocess.run(
        [sys.executable, "-c", _ADD_IN_CHILD, str(root), str(source)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == -signal.SIGKILL, run.stderr[-2000:]
    side = root / ".medstore"
    left = _probe_files(side)
    assert left, "the killed probe left no file: the crash point was not reached"
    long_ago = time.time() - 3600  # found by a later session
    for name in left:
        os.utime(side / name, (long_ago, long_ago), follow_symlinks=False)
    store = LocalDatastore(root, lock_timeout=5.0)
    try:
        store.add_image("case_0", source)  # the first write of this store probes again
        assert store.list_images() == ["case_0"]
    finally:
        store.close()
    assert _probe_files(side) == []


def test_a_fresh_probe_file_of_another_process_is_left_alone(tmp_path: Path) -> None:
    """Another process's probe running now is not disturbed (its answer would be wrong)."""
    fresh = tmp_path / ".name-probe-0123abcd-Ab"
    fresh.touch()
    probe_names(tmp_path)
    assert _probe_files(tmp_path) == [fresh.name]
