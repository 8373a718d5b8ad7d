"""Issue 17: exports that talk — channel names, subsets, refusals, progress, a MONAI datalist."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import pty
import struct
import subprocess
import termios
from pathlib import Path

import numpy as np
import pytest
from medstore.datastore import LocalDatastore
from medstore.datastore.errors import ImageNotFoundError, UnsupportedFormatError
from medstore.datastore.interop.datalist import export_datalist
from medstore.datastore.interop.decathlon import export_decathlon
from medstore.datastore.interop.export_options import ChannelChoice, ExportSelection
from medstore.datastore.interop.nnunet import export_nnunet
from medstore.datastore.store.split_log import SplitLog
from support.console import MEDSTORE, console_env, run_medstore
from support.nifti import make_nifti

pytestmark = pytest.mark.timeout(600)

AFFINE = np.diag([1.0, 1.0, 2.0, 1.0])


def _store(tmp_path: Path, *, low: int = 0, modality: str | None = None, n: int = 4) -> Path:
    root = tmp_path / "store"
    store = LocalDatastore(root)
    label = np.zeros((4, 5, 6), np.uint8)  # canonical (D, H, W) of a (6, 5, 4) file
    label[1:3, 1:3, 1:3] = 1
    for i in range(n):
        data = np.full((6, 5, 4), 100 + i, np.int16)
        data[0, 0, 0] = low
        src = make_nifti(tmp_path / "src" / f"c{i}.nii.gz", data, AFFINE)
        store.add_image(f"c{i}", src, {"modality": modality} if modality else {})
        if i < n - 1:
            store.save_label(f"c{i}", label, "final", {"label_info": [{"name": "organ", "idx": 1}]})
    store.add_tags("c1", ["hard"])
    store.close()
    return root


def test_channel_names_come_from_the_info_or_are_guessed_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    mr = LocalDatastore(_store(tmp_path / "mr", modality="MR"), read_only=True)
    assert export_nnunet(mr, tmp_path / "o1")["channel_names"] == {"0": "MR"}
    plain = LocalDatastore(_store(tmp_path / "plain"), read_only=True)
    with caplog.at_level(logging.WARNING, logger="medstore"):
        doc = export_nnunet(plain, tmp_path / "o2")
    assert doc["channel_names"] == {"0": "MR"}  # positive values: not CT (z-score in nnU-Net)
    assert "no modality in the images' info" in caplog.text and "guessed" in caplog.text
    ct = LocalDatastore(_store(tmp_path / "ct", low=-1024), read_only=True)
    assert export_decathlon(ct, tmp_path / "o3")["modality"] == {"0": "CT"}
    caplog.clear()
    chosen = export_nnunet(plain, tmp_path / "o4", channels=ChannelChoice(modality="T2"))
    assert chosen["channel_names"] == {"0": "T2"} and "guessed" not in caplog.text
    named = export_decathlon(plain, tmp_path / "o5", channels=ChannelChoice(channel_names=("ADC",)))
    assert named["modality"] == {"0": "ADC"}


def test_a_refused_export_creates_no_folder_and_names_the_images(tmp_path: Path) -> None:
    root = _store(tmp_path)
    store = LocalDatastore(root)
    two = make_nifti(tmp_path / "two.nii.gz", np.zeros((6, 5, 4, 2), np.int16), AFFINE)
    store.add_image("dual", two, {})
    out = tmp_path / "refused"
    with pytest.raises(UnsupportedFormatError, match=r"1 channel\(s\): c0, c1, c2, c3; 2 channel"):
        export_nnunet(store, out)
    assert not out.exists()
    # conflicting class names are refused before anything is created too
    other = np.zeros((4, 5, 6), np.uint8)
    other[0, 0, 0] = 1
    store.save_label("c3", other, "final", {"label_info": [{"name": "tumour", "idx": 1}]})
    for export in (export_decathlon, export_nnunet, export_datalist):
        with pytest.raises(UnsupportedFormatError):
            export(store, out, selection=ExportSelection(ids=("c0", "c3")))
        assert not out.exists(), export


def test_subsets_by_ids_image_tag_and_split(tmp_path: Path) -> None:
    store = LocalDatastore(_store(tmp_path))
    doc = export_decathlon(store, tmp_path / "ids", selection=ExportSelection(ids=("c0", "c2")))
    assert [t["image"] for t in doc["training"]] == ["./imagesTr/c0.nii.gz", "./imagesTr/c2.nii.gz"]
    doc = export_nnunet(store, tmp_path / "tag", selection=ExportSelection(image_tag="hard"))
    assert doc["numTraining"] == 1
    assert sorted(p.name for p in (tmp_path / "tag" / "imagesTr").iterdir()) == ["c1_0000.nii.gz"]
    SplitLog(store).save({"c0": "train", "c1": "train", "c2": "val"}, source="test")
    doc = export_decathlon(store, tmp_path / "split", selection=ExportSelection(split="train"))
    assert doc["numTraining"] == 2 and doc["numTest"] == 0
    with pytest.raises(ImageNotFoundError, match="nope"):
        export_decathlon(store, tmp_path / "bad", selection=ExportSelection(ids=("c0", "nope")))
    assert not (tmp_path / "bad").exists()


def test_datalist_loads_with_monai_from_persisted_splits(tmp_path: Path) -> None:
    from monai.data import load_decathlon_datalist

    store = LocalDatastore(_store(tmp_path))
    doc = export_datalist(store, tmp_path / "lists" / "all.json")
    assert list(doc) == ["training", "test"]  # no splits: labelled → training, others → test
    assert doc["test"] == [{"image": "../store/c3.nii.gz"}]
    SplitLog(store).save({"c0": "train", "c1": "train", "c2": "val"}, source="test")
    path = tmp_path / "lists" / "splits.json"
    doc = export_datalist(store, path)
    assert list(doc) == ["training", "validation"]  # no "test": [] (MONAI's loader fails on it)
    training = load_decathlon_datalist(str(path), data_list_key="training")
    validation = load_decathlon_datalist(str(path), data_list_key="validation")
    assert [Path(d["image"]).name for d in training] == ["c0.nii.gz", "c1.nii.gz"]
    assert all(Path(d["image"]).is_file() and Path(d["label"]).is_file() for d in training)
    assert Path(validation[0]["label"]) == Path(store.get_label_uri("c2", "final"))
    with pytest.raises(FileExistsError, match="--force"):
        export_datalist(store, path)


def test_cli_export_options(tmp_path: Path) -> None:
    root = _store(tmp_path)
    done = run_medstore(
        "--store", root, "export", "--format", "nnunet", tmp_path / "Dataset001_A",
        "--ids", "c0,c1", "--modality", "CT",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[:2] == [
        f"exported 2 training case(s) (ids c0, c1) to {tmp_path / 'Dataset001_A'} (nnunet)",
        "channels: 0=CT",
    ]
    done = run_medstore("--store", root, "export", "--format", "nnunet", tmp_path / "Dataset002_B")
    assert done.returncode == 0
    assert "medstore: WARNING: no modality in the images' info" in done.stderr
    done = run_medstore(
        "--store",
        root,
        "export",
        "--format",
        "datalist",
        tmp_path / "dl.json",
        "--image-tag",
        "hard",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"wrote {tmp_path / 'dl.json'}: training 1")
    assert (
        json.loads((tmp_path / "dl.json").read_text())["training"][0]["image"] == "store/c1.nii.gz"
    )


def test_cli_export_shows_a_progress_bar_on_a_terminal(tmp_path: Path) -> None:
    root = _store(tmp_path)
    primary, replica = pty.openpty()
    fcntl.ioctl(replica, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    try:
        proc = subprocess.run(
            [str(MEDSTORE), "--store", str(root), "export", "--format", "decathlon",
             str(tmp_path / "Task"), "--modality", "CT"],
            stderr=replica, stdout=subprocess.PIPE, text=True, env=console_env(),
            timeout=300, check=False,
        )  # fmt: skip
        os.close(replica)
        chunks = []
        while True:
            try:
                chunk = os.read(primary, 65536)
            except OSError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(primary)
    assert proc.returncode == 0
    shown = b"".join(chunks).decode(errors="replace")
    assert "exporting" in shown and "4/4" in shown
