"""Decathlon and nnU-Net v2 import and export: round trips, one report for bad input, no half."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest
from medstore.datastore import LocalDatastore
from medstore.datastore.cli.main import main
from medstore.datastore.errors import UnsupportedFormatError
from medstore.datastore.imaging import read_image
from medstore.datastore.interop.decathlon import export_decathlon, import_decathlon
from medstore.datastore.interop.nnunet import export_nnunet, import_nnunet, make_folds
from support.nifti import make_nifti

SHAPE = (8, 7, 5)
AFFINE = np.diag([1.5, 1.5, 3.0, 1.0])


def _save(path: Path, array: np.ndarray, affine: np.ndarray = AFFINE) -> Path:
    return make_nifti(path, array, affine)


def _volume(seed: int, channels: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = (*SHAPE, channels) if channels else SHAPE
    return rng.integers(-100, 200, size=shape).astype(np.int16)


def _label(seed: int, shape: Sequence[int] = SHAPE) -> np.ndarray:
    lab = np.zeros(tuple(shape), np.uint8)
    lab[1 + seed % 3 : 5, 2:5, 1:3] = 1
    lab[5:7, 1:3, 2:4] = 2
    return lab


@pytest.fixture
def make_decathlon(tmp_path: Path) -> Callable[..., Path]:
    """Factory: a Decathlon task folder with ``n`` training pairs and ``test`` test images."""

    def make(n: int = 3, *, test: int = 1, channels: int = 0, name: str = "Task09_Tiny") -> Path:
        root = tmp_path / name
        training = []
        for i in range(n):
            _save(root / "imagesTr" / f"case_{i:03d}.nii.gz", _volume(i, channels))
            _save(root / "labelsTr" / f"case_{i:03d}.nii.gz", _label(i))
            training.append(
                {
                    "image": f"./imagesTr/case_{i:03d}.nii.gz",
                    "label": f"./labelsTr/case_{i:03d}.nii.gz",
                }
            )
        tests = []
        for j in range(test):
            _save(root / "imagesTs" / f"case_{100 + j:03d}.nii.gz", _volume(100 + j, channels))
            tests.append(f"./imagesTs/case_{100 + j:03d}.nii.gz")
        modality = {"0": "CT"} if not channels else {str(c): f"MR{c}" for c in range(channels)}
        doc = {
            "name": "Tiny",
            "description": "test task",
            "tensorImageSize": "4D" if channels else "3D",
            "modality": modality,
            "labels": {"0": "background", "1": "liver", "2": "spleen"},
            "numTraining": n,
            "numTest": test,
            "training": training,
            "test": tests,
        }
        (root / "dataset.json").write_text(json.dumps(doc))
        return root

    return make


@pytest.fixture
def make_nnunet(tmp_path: Path) -> Callable[..., Path]:
    """Factory: an nnU-Net v2 raw dataset with ``n`` cases of ``channels`` files each."""

    def make(n: int = 4, *, channels: int = 1, test: int = 0, splits: Any = None) -> Path:
        root = tmp_path / "Dataset042_Tiny"
        for i in range(n):
            for c in range(channels):
                _save(root / "imagesTr" / f"tiny_{i:03d}_{c:04d}.nii.gz", _volume(10 * i + c))
            _save(root / "labelsTr" / f"tiny_{i:03d}.nii.gz", _label(i))
        for j in range(test):
            for c in range(channels):
                _save(root / "imagesTs" / f"tiny_{100 + j:03d}_{c:04d}.nii.gz", _volume(j + c))
        names = {str(c): ("CT" if channels == 1 else f"MR{c}") for c in range(channels)}
        doc = {
            "channel_names": names,
            "labels": {"background": 0, "liver": 1, "spleen": 2, "organs": [1, 2]},
            "numTraining": n,
            "file_ending": ".nii.gz",
        }
        (root / "dataset.json").write_text(json.dumps(doc))
        if splits is not None:
            (root / "splits_final.json").write_text(json.dumps(splits))
        return root

    return make


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


# ----------------------------------------------------------------------------- Decathlon import
def test_decathlon_import_copies_pairs_and_test_images(
    make_decathlon: Callable[..., Path], tmp_path: Path
) -> None:
    task = make_decathlon(3, test=2)
    store = LocalDatastore(tmp_path / "store")
    result = import_decathlon(task, store)
    assert result.image_ids == ["case_000", "case_001", "case_002", "case_100", "case_101"]
    assert result.labelled == 3
    assert sorted(store.get_labeled_images()) == ["case_000", "case_001", "case_002"]
    info = store.get_label_info("case_001", "final")
    assert info["label_info"] == [{"name": "liver", "idx": 1}, {"name": "spleen", "idx": 2}]
    assert store.get_image_info("case_100")["modality"] == "CT"
    stored = read_image(store.get_label_uri("case_001", "final")).array[0]
    original = read_image(task / "labelsTr" / "case_001.nii.gz").array[0]
    np.testing.assert_array_equal(stored, original)
    assert not Path(store.get_image_uri("case_000")).is_relative_to(task)


def test_decathlon_import_link_symlinks_images(
    make_decathlon: Callable[..., Path], tmp_path: Path
) -> None:
    task = make_decathlon(2, test=0)
    store = LocalDatastore(tmp_path / "store")
    import_decathlon(task, store, link=True)
    path = store.root / "case_000.nii.gz"
    assert path.is_symlink()
    assert Path(os.path.realpath(path)) == (task / "imagesTr" / "case_000.nii.gz").resolve()
    assert store.get_image_info("case_000")["source_path"].endswith("case_000.nii.gz")
    assert not (store.root / "labels" / "final" / "case_000.nii.gz").is_symlink()


def test_decathlon_multichannel_images_stay_4d(
    make_decathlon: Callable[..., Path], tmp_path: Path
) -> None:
    task = make_decathlon(2, test=0, channels=3)
    store = LocalDatastore(tmp_path / "store")
    import_decathlon(task, store)
    info = store.get_image_info("case_000")
    assert info["channels"] == 3
    assert info["channel_names"] == ["MR0", "MR1", "MR2"]
    assert read_image(store.get_image_uri("case_000")).array.shape[0] == 3


def test_decathlon_bad_folder_reports_every_problem_and_imports_nothing(
    make_decathlon: Callable[..., Path], tmp_path: Path
) -> None:
    task = make_decathlon(4, test=1)
    (task / "imagesTr" / "case_001.nii.gz").unlink()  # missing image
    _save(task / "labelsTr" / "case_002.nii.gz", _label(2, (8, 7, 6)))  # wrong shape
    shifted = AFFINE.copy()
    shifted[0, 3] = 5.0
    _save(task / "labelsTr" / "case_003.nii.gz", _label(3), shifted)  # wrong affine
    doc = json.loads((task / "dataset.json").read_text())
    doc["training"].append(dict(doc["training"][0]))  # duplicate id
    doc["training"].append({"image": "../../etc/passwd.nii.gz", "label": "./x.nii.gz"})
    (task / "dataset.json").write_text(json.dumps(doc))
    store = LocalDatastore(tmp_path / "store")
    before = _tree(store.root)
    with pytest.raises(UnsupportedFormatError, match="5 problem") as caught:
        import_decathlon(task, store)
    message = str(caught.value)
    for needle in (
        "case_001.nii.gz is missing",
        "'case_002': label does not match",
        "'case_003': label does not match",
        "'case_000' occurs 2 times",
        "outside the task folder",
        "nothing was imported",
    ):
        assert needle in message
    assert store.list_images() == []
    assert _tree(store.root) == before


def test_decathlon_import_refuses_ids_already_in_the_store(
    make_decathlon: Callable[..., Path], tmp_path: Path
) -> None:
    task = make_decathlon(2, test=0)
    store = LocalDatastore(tmp_path / "store")
    import_decathlon(task, store)
    checksum = store.get_image_info("case_000")["checksum"]
    with pytest.raises(UnsupportedFormatError, match="already in the store"):
        import_decathlon(task, store)
    assert store.get_image_info("case_000")["checksum"] == checksum


def test_decathlon_missing_dataset_json(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(UnsupportedFormatError, match=r"dataset\.json is missing"):
        import_decathlon(tmp_path / "empty", LocalDatastore(tmp_path / "store"))


def test_failure_inside_the_batch_writes_nothing(
    make_decathlon: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    task = make_decathlon(3, test=0)
    store = LocalDatastore(tmp_path / "store")
    calls = {"n": 0}
    real = LocalDatastore.save_label

    def flaky(self: LocalDatastore, *args: Any, **kwargs: Any) -> str:
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk full")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(LocalDatastore, "save_label", flaky)
    with pytest.raises(OSError, match="disk full"):
        import_decathlon(task, store)
    reopened = LocalDatastore(tmp_path / "store")
    assert reopened.list_images() == []
    assert not list(reopened.root.glob("*.nii.gz"))


# ----------------------------------------------------------------------------- Decathlon export
def test_decathlon_export_loads_with_monai(
    make_decathlon: Callable[..., Path], tmp_path: Path
) -> None:
    from monai.data import load_decathlon_datalist
    from monai.transforms import LoadImaged

    store = LocalDatastore(tmp_path / "store")
    import_decathlon(make_decathlon(3, test=1), store)
    out = tmp_path / "Task10_Out"
    doc = export_decathlon(store, out)
    assert doc["numTraining"] == 3 and doc["numTest"] == 1
    assert doc["labels"] == {"0": "background", "1": "liver", "2": "spleen"}
    datalist = load_decathlon_datalist(out / "dataset.json", True, "training", out)
    assert len(datalist) == 3
    loader = LoadImaged(keys=["image", "label"])
    for pair in datalist:
        loaded = loader(pair)
        assert tuple(loaded["image"].shape) == SHAPE
        assert tuple(loaded["label"].shape) == SHAPE
        assert set(np.unique(np.asarray(loaded["label"]))) <= {0, 1, 2}
    test = load_decathlon_datalist(out / "dataset.json", False, "test", out)
    assert [Path(t["image"]).name for t in test] == ["case_100.nii.gz"]


def test_export_refuses_a_non_empty_folder_and_stays_inside(
    make_decathlon: Callable[..., Path], tmp_path: Path
) -> None:
    store = LocalDatastore(tmp_path / "store")
    import_decathlon(make_decathlon(1, test=0), store)
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(FileExistsError, match="not empty"):
        export_decathlon(store, out)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    os.symlink(outside, out / "imagesTr")
    with pytest.raises(ValueError, match="outside"):
        export_decathlon(store, out, force=True)
    assert list(outside.iterdir()) == []


def test_decathlon_export_of_a_dicom_series_store(tmp_path: Path) -> None:
    from medstore.datastore.imaging import probe_image
    from support.dicom import make_dicom_series

    volume = np.arange(4 * 6 * 5, dtype=np.int16).reshape(4, 6, 5)
    make_dicom_series(tmp_path / "store" / "series1", volume)
    store = LocalDatastore(tmp_path / "store")
    assert store.list_images() == ["series1"]
    label = np.zeros((4, 6, 5), np.uint8)
    label[1:3, 2:4, 1:4] = 1
    store.save_label("series1", label, "final", {"label_info": [{"name": "x", "idx": 1}]})
    export_decathlon(store, tmp_path / "out")
    image = read_image(tmp_path / "out" / "imagesTr" / "series1.nii.gz")
    exported = read_image(tmp_path / "out" / "labelsTr" / "series1.nii.gz").array[0]
    np.testing.assert_array_equal(
        image.array[0], read_image(store.get_image_uri("series1")).array[0]
    )
    np.testing.assert_array_equal(exported, label)
    assert probe_image(tmp_path / "out" / "imagesTr" / "series1.nii.gz").shape == (4, 6, 5)


# ----------------------------------------------------------------------------- nnU-Net import
def test_nnunet_import_merges_channels_and_keeps_regions(
    make_nnunet: Callable[..., Path], tmp_path: Path
) -> None:
    src = make_nnunet(3, channels=2, test=1)
    store = LocalDatastore(tmp_path / "store")
    result = import_nnunet(src, store, link=True)
    assert result.image_ids == ["tiny_000", "tiny_001", "tiny_002", "tiny_100"]
    assert result.labelled == 3
    path = Path(store.get_image_uri("tiny_001"))
    assert not (store.root / "tiny_001.nii.gz").is_symlink()  # merged: always copied
    merged = nib.load(path)
    assert merged.shape == (*SHAPE, 2)
    np.testing.assert_array_equal(np.asarray(merged.dataobj)[..., 1], _volume(11))
    np.testing.assert_allclose(merged.affine, AFFINE)
    info = store.get_image_info("tiny_001")
    assert info["channel_names"] == ["MR0", "MR1"]
    assert info["merged_from"] == ["tiny_001_0000.nii.gz", "tiny_001_0001.nii.gz"]
    label_info = store.get_label_info("tiny_001", "final")
    assert label_info["label_info"] == [{"name": "liver", "idx": 1}, {"name": "spleen", "idx": 2}]
    assert label_info["nnunet_regions"] == {"organs": [1, 2]}


def test_nnunet_single_channel_link(make_nnunet: Callable[..., Path], tmp_path: Path) -> None:
    src = make_nnunet(2)
    store = LocalDatastore(tmp_path / "store")
    import_nnunet(src, store, link=True)
    assert (store.root / "tiny_000.nii.gz").is_symlink()
    assert store.get_image_info("tiny_000")["modality"] == "CT"


def test_nnunet_splits_final_becomes_persisted_splits(
    make_nnunet: Callable[..., Path], tmp_path: Path
) -> None:
    from medstore.datasets import VolumeDataset
    from medstore.datastore import SplitLog

    ids = [f"tiny_{i:03d}" for i in range(4)]
    folds = [
        {"train": ids[2:], "val": ids[:2]},
        {"train": ids[:2], "val": ids[2:]},
    ]
    store = LocalDatastore(tmp_path / "store")
    result = import_nnunet(make_nnunet(4, splits=folds), store)
    assert result.splits_saved == 4
    live = {k: v[0] for k, v in SplitLog(store).assignments().items()}
    assert live == {ids[0]: "fold0", ids[1]: "fold0", ids[2]: "fold1", ids[3]: "fold1"}
    parts = VolumeDataset(store).split(use_project_splits=True)
    assert sorted(parts) == ["fold0", "fold1"]
    # export gives the same folds back
    export_nnunet(store, tmp_path / "out")
    assert json.loads((tmp_path / "out" / "splits_final.json").read_text()) == folds


def test_nnunet_single_fold_is_train_and_val(
    make_nnunet: Callable[..., Path], tmp_path: Path
) -> None:
    from medstore.datastore import SplitLog

    ids = [f"tiny_{i:03d}" for i in range(3)]
    store = LocalDatastore(tmp_path / "store")
    import_nnunet(make_nnunet(3, splits=[{"train": ids[:2], "val": ids[2:]}]), store)
    live = {k: v[0] for k, v in SplitLog(store).assignments().items()}
    assert live == {ids[0]: "train", ids[1]: "train", ids[2]: "val"}


def test_nnunet_bad_folder_reports_every_problem(
    make_nnunet: Callable[..., Path], tmp_path: Path
) -> None:
    src = make_nnunet(4, channels=2, splits=[{"train": ["tiny_000"], "val": ["ghost"]}])
    (src / "imagesTr" / "tiny_001_0001.nii.gz").unlink()  # missing channel
    _save(src / "labelsTr" / "orphan.nii.gz", _label(0))  # label without images
    _save(src / "imagesTr" / "tiny_002_0001.nii.gz", _volume(0)[:, :, :4])  # channel mismatch
    _save(src / "imagesTr" / "badname.nii.gz", _volume(0))  # no _XXXX suffix
    doc = json.loads((src / "dataset.json").read_text())
    (src / "dataset.json").write_text(json.dumps({**doc, "numTraining": 7}))
    store = LocalDatastore(tmp_path / "store")
    with pytest.raises(UnsupportedFormatError) as caught:
        import_nnunet(src, store)
    message = str(caught.value)
    for needle in (
        "tiny_001_0001.nii.gz missing",
        "labelsTr/orphan.nii.gz: no images",
        "'tiny_002': channel file",
        "badname.nii.gz: not named",
        "numTraining is 7 but imagesTr has 4",
        "'ghost' is not a training case",
    ):
        assert needle in message, needle
    assert store.list_images() == []
    assert not store.side_path("splits.jsonl").exists()


# ----------------------------------------------------------------------------- nnU-Net export
def test_nnunet_export_layout_and_patient_grouped_folds(
    make_decathlon: Callable[..., Path], tmp_path: Path
) -> None:
    store = LocalDatastore(tmp_path / "store")
    import_decathlon(make_decathlon(6, test=1, channels=2), store)
    for i in range(6):
        store.update_image_info(f"case_{i:03d}", {"patient_id": f"P{i // 2}"})
    out = tmp_path / "Dataset001_Out"
    doc = export_nnunet(store, out, folds=5)
    assert doc["channel_names"] == {"0": "MR0", "1": "MR1"}
    assert doc["labels"] == {"background": 0, "liver": 1, "spleen": 2}
    assert doc["numTraining"] == 6 and doc["file_ending"] == ".nii.gz"
    assert sorted(p.name for p in (out / "imagesTr").iterdir())[:2] == [
        "case_000_0000.nii.gz",
        "case_000_0001.nii.gz",
    ]
    assert len(list((out / "imagesTr").iterdir())) == 12
    assert [p.name for p in (out / "imagesTs").iterdir()] != []
    channel = nib.load(out / "imagesTr" / "case_003_0001.nii.gz")
    assert channel.shape == SHAPE
    np.testing.assert_array_equal(np.asarray(channel.dataobj), _volume(3, 2)[..., 1])
    folds = json.loads((out / "splits_final.json").read_text())
    assert len(folds) == 3  # three patients
    for fold in folds:
        patients = {int(c[-3:]) // 2 for c in fold["val"]}
        assert len(patients) == 1
        assert not set(fold["val"]) & set(fold["train"])
        assert sorted(fold["val"] + fold["train"]) == [f"case_{i:03d}" for i in range(6)]


def test_make_folds_is_seeded_and_balanced() -> None:
    patients = {f"c{i}": f"p{i % 7}" for i in range(20)}
    folds = make_folds(patients, folds=5, seed=3)
    assert folds == make_folds(patients, folds=5, seed=3)
    sizes = sorted(len(f["val"]) for f in folds)
    assert sizes[-1] - sizes[0] <= 3
    assert make_folds({"a": "p"}, folds=5) == []


def test_nnunet_export_rejects_gaps_in_class_indices(tmp_path: Path) -> None:
    _save(tmp_path / "img.nii.gz", _volume(0))
    _save(tmp_path / "lab.nii.gz", _label(0))
    store = LocalDatastore(tmp_path / "store")
    store.add_image("a", tmp_path / "img.nii.gz")
    store.save_label(
        "a", tmp_path / "lab.nii.gz", "final", {"label_info": [{"name": "x", "idx": 2}]}
    )
    with pytest.raises(UnsupportedFormatError, match="not consecutive"):
        export_nnunet(store, tmp_path / "out")


# ----------------------------------------------------------------------------- CLI
def test_cli_import_export_round_trip(
    make_nnunet: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = make_nnunet(3)
    assert main(["import", "--format", "nnunet", str(src), str(tmp_path / "s")]) == 0
    assert "imported 3 image(s) (copied), 3 with a 'final' label" in capsys.readouterr().out
    assert main(["export", "--format", "decathlon", str(tmp_path / "s"), str(tmp_path / "d")]) == 0
    assert main(["import", "--format", "decathlon", str(tmp_path / "d"), str(tmp_path / "s2")]) == 0
    assert sorted(LocalDatastore(tmp_path / "s2").list_images()) == [
        "tiny_000",
        "tiny_001",
        "tiny_002",
    ]
    capsys.readouterr()
    (src / "labelsTr" / "tiny_000.nii.gz").unlink()
    (src / "labelsTr" / "tiny_001.nii.gz").unlink()
    assert main(["import", "--format", "nnunet", str(src), str(tmp_path / "s3")]) == 1
    err = capsys.readouterr().err
    assert "2 problem(s)" in err
    assert err.count("\n  - ") == 2
