"""MONAI Label 0.8.5 itself, in its own venv, reads what medstore writes and the other way round."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
from medstore.datastore import LocalDatastore
from realenv import ML_SERVER_EXTRAS, install_checkout, marks, realenv

pytestmark = marks("monailabel")

BENCH = Path(__file__).resolve().parents[1] / "bench"

ML_WRITES = """
import json, sys
import monailabel.interfaces.app  # the server's app class: imports only with pydicom < 3
from monailabel.datastore.local import LocalDatastore
store = LocalDatastore(sys.argv[1], extensions=("*.nii.gz",))
store.add_image("ct_ml", sys.argv[2], {"from": "monailabel"})
store.save_label("ct_ml", sys.argv[3], "final", {"label_info": [{"name": "liver", "idx": 1}]})
print(json.dumps({"images": store.list_images(), "labelled": store.get_labeled_images()}))
"""


def _nifti(path: Path, value: int, dtype: type) -> Path:
    nib.save(nib.Nifti1Image(np.full((6, 5, 4), value, dtype), np.eye(4)), path)
    return path


def test_medstore_opens_a_store_monai_label_wrote(tmp_path: Path) -> None:
    ct, lab = (
        _nifti(tmp_path / "ct.nii.gz", 0, np.int16),
        _nifti(tmp_path / "l.nii.gz", 1, np.uint8),
    )
    out = realenv("monailabel").run(
        ["-c", ML_WRITES, str(tmp_path / "store"), str(ct), str(lab)], cwd=tmp_path
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {
        "images": ["ct_ml"],
        "labelled": ["ct_ml"],
    }
    store = LocalDatastore(tmp_path / "store")
    assert store.list_images() == ["ct_ml"]
    assert store.get_image_info("ct_ml")["from"] == "monailabel"
    assert store.get_label_info("ct_ml", "final")["label_info"] == [{"name": "liver", "idx": 1}]
    assert store.get_labeled_images("final") == ["ct_ml"]


def test_round_trip_through_monai_label_loses_nothing(tmp_path: Path) -> None:
    """bench/ml_roundtrip.py: we write, MONAI Label reads and writes, we read again."""
    ml_python = realenv("monailabel").python
    result = subprocess.run(
        [sys.executable, str(BENCH / "ml_roundtrip.py"), "--ml-python", str(ml_python)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    lines = result.stdout.splitlines()
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(lines) == 7, lines
    assert all(line.startswith("ok ") for line in lines), lines


def test_reference_benchmark_runs_in_the_monai_label_venv(tmp_path: Path) -> None:
    """bench_store.py's MONAI Label column: bench/ml_reference.py on a tiny store."""
    env = realenv("monailabel")
    script = str(BENCH / "ml_reference.py")
    out = env.run(
        [script, "--root", str(tmp_path / "store"), "--n", "4", "--reps", "1", "--build"],
        cwd=tmp_path,
    )
    timings = json.loads(out.stdout.strip().splitlines()[-1])
    assert set(timings) >= {"open_no_manifest", "save_label_p50", "remove_label_p50"}
    assert all(seconds >= 0 for seconds in timings.values())
    doc = json.loads((tmp_path / "store" / "datastore_v2.json").read_text())
    assert len(doc["objects"]) == 4 + 1  # N images and the one add_image made


BESIDE_ML = """
import nibabel as nib, numpy as np, pydicom
from medstore.datastore import LocalDatastore
from monailabel.datastore.local import LocalDatastore as MonaiLabelDatastore
nib.save(nib.Nifti1Image(np.zeros((3, 3, 3), np.int16), np.eye(4)), "ct.nii.gz")
store = LocalDatastore("store")
store.add_image("a", "ct.nii.gz", {"k": 1})
print(pydicom.__version__, store.list_images(), MonaiLabelDatastore("store").list_images())
"""


def test_medstore_works_in_monai_labels_server_environment(tmp_path: Path) -> None:
    """Installed as MONAI Label's server would have it: --no-deps beside pydicom 2.4.4."""
    env = realenv("monailabel").clone(tmp_path / "venv")
    install_checkout(env, cwd=tmp_path, no_deps=True)
    env.pip("install", "--quiet", *env.constraint_args, *ML_SERVER_EXTRAS, cwd=tmp_path)
    out = env.run(BESIDE_ML, cwd=tmp_path).stdout.split("\n")[-2]
    assert out == "2.4.4 ['a'] ['a']"
