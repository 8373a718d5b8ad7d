"""MONAI Label 0.8.5 writing datastore_v2.json while medstore journals its saves, at 10^4 images.

At 10^4 images medstore's ``auto`` write path keeps saves in its journal (the manifest is folded
later). MONAI Label's own ``LocalDatastore`` meanwhile rewrites the whole manifest at each of its
saves, from the copy it loaded. Both sides' saves must survive: medstore readers see all of them
at once, and after the fold MONAI Label (reloading) sees medstore's too.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from medstore.datastore import LocalDatastore
from realenv import marks, realenv
from support.nifti import make_nifti

pytestmark = marks("monailabel")

N_IMAGES = 10_000
ROUNDS = 30

ML_DATASTORE = """
import json, sys
from monailabel.datastore.local import LocalDatastore
store = LocalDatastore(sys.argv[1], extensions=("*.nii.gz",))
print("ready", flush=True)
for line in sys.stdin:
    cmd, *args = line.split()
    if cmd == "update":
        store.update_image_info(args[0], {"monailabel": int(args[1])})
        print("ok", flush=True)
    elif cmd == "save":
        store.save_label(args[0], args[1], "ml", {"by": "monailabel"})
        print("ok", flush=True)
    elif cmd == "get":
        store.refresh()
        print(json.dumps(store.get_image_info(args[0])), flush=True)
"""


def _ask(proc: subprocess.Popen[str], line: str) -> str:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(line + "\n")
    proc.stdin.flush()
    return proc.stdout.readline().strip()


def _manifest_objects(root: Path) -> dict[str, Any]:
    return json.loads((root / "datastore_v2.json").read_bytes())["objects"]


@pytest.mark.slow  # 10^4 files indexed by both programs, MONAI Label rewriting the manifest
def test_monai_label_saves_while_medstore_journals_at_ten_thousand_images(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEDSTORE_WRITE_PATH", "auto")  # 10^4 >= its threshold: the journal
    root = tmp_path / "store"
    root.mkdir()
    source = make_nifti(tmp_path / "src" / "tiny.nii.gz", np.zeros((2, 2, 2), np.int16))
    for i in range(N_IMAGES):
        os.link(source, root / f"case{i:05d}.nii.gz")
    label = make_nifti(tmp_path / "src" / "label.nii.gz", np.ones((2, 2, 2), np.uint8))
    LocalDatastore(root, extensions=("*.nii.gz",)).close()  # the manifest, written by medstore
    proc = subprocess.Popen(
        [str(realenv("monailabel").python), "-c", ML_DATASTORE, str(root)],
        cwd=tmp_path,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        store = LocalDatastore(root, extensions=("*.nii.gz",), refresh=False)
        manifest_before = (root / "datastore_v2.json").read_bytes()
        for i in range(ROUNDS):  # interleaved: one save each, alternately
            store.update_image_info(f"case{i:05d}", {"medstore": i})
            if i == 0:  # the first save went to the journal: the manifest is untouched
                assert (root / "datastore_v2.json").read_bytes() == manifest_before
            assert _ask(proc, f"update case{5000 + i:05d} {i}") == "ok"
            if i % 10 == 0:
                assert _ask(proc, f"save case{5000 + i:05d} {label}") == "ok"
        reader = LocalDatastore(root, read_only=True)
        for i in range(ROUNDS):  # medstore readers see both sides' saves, before any fold
            assert reader.get_image_info(f"case{i:05d}")["medstore"] == i
            assert reader.get_image_info(f"case{5000 + i:05d}")["monailabel"] == i
        assert reader.get_label_info("case05010", "ml")["by"] == "monailabel"
        store.compact()
        objects = _manifest_objects(root)
        for i in range(ROUNDS):  # folded into the manifest, MONAI Label's saves kept
            assert objects[f"case{i:05d}"]["image"]["info"]["medstore"] == i
            assert objects[f"case{5000 + i:05d}"]["image"]["info"]["monailabel"] == i
        assert objects["case05020"]["labels"]["ml"]["info"]["by"] == "monailabel"
        seen = json.loads(_ask(proc, "get case00007"))  # MONAI Label, reloading, sees ours
        assert seen["medstore"] == 7
        store.close()
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        proc.wait(timeout=120)
