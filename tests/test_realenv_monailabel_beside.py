"""A MONAI Label 0.8.5 datastore with ``auto_reload=True`` running beside medstore loses nothing.

MONAI Label's watcher reloads its manifest only on a "modified" event of ``datastore_v2.json``;
a replace by rename alone is a "moved" event, so it used to keep its stale copy and write it back
over medstore's acknowledged change at its next save.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from medstore.datastore import LocalDatastore
from realenv import marks, realenv
from support.nifti import make_nifti

pytestmark = [*marks("monailabel"), pytest.mark.contract]  # contract: once per write path

# A MONAI Label datastore kept open with auto_reload, driven line by line from stdin.
ML_SERVER = """
import json, sys
from monailabel.datastore.local import LocalDatastore
store = LocalDatastore(sys.argv[1], extensions=("*.nii.gz",), auto_reload=True)
print("ready", flush=True)
for line in sys.stdin:
    cmd, image_id = line.split()
    if cmd == "info":
        print(json.dumps(store.get_image_info(image_id)), flush=True)
    elif cmd == "save":
        store.update_image_info(image_id, {"reviewed_in": "monailabel"})
        print("saved", flush=True)
"""


def _ask(proc: subprocess.Popen[str], line: str) -> str:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(line + "\n")
    proc.stdin.flush()
    return proc.stdout.readline().strip()


def test_monai_label_with_auto_reload_keeps_medstore_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # on the journal path, a save reaches datastore_v2.json within this bound with no later write
    monkeypatch.setenv("MEDSTORE_COMPACT_AFTER_S", "2")
    root = tmp_path / "store"
    root.mkdir()
    for name in ("a", "b"):
        make_nifti(root / f"{name}.nii.gz", np.zeros((4, 4, 3), np.int16))
    LocalDatastore(root, extensions=("*.nii.gz",)).close()  # manifest written by medstore
    env = realenv("monailabel")
    proc = subprocess.Popen(
        [str(env.python), "-c", ML_SERVER, str(root)],
        cwd=tmp_path,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        store = LocalDatastore(root, extensions=("*.nii.gz",))
        store.update_image_info("a", {"patient_id": "P001"})  # acknowledged here
        seen: dict[str, object] = {}
        deadline = time.monotonic() + 15.0  # event delivery, not a speed check
        while time.monotonic() < deadline:
            seen = json.loads(_ask(proc, "info a"))
            if seen.get("patient_id") == "P001":
                break
            time.sleep(0.2)
        assert seen.get("patient_id") == "P001", "MONAI Label never reloaded medstore's write"
        assert _ask(proc, "save b") == "saved"  # MONAI Label writes its in-memory copy
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        proc.wait(timeout=30)
    after = LocalDatastore(root, extensions=("*.nii.gz",), refresh=False)
    assert after.get_image_info("a")["patient_id"] == "P001"
    assert after.get_image_info("b")["reviewed_in"] == "monailabel"
