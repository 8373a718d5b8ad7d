"""MONAI Label 0.8.5's own datastore writing its stale manifest copy beside medstore loses nothing.

MONAI Label's ``LocalDatastore`` (without ``auto_reload``) keeps the manifest it loaded and
writes that copy back at each of its saves: entries medstore acknowledged in between vanish from
``datastore_v2.json``. medstore puts them back at its next lock or refresh; what MONAI Label
deliberately changed through its API (a label it removed) stays as MONAI Label left it.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from medstore.datastore import LocalDatastore
from realenv import marks, realenv
from support.nifti import make_nifti

pytestmark = marks("monailabel")

# MONAI Label's own datastore, kept open and driven line by line from stdin.
ML_DATASTORE = """
import json, sys
from monailabel.datastore.local import LocalDatastore
store = LocalDatastore(sys.argv[1], extensions=("*.nii.gz",))
print("ready", flush=True)
for line in sys.stdin:
    cmd, *args = line.split()
    if cmd == "save":
        image_id, tag, path = args
        store.save_label(image_id, path, tag, {"by": "monailabel"})
    elif cmd == "update":
        store.update_image_info(args[0], {"reviewed_in": "monailabel"})
    elif cmd == "remove":
        store.remove_label(args[0], args[1])
    elif cmd == "refresh":
        store.refresh()
    print("ok", flush=True)
"""


class MonaiLabel:
    """A MONAI Label 0.8.5 ``LocalDatastore`` in its own venv process."""

    def __init__(self, root: Path, cwd: Path) -> None:
        self.proc = subprocess.Popen(
            [str(realenv("monailabel").python), "-c", ML_DATASTORE, str(root)],
            cwd=cwd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._line() == "ready"

    def _line(self) -> str:
        assert self.proc.stdout is not None
        return self.proc.stdout.readline().strip()

    def __call__(self, *words: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(" ".join(words) + "\n")
        self.proc.stdin.flush()
        assert self._line() == "ok", f"MONAI Label failed on {words}"

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=60)


@pytest.fixture
def store_root(tmp_path: Path) -> Path:
    root = tmp_path / "store"
    for i in range(10):
        make_nifti(root / f"case{i}.nii.gz", np.full((4, 4, 3), i, np.int16))
    make_nifti(root / "labels" / "final" / "case2.nii.gz", np.ones((4, 4, 3), np.uint8))
    LocalDatastore(root, extensions=("*.nii.gz",)).close()
    return root


@pytest.fixture
def label_file(tmp_path: Path) -> Path:
    return make_nifti(tmp_path / "src" / "label.nii.gz", np.ones((4, 4, 3), np.uint8))


@pytest.fixture
def monai_label(store_root: Path, tmp_path: Path) -> Iterator[MonaiLabel]:
    ml = MonaiLabel(store_root, tmp_path)
    yield ml
    ml.close()


def _objects(root: Path) -> dict[str, Any]:
    return json.loads((root / "datastore_v2.json").read_text())["objects"]


def test_medstore_writes_come_back_after_monai_labels_stale_saves(
    store_root: Path, label_file: Path, monai_label: MonaiLabel
) -> None:
    store = LocalDatastore(store_root, extensions=("*.nii.gz",), refresh=False)
    store.save_label("case0", str(label_file), "reviewed", {"by": "medstore"})
    store.update_image_info("case1", {"patient_id": "P001"})
    store.add_tags("case1", ["checked"])
    store.update_label_info("case2", "final", {"score": 0.75})

    monai_label("save", "case3", "ml_tag", str(label_file))  # its stale copy, plus its label
    monai_label("update", "case4")
    stale = _objects(store_root)
    assert "reviewed" not in stale["case0"]["labels"]  # what MONAI Label's copy did
    assert "patient_id" not in stale["case1"]["image"]["info"]

    store.update_image_info("case5", {"x": 1})  # medstore's next lock
    objects = _objects(store_root)
    assert objects["case0"]["labels"]["reviewed"]["info"]["by"] == "medstore"
    assert objects["case1"]["image"]["info"]["patient_id"] == "P001"
    assert objects["case1"]["image"]["info"]["tags"] == ["checked"]
    assert objects["case2"]["labels"]["final"]["info"]["score"] == 0.75
    assert objects["case3"]["labels"]["ml_tag"]["info"]["by"] == "monailabel"
    assert objects["case4"]["image"]["info"]["reviewed_in"] == "monailabel"
    assert (store_root / "labels" / "reviewed" / "case0.nii.gz").is_file()
    store.close()


def test_a_label_monai_label_removes_through_its_api_stays_removed(
    store_root: Path, label_file: Path, monai_label: MonaiLabel
) -> None:
    store = LocalDatastore(store_root, extensions=("*.nii.gz",), refresh=False)
    store.save_label("case0", str(label_file), "reviewed", {"by": "medstore"})
    monai_label("refresh")  # MONAI Label reloads the manifest: its copy is up to date
    monai_label("remove", "case0", "reviewed")  # deletes the file, reloads, writes its manifest
    assert not (store_root / "labels" / "reviewed" / "case0.nii.gz").exists()
    store.update_image_info("case5", {"x": 1})
    assert "reviewed" not in store.get_labels_by_image_id("case0")
    assert "reviewed" not in _objects(store_root)["case0"]["labels"]
    store.close()


def test_two_hundred_interleaved_saves_with_monai_labels_own_datastore(
    store_root: Path, label_file: Path, monai_label: MonaiLabel, capsys: pytest.CaptureFixture[str]
) -> None:
    store = LocalDatastore(store_root, extensions=("*.nii.gz",), refresh=False)
    expected = []
    for i in range(200):
        image_id, tag = f"case{i % 10}", f"t{i:03d}"
        expected.append((image_id, tag))
        if i % 2:
            monai_label("save", image_id, tag, str(label_file))
        else:
            store.save_label(image_id, str(label_file), tag, {"by": "medstore", "i": i})

    def counts() -> tuple[int, int, int]:
        objects = _objects(store_root)
        labels = [objects[i]["labels"].get(t) for i, t in expected]
        files = [(store_root / "labels" / t / f"{i}.nii.gz").exists() for i, t in expected]
        infos = [(label or {}).get("info", {}) for label in labels[::2]]
        info_lost = sum(1 for n, info in enumerate(infos) if info.get("i") != 2 * n)
        return files.count(False), labels.count(None), info_lost

    left = counts()  # as MONAI Label's last stale save left them
    store.update_image_info("case9", {"x": 1})  # medstore's next lock
    after_lock = counts()
    store.refresh()
    after_refresh = counts()
    with capsys.disabled():
        print(
            "\n200 interleaved saves (label files lost, manifest entries missing, medstore infos "
            f"lost): MONAI Label's last save left {left}; medstore's next lock {after_lock}; "
            f"its refresh {after_refresh}"
        )
    assert left[1] > 0  # MONAI Label's stale copies did drop medstore's entries
    assert after_lock == after_refresh == (0, 0, 0)
    objects = _objects(store_root)
    for i in range(0, 200, 2):
        info = objects[f"case{i % 10}"]["labels"][f"t{i:03d}"]["info"]
        assert (info["by"], info["i"]) == ("medstore", i)
    store.close()
