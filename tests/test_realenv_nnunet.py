"""nnU-Net v2 checks the raw dataset medstore exports; medstore imports the one nnU-Net writes."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
from medstore.datastore import LocalDatastore
from medstore.datastore.interop.nnunet import export_nnunet, import_nnunet
from realenv import marks, realenv

pytestmark = marks("nnunetv2")

CLASSES = [{"name": "liver", "idx": 1}, {"name": "tumor", "idx": 2}]

NNUNET_VERIFIES = """
import json, sys
from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity
from nnunetv2.utilities.dataset_name_id_conversion import convert_dataset_name_to_id
verify_dataset_integrity(sys.argv[1], num_processes=1)
print(json.dumps({"id": convert_dataset_name_to_id(sys.argv[1].rsplit("/", 1)[-1])}))
"""

NNUNET_WRITES = """
import sys
from nnunetv2.dataset_conversion.generate_dataset_json import generate_dataset_json
generate_dataset_json(sys.argv[1], channel_names={0: "CT"},
                      labels={"background": 0, "liver": 1, "tumor": 2},
                      num_training_cases=2, file_ending=".nii.gz", dataset_name="Dataset002_Back")
"""


def _nnunet_env() -> dict[str, str]:
    return {name: "unused" for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")}


def _volume(seed: int, *, label: bool) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if label:
        data = np.zeros((8, 7, 6), np.uint8)
        data[1:4, 1:4, 1:4] = 1
        data[5:7, 4:6, 2:5] = 2
        return data
    return rng.integers(-100, 100, (8, 7, 6)).astype(np.int16)


def _save(path: Path, data: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, np.diag([0.8, 0.8, 2.0, 1.0])), path)
    return path


def test_nnunet_verifies_the_dataset_medstore_exports(tmp_path: Path) -> None:
    store = LocalDatastore(tmp_path / "store")
    for i in range(3):
        store.add_image(f"case_{i}", _save(tmp_path / f"in/ct_{i}.nii.gz", _volume(i, label=False)))
        label = _save(tmp_path / f"in/lab_{i}.nii.gz", _volume(i, label=True))
        store.save_label(f"case_{i}", label, "final", {"label_info": CLASSES})
    dataset = tmp_path / "Dataset001_Tiny"
    export_nnunet(store, dataset, folds=3)
    out = realenv("nnunetv2").run(
        ["-c", NNUNET_VERIFIES, str(dataset)], cwd=tmp_path, env=_nnunet_env()
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"id": 1}
    assert sorted(p.name for p in (dataset / "labelsTr").iterdir()) == [
        f"case_{i}.nii.gz" for i in range(3)
    ]


def test_medstore_imports_a_dataset_json_nnunet_wrote(tmp_path: Path) -> None:
    dataset = tmp_path / "Dataset002_Back"
    for i in range(2):
        _save(dataset / f"imagesTr/case_{i}_0000.nii.gz", _volume(i, label=False))
        _save(dataset / f"labelsTr/case_{i}.nii.gz", _volume(i, label=True))
    realenv("nnunetv2").run(["-c", NNUNET_WRITES, str(dataset)], cwd=tmp_path, env=_nnunet_env())
    assert json.loads((dataset / "dataset.json").read_text())["numTraining"] == 2
    store = LocalDatastore(tmp_path / "store")
    result = import_nnunet(dataset, store)
    assert sorted(result.image_ids) == ["case_0", "case_1"]
    assert result.labelled == 2
    assert sorted(store.get_labeled_images("final")) == ["case_0", "case_1"]
    info = store.get_label_info("case_0", "final")["label_info"]
    assert [(c["name"], c["idx"]) for c in info] == [("liver", 1), ("tumor", 2)]
