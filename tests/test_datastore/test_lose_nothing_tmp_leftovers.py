"""Leftovers of killed writes never stay for good: the label maps staged by annotations.

``VolumeSegmentation`` label maps are written to ``.medstore/tmp/`` and handed to
``save_label``. A process killed in between (crash point ``annotations.label_map``) left the map
there for good: nothing ever cleared that folder. A later map clears maps older than an hour (a
map in use lives as long as one save_label, lock wait included; never an hour).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from medstore.datastore.annotations import VolumeSegmentation
from medstore.datastore.annotations.labels import save_segmentation_label
from medstore.datastore.store.local import LocalDatastore
from support.stores import MakeStore, simple_case

pytestmark = pytest.mark.contract  # runs once per store write path (support.contract)

_SAVE_MAP = """
import sys
import numpy as np
from medstore.datastore import LocalDatastore
from medstore.datastore.annotations import VolumeSegmentation
from medstore.datastore.annotations.labels import save_segmentation_label
store = LocalDatastore(sys.argv[1], refresh=False)
seg = VolumeSegmentation.from_semantic_segmentation(
    np.zeros((4, 5, 6), np.uint8), {"liver": 1}, created_by="r")
save_segmentation_label(store, "case_0", seg)
"""


def _maps(root: Path) -> list[str]:
    folder = root / ".medstore" / "tmp"
    return sorted(os.listdir(folder)) if folder.is_dir() else []


def test_a_label_map_left_by_a_killed_save_is_cleared_later(make_store: MakeStore) -> None:
    store = make_store({"case_0": simple_case(0)})
    store.close()
    env = {**os.environ, "MEDSTORE_CRASHPOINT": "annotations.label_map:1"}
    child = subprocess.run(
        [sys.executable, "-c", _SAVE_MAP, str(store.root)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]
    left = _maps(store.root)
    assert left, "the killed save left no label map: the crash point was not reached"
    long_ago = time.time() - 2 * 3600  # found by a later session
    for name in left:
        os.utime(store.root / ".medstore" / "tmp" / name, (long_ago, long_ago))
    again = LocalDatastore(store.root, lock_timeout=5.0)
    try:
        seg = VolumeSegmentation.from_semantic_segmentation(
            np.zeros((4, 5, 6), np.uint8), {"liver": 1}, created_by="r"
        )
        assert save_segmentation_label(again, "case_0", seg) == "r"
    finally:
        again.close()
    assert _maps(store.root) == []
