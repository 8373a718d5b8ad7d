"""Concurrency (issue 2): real processes and several instances on one folder lose no update."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from medstore.datastore import LocalDatastore
from support import reliability_harness as h

PROCESSES = 8
SAVES = 100


@pytest.mark.slow
def test_eight_processes_each_saving_100_labels_lose_none(tmp_path: Path) -> None:
    root = tmp_path / "store"
    ids = h.write_indexed_store(root, PROCESSES * SAVES)
    procs = []
    expected: dict[str, str] = {}
    for p in range(PROCESSES):
        src = tmp_path / f"label-{p}.nii.gz"
        src.write_bytes(h.seeded_nifti_bytes(p))
        mine = ids[p * SAVES : (p + 1) * SAVES]
        ops = [
            {"op": "save_label", "image": i, "tag": "final", "src": str(src), "mark": p}
            for i in mine
        ]
        expected.update(dict.fromkeys(mine, h.sha256_bytes(h.seeded_nifti_bytes(p))))
        ops_file = tmp_path / f"ops-{p}.json"
        ops_file.write_text(json.dumps(ops))
        procs.append(
            subprocess.Popen(
                [sys.executable, str(h.HARNESS), "ops", str(root), str(ops_file)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    for proc in procs:
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err[-2000:]
        assert out.count("ack ") == SAVES
    store = LocalDatastore(root, read_only=True)
    assert store.status()["label_tags"] == {"final": PROCESSES * SAVES}
    assert sorted(store.get_labeled_images()) == ids
    state = h.logical_state(root)
    for image_id, checksum in expected.items():
        label = state[image_id]["labels"]["final"]
        assert label["file"] == label["listed"] == checksum, image_id


def test_two_instances_in_one_process_writing_alternately_lose_nothing(tmp_path: Path) -> None:
    root = tmp_path / "store"
    h.write_indexed_store(root, 4)
    a, b = LocalDatastore(root), LocalDatastore(root)
    src = tmp_path / "l.nii.gz"
    for i in range(60):
        first, second = (a, b) if i % 2 == 0 else (b, a)
        # Same-sized manifests written back to back: the stat signature alone cannot tell them
        # apart (inode numbers are reused, mtimes are coarse).
        first.update_image_info("img000", {"who": f"{'ab'[i % 2]}{i:04d}"})
        assert second.get_image_info("img000")["who"] == f"{'ab'[i % 2]}{i:04d}"
        second.update_image_info("img001", {f"n{i}": i})
        src.write_bytes(h.seeded_nifti_bytes(i))
        first.save_label(f"img00{2 + i % 2}", src, f"t{i % 3}", {"i": i})
        second.add_tags("img000", [f"tag{i}"])
    for store in (a, b, LocalDatastore(root, read_only=True)):
        info = store.get_image_info("img001")
        assert all(info[f"n{i}"] == i for i in range(60))
        assert store.get_image_info("img000")["tags"] == [f"tag{i}" for i in range(60)]
        assert store.get_image_info("img000")["who"] == "b0059"
        assert store.get_label_info("img003", "t2")["i"] == 59
        assert len(store.label_history("img002", "t0")) == 10
