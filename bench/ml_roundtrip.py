"""Both-ways compatibility with MONAI Label 0.8.5, on real files, by running MONAI Label itself.

Usage:
    .venv/bin/python bench/ml_roundtrip.py [--ml-python PYTHON]

``PYTHON`` is an interpreter with ``monailabel==0.8.5``; by default the cached venv of the tests
(``tests/realenv.py monailabel``, built on first use, a few minutes) is used.

medstore writes a store (images, a replaced label with history, info); MONAI Label's own
``LocalDatastore`` opens it, checks what it sees, saves a label and updates info; medstore opens it
again and checks that nothing was lost. Exits non-zero on any mismatch.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from medstore.datastore import LocalDatastore

ROOT = Path(__file__).resolve().parents[1]

ML_STEP = """
import json, sys
from monailabel.datastore.local import LocalDatastore
ds = LocalDatastore(sys.argv[1])
seen = {"status": ds.status(), "final_info": ds.get_label_info("a", "final"),
        "image_info": ds.get_image_info("a")}
ds.save_label("b", sys.argv[2], "alice", {"client_id": "alice"})
ds.update_image_info("a", {"ml_key": 1})
print(json.dumps(seen))
"""


def monailabel_python() -> str:
    """The interpreter of the tests' cached MONAI Label 0.8.5 venv, built first if missing."""
    out = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "realenv.py"), "monailabel"],
        stdout=subprocess.PIPE,
        text=True,
        check=True,
    )
    return out.stdout.strip().splitlines()[-1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ml-python", help="python with monailabel==0.8.5 (default: the tests')")
    args = parser.parse_args(argv)
    ml_python = args.ml_python or monailabel_python()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name, dtype, value in (("ct.nii.gz", np.int16, 0), ("lab.nii.gz", np.uint8, 1)):
            nib.save(nib.Nifti1Image(np.full((6, 5, 4), value, dtype), np.eye(4)), work / name)
        store = LocalDatastore(work / "store")
        store.add_image("a", work / "ct.nii.gz", {"patient_id": "P1", "tags": ["x"]})
        store.add_image("b", work / "ct.nii.gz")
        classes = {"label_info": [{"name": "liver", "idx": 1}]}
        store.save_label("a", work / "lab.nii.gz", "final", classes)
        store.save_label("a", work / "lab.nii.gz", "final", classes)
        out = subprocess.run(
            [ml_python, "-c", ML_STEP, str(work / "store"), str(work / "lab.nii.gz")],
            cwd=work,
            capture_output=True,
            text=True,
            check=True,
        )
        seen = json.loads(out.stdout.strip().splitlines()[-1])
        reopened = LocalDatastore(work / "store")
        checks = {
            "MONAI Label sees our status": seen["status"]["label_tags"] == {"final": 1},
            "MONAI Label sees our label_info": seen["final_info"]["label_info"]
            == classes["label_info"],
            "MONAI Label sees our tags": seen["image_info"]["tags"] == ["x"],
            "we see MONAI Label's label": reopened.get_label_info("b", "alice")["client_id"]
            == "alice",
            "we see MONAI Label's info": reopened.get_image_info("a")["ml_key"] == 1,
            "our keys survive its write": reopened.get_image_info("a")["patient_id"] == "P1",
            "history survives its write": len(reopened.label_history("a", "final")) == 2,
        }
    for name, ok in checks.items():
        print(f"{'ok  ' if ok else 'FAIL'} {name}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
