"""Killed dataset imports lose nothing: a re-run of ``medstore import`` completes the store.

An nnU-Net import writes two durable things: the images with their labels (one transaction), then
the split assignments of ``splits_final.json`` (the split log). A ``medstore import`` process is
SIGKILLed at named crash points (``MEDSTORE_CRASHPOINT``) and after random delays; the same import
is then run again and the store must end exactly as an uninterrupted import leaves it: every
case's image and label with their info and bytes, and every split assignment. A re-run adds only
what is missing; a case whose id is in the store with other content is still refused. A Decathlon
import (no splits) is one transaction: a kill leaves all of it or none.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from medstore.datastore import LocalDatastore, SplitLog
from medstore.datastore.cli.main import main
from medstore.datastore.errors import UnsupportedFormatError
from medstore.datastore.interop.decathlon import import_decathlon
from medstore.datastore.interop.nnunet import import_nnunet
from medstore.datastore.store.staging import file_checksum
from support.nifti import make_nifti

pytestmark = pytest.mark.contract  # runs once per store write path (support.contract)

CASES = 6
AFFINE = np.diag([1.5, 1.5, 3.0, 1.0])
SHAPE = (8, 7, 5)
IDS = [f"tiny_{i:03d}" for i in range(CASES)]
FOLDS = [{"train": [c for c in IDS if c not in IDS[k::3]], "val": IDS[k::3]} for k in range(3)]
# Fields that differ between two runs of the same import (times, the store's own path, the
# image version ids every addition gets).
VOLATILE = {"ts", "saved_at", "path", "medstore.image_version"}
CLI = "import sys; from medstore.datastore.cli import main; sys.exit(main())"


def _volume(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(-100, 200, size=SHAPE).astype(np.int16)


def _label(seed: int) -> np.ndarray:
    lab = np.zeros(SHAPE, np.uint8)
    lab[1 + seed % 3 : 5, 2:5, 1:3] = 1
    lab[5:7, 1:3, 2:4] = 2
    return lab


def make_nnunet(root: Path, *, channels: int = 1) -> Path:
    """An nnU-Net v2 raw dataset of :data:`CASES` cases with a three-fold ``splits_final.json``."""
    for i, case in enumerate(IDS):
        for c in range(channels):
            make_nifti(root / "imagesTr" / f"{case}_{c:04d}.nii.gz", _volume(10 * i + c), AFFINE)
        make_nifti(root / "labelsTr" / f"{case}.nii.gz", _label(i), AFFINE)
    names = {str(c): "CT" if channels == 1 else f"MR{c}" for c in range(channels)}
    doc = {
        "channel_names": names,
        "labels": {"background": 0, "liver": 1, "spleen": 2},
        "numTraining": CASES,
        "file_ending": ".nii.gz",
    }
    (root / "dataset.json").write_text(json.dumps(doc))
    (root / "splits_final.json").write_text(json.dumps(FOLDS))
    return root


def make_decathlon(root: Path) -> Path:
    """A Decathlon task folder of :data:`CASES` training pairs."""
    training = []
    for i, case in enumerate(IDS):
        make_nifti(root / "imagesTr" / f"{case}.nii.gz", _volume(i), AFFINE)
        make_nifti(root / "labelsTr" / f"{case}.nii.gz", _label(i), AFFINE)
        training.append(
            {"image": f"./imagesTr/{case}.nii.gz", "label": f"./labelsTr/{case}.nii.gz"}
        )
    doc = {
        "name": "Tiny",
        "modality": {"0": "CT"},
        "labels": {"0": "background", "1": "liver", "2": "spleen"},
        "training": training,
        "test": [],
    }
    (root / "dataset.json").write_text(json.dumps(doc))
    return root


def _stable(info: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in info.items() if k not in VOLATILE}


def store_state(root: Path) -> dict[str, Any]:
    """Everything an import leaves, without times: image/label info, bytes, split assignments."""
    with LocalDatastore(root) as store:
        images = {}
        for image_id in sorted(store.list_images()):
            info = store.get_image_info(image_id)
            assert file_checksum(store.get_image_uri(image_id)) == info["checksum"], image_id
            labels = {}
            for tag in sorted(store.get_labels_by_image_id(image_id)):
                label = store.get_label_info(image_id, tag)
                assert file_checksum(store.get_label_uri(image_id, tag)) == label["checksum"]
                labels[tag] = _stable(label)
            images[image_id] = {"info": _stable(info), "labels": labels}
        splits = {i: a.split for i, a in SplitLog(store).assignments().items()}
        return {"images": images, "splits": splits}


def run_cli(*args: str) -> int:
    """``medstore ARGS`` in this process (the re-run)."""
    return main(list(args))


def _child_env() -> dict[str, str]:
    """This environment without a crash plan."""
    return {k: v for k, v in os.environ.items() if k != "MEDSTORE_CRASHPOINT"}


def cli_process(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """``medstore ARGS`` as a real child process."""
    return subprocess.Popen(
        [sys.executable, "-c", CLI, *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture(scope="module")
def nnunet_reference(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict]]:
    """The dataset and the state an uninterrupted ``medstore import --format nnunet`` leaves."""
    base = tmp_path_factory.mktemp("nnunet")
    src = make_nnunet(base / "Dataset042_Tiny")
    assert run_cli("import", "--format", "nnunet", str(src), str(base / "reference")) == 0
    state = store_state(base / "reference")
    assert sorted(state["images"]) == IDS
    assert all(entry["labels"].keys() == {"final"} for entry in state["images"].values())
    assert state["splits"] == {c: f"fold{k}" for k in range(3) for c in IDS[k::3]}
    yield src, state


def _rerun_completes(src: Path, store: Path, reference: dict[str, Any]) -> None:
    assert run_cli("import", "--format", "nnunet", str(src), str(store)) == 0
    assert store_state(store) == reference
    # A third run finds everything done: it adds nothing and changes nothing.
    assert run_cli("import", "--format", "nnunet", str(src), str(store)) == 0
    assert store_state(store) == reference


# Each point with the visit that kills: images+labels committed but no splits yet; the
# transaction's redo record written; half its steps done; a file half staged.
CRASHES = [
    "txn.after_manifest:1",
    "txn.after_record:1",
    f"txn.after_step:{CASES}",
    "create.before_fsync:3",
]


@pytest.mark.slow  # a child process per crash point (3-10 s each on a loaded machine)
@pytest.mark.parametrize("crash", CRASHES)
def test_nnunet_import_killed_at_a_crash_point_is_completed_by_a_rerun(
    crash: str, nnunet_reference: tuple[Path, dict], tmp_path: Path
) -> None:
    src, reference = nnunet_reference
    store = tmp_path / "store"
    env = {**_child_env(), "MEDSTORE_CRASHPOINT": crash}
    child = cli_process("import", "--format", "nnunet", str(src), str(store), env=env)
    _, err = child.communicate(timeout=240)
    assert child.returncode == -signal.SIGKILL, (crash, err[-2000:])
    _rerun_completes(src, store, reference)


def _wait_for(path: Path, child: subprocess.Popen[str]) -> None:
    """Until ``path`` exists (the import has started writing) or the child has ended."""
    while not path.exists() and child.poll() is None:
        time.sleep(0.01)


@pytest.mark.slow  # a child process per seed
@pytest.mark.parametrize("seed", range(4))
def test_nnunet_import_killed_at_a_random_moment_is_completed_by_a_rerun(
    seed: int, nnunet_reference: tuple[Path, dict], tmp_path: Path
) -> None:
    src, reference = nnunet_reference
    store = tmp_path / "store"
    child = cli_process("import", "--format", "nnunet", str(src), str(store), env=_child_env())
    _wait_for(store / ".medstore", child)
    time.sleep(random.Random(seed).uniform(0.0, 1.5))
    child.send_signal(signal.SIGKILL)
    child.communicate(timeout=240)
    _rerun_completes(src, store, reference)


def test_rerun_refuses_a_case_stored_with_other_content(
    nnunet_reference: tuple[Path, dict], tmp_path: Path
) -> None:
    src, reference = nnunet_reference
    changed = shutil.copytree(src, tmp_path / "changed")
    store = LocalDatastore(tmp_path / "store")
    import_nnunet(src, store)
    make_nifti(changed / "imagesTr" / "tiny_002_0000.nii.gz", _volume(99), AFFINE)
    make_nifti(changed / "labelsTr" / "tiny_004.nii.gz", _label(2), AFFINE)  # 4 % 3 != 2
    with pytest.raises(UnsupportedFormatError, match="2 problem") as caught:
        import_nnunet(changed, store)
    message = str(caught.value)
    assert "'tiny_002': an image of that id with other content is already in the store" in message
    assert "'tiny_004': its 'final' label in the store has other content" in message
    assert store_state(store.root) == reference


def test_rerun_adds_a_missing_label_and_the_splits(
    nnunet_reference: tuple[Path, dict], tmp_path: Path
) -> None:
    src, reference = nnunet_reference
    with LocalDatastore(tmp_path / "store") as store:
        info = {"source_format": "nnunet", "modality": "CT"}
        store.add_image("tiny_001", src / "imagesTr" / "tiny_001_0000.nii.gz", info)
        result = import_nnunet(src, store)
        assert result.already_present == []  # its label was missing: the case was not done
        assert result.image_ids == IDS
        assert result.splits_saved == CASES
    assert store_state(tmp_path / "store") == reference
    with LocalDatastore(tmp_path / "store") as store:
        again = import_nnunet(src, store)
    assert (again.already_present, again.splits_saved) == (IDS, 0)


def test_rerun_of_a_merged_multichannel_import_is_complete(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = make_nnunet(tmp_path / "Dataset043_Two", channels=2)
    assert run_cli("import", "--format", "nnunet", str(src), str(tmp_path / "reference")) == 0
    reference = store_state(tmp_path / "reference")
    # Images and labels in the store, no splits yet (as a kill between the two leaves it).
    without_splits = shutil.copytree(src, tmp_path / "without-splits")
    (without_splits / "splits_final.json").unlink()
    with LocalDatastore(tmp_path / "store") as store:
        assert import_nnunet(without_splits, store).splits_saved == 0
    capsys.readouterr()
    assert run_cli("import", "--format", "nnunet", str(src), str(tmp_path / "store")) == 0
    out = capsys.readouterr().out
    assert "imported 0 image(s) (copied), 0 with a 'final' label" in out
    assert f"{CASES} case(s) already in the store with the same content" in out
    assert f"split assignments saved: {CASES} (fold0, fold1, fold2)\n" in out
    assert store_state(tmp_path / "store") == reference
    assert run_cli("import", "--format", "nnunet", str(src), str(tmp_path / "store")) == 0
    assert f"split assignments saved: 0 (fold0, fold1, fold2), {CASES} already saved" in (
        capsys.readouterr().out
    )


@pytest.mark.slow  # a child process per crash point
@pytest.mark.parametrize("crash", CRASHES[1:])
def test_decathlon_import_killed_leaves_all_or_nothing(crash: str, tmp_path: Path) -> None:
    task = make_decathlon(tmp_path / "Task09_Tiny")
    store = tmp_path / "store"
    child = cli_process(
        "import",
        "--format",
        "decathlon",
        str(task),
        str(store),
        env={**_child_env(), "MEDSTORE_CRASHPOINT": crash},
    )
    _, err = child.communicate(timeout=240)
    assert child.returncode == -signal.SIGKILL, (crash, err[-2000:])
    state = store_state(store)
    if state["images"]:
        assert sorted(state["images"]) == IDS
        assert all(entry["labels"].keys() == {"final"} for entry in state["images"].values())
    else:
        with LocalDatastore(store) as target:
            assert sorted(import_decathlon(task, target).image_ids) == IDS
