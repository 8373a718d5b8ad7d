"""Issue 12 case 13: an id reused after ``remove_image`` starts with nothing of the old image.

Every image that enters the store (``add_image``, ``add_images``, a refresh or the watcher indexing
a new file, a replacement) gets a new image version id in its info. Annotations, kept label
versions, split assignments and the decode cache belong to the version they were made for: a new
image with an old id sees none of them, and they come back when the old image is restored.
``restore_label`` checks the kept label fits the current image.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from medstore.datastore import LocalDatastore, SplitLog
from medstore.datastore.annotations import BoxAnnotation
from medstore.datastore.errors import (
    AnnotationError,
    ImageNotFoundError,
    LabelGeometryError,
    LabelNotFoundError,
)
from medstore.datastore.store.image_versions import image_version, versions_in
from support.nifti import NiftiFile, make_nifti

pytestmark = pytest.mark.contract  # runs once per store write path (support.contract)

VERSION_KEY = "medstore.image_version"


@pytest.fixture
def store(tmp_path: Path) -> LocalDatastore:
    return LocalDatastore(tmp_path / "store", lock_timeout=5.0)


def _cube(nifti_file: NiftiFile, name: str, size: int, value: int = 1) -> Path:
    return nifti_file(name, shape=(size, size, size), value=value)


def _box() -> BoxAnnotation:
    return BoxAnnotation.from_points([(1, 1, 1), (2, 2, 2)], identifier="nodule")


def _patient_a_then_b(store: LocalDatastore, nifti_file: NiftiFile) -> BoxAnnotation:
    """Patient A (4x4x4) with a box, two label saves and a split; removed; B (8x8x8) added."""
    store.add_image("case", _cube(nifti_file, "a.nii.gz", 4), {"patient_id": "A"})
    box = _box()
    store.annotations.add("case", box)
    store.save_label("case", np.ones((4, 4, 4), np.uint8), "final")
    store.save_label("case", np.full((4, 4, 4), 2, np.uint8), "final")
    SplitLog(store).save({"case": "train"}, source="local")
    store.remove_image("case")
    store.add_image("case", _cube(nifti_file, "b.nii.gz", 8, value=5), {"patient_id": "B"})
    return box


# ---------------------------------------------------------------- (a) annotations


def test_box_of_removed_image_is_not_on_the_new_image(
    store: LocalDatastore, nifti_file: NiftiFile
) -> None:
    box = _patient_a_then_b(store, nifti_file)
    assert store.annotations.list("case") == []
    assert store.annotations.list("case", include_deleted=True) == []
    with pytest.raises(AnnotationError, match="no annotation"):
        store.annotations.get("case", str(box.id))
    # the same box drawn on B is B's own (same content id), not A's taken over
    assert store.annotations.add("case", _box()) == box.id
    (mine,) = store.annotations.list("case")
    assert mine.id == box.id
    store.annotations.delete("case", str(box.id), hard=True)
    assert store.annotations.list("case") == []


# ---------------------------------------------------------------- (b) label history


def test_label_history_of_removed_image_is_not_shown_or_restored(
    store: LocalDatastore, nifti_file: NiftiFile
) -> None:
    _patient_a_then_b(store, nifti_file)
    assert store.label_history("case", "final") == []
    with pytest.raises(LabelNotFoundError, match="earlier image"):
        store.restore_label("case", "final", 1)
    assert store.get_labels_by_image_id("case") == {}
    # B's own history starts from its own saves
    store.save_label("case", np.ones((8, 8, 8), np.uint8), "final")
    store.save_label("case", np.full((8, 8, 8), 3, np.uint8), "final")
    history = store.label_history("case", "final")
    assert [r.get("current", False) for r in history] == [False, True]
    store.restore_label("case", "final", history[0]["version"])
    assert store.label_history("case", "final")[-1]["info"]["restored_from"] == 3


# ---------------------------------------------------------------- (c) geometry on restore


def test_restore_label_refuses_a_label_that_does_not_fit(
    store: LocalDatastore, nifti_file: NiftiFile
) -> None:
    store.add_image("case", _cube(nifti_file, "b.nii.gz", 8))
    small = nifti_file("small.nii.gz", shape=(4, 4, 4), dtype=np.uint8, value=1)
    store.save_label("case", small, "final", force=True)  # a user forced it once
    store.save_label("case", np.ones((8, 8, 8), np.uint8), "final")
    current = store.get_label_info("case", "final")["checksum"]
    with pytest.raises(LabelGeometryError, match=r"\(4, 4, 4\).*\(8, 8, 8\)"):
        store.restore_label("case", "final", 1)
    assert store.get_label_info("case", "final")["checksum"] == current
    assert not list((store.root / ".medstore" / "staging").glob("*"))


def _strip_versions(root: Path) -> None:
    """Make a store look written before image versions existed (no key anywhere)."""
    LocalDatastore(root).compact()  # the whole state in the manifest, as an old store had it
    manifest = root / "datastore_v2.json"
    doc = json.loads(manifest.read_text())
    for obj in doc["objects"].values():
        obj["image"]["info"].pop(VERSION_KEY, None)
    manifest.write_text(json.dumps(doc))
    for record in (root / ".medstore" / "history").rglob("v*.json"):
        data = json.loads(record.read_text())
        data.pop("image_version", None)
        record.write_text(json.dumps(data))


def test_old_store_restore_label_onto_another_image_is_refused(
    tmp_path: Path, nifti_file: NiftiFile
) -> None:
    """The issue's case on a store from before versions: A's 4x4x4 label, B's 8x8x8 image."""
    root = tmp_path / "store"
    store = LocalDatastore(root)
    store.add_image("case", _cube(nifti_file, "a.nii.gz", 4))
    store.save_label("case", np.ones((4, 4, 4), np.uint8), "final")
    store.remove_image("case")
    store.add_image("case", _cube(nifti_file, "b.nii.gz", 8))
    _strip_versions(root)
    old = LocalDatastore(root)
    with pytest.raises(LabelGeometryError, match=r"\(4, 4, 4\).*\(8, 8, 8\)"):
        old.restore_label("case", "final", 1)
    assert old.get_labels_by_image_id("case") == {}


# ---------------------------------------------------------------- (d) split assignments


def test_split_of_removed_image_is_not_applied_to_the_new_image(
    store: LocalDatastore, nifti_file: NiftiFile
) -> None:
    _patient_a_then_b(store, nifti_file)
    log = SplitLog(store)
    assert "case" not in log.assignments()
    assert log.save({"case": "val"}, source="local") == 1  # no conflict with A's assignment
    assert log.assignments()["case"].split == "val"


def test_dataset_split_leaves_the_new_image_out(
    store: LocalDatastore, nifti_file: NiftiFile
) -> None:
    from medstore.datasets import VolumeDataset

    _patient_a_then_b(store, nifti_file)
    store.add_image("other", _cube(nifti_file, "c.nii.gz", 4))
    SplitLog(store).save({"other": "val"}, source="local")
    parts = VolumeDataset(store).split(use_project_splits=True)
    ids = {name: [part.get_image_id(i) for i in range(len(part))] for name, part in parts.items()}
    assert ids == {"val": ["other"]}


# ---------------------------------------------------------------- (e) decode cache


def test_cache_never_serves_the_old_image_for_a_reused_id(
    store: LocalDatastore, nifti_file: NiftiFile
) -> None:
    """A linked source rewritten in place (same size, inode and mtime) under the same id."""
    from medstore.datasets import VolumeDataset

    source = _cube(nifti_file, "scan.nii", 4, value=1)  # uncompressed: same size for B
    store.add_image("case", source, link=True)
    assert int(VolumeDataset(store)[0]["image"].max()) == 1  # A decoded into the cache
    before = os.stat(source)
    store.remove_image("case")
    make_nifti(source, np.full((4, 4, 4), 7, np.int16), np.diag([0.8, 0.8, 2.5, 1.0]))
    os.utime(source, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(source)
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (
        before.st_ino,
        before.st_size,
        before.st_mtime_ns,
    )
    store.add_image("case", source, link=True)
    assert int(VolumeDataset(store)[0]["image"].max()) == 7


def test_cache_of_a_copied_image_is_keyed_by_content(
    store: LocalDatastore, nifti_file: NiftiFile
) -> None:
    """Copied images carry their SHA-256: B's voxels, never A's, even with the same size."""
    from medstore.datasets import VolumeDataset

    store.add_image("case", _cube(nifti_file, "a.nii", 4, value=1))
    assert int(VolumeDataset(store)[0]["image"].max()) == 1
    store.remove_image("case")
    store.add_image("case", _cube(nifti_file, "b.nii", 4, value=9))
    assert int(VolumeDataset(store)[0]["image"].max()) == 9


# ---------------------------------------------------------------- (f) old data restorable


def test_old_image_data_stays_listable_and_comes_back_with_it(
    store: LocalDatastore, nifti_file: NiftiFile
) -> None:
    store.add_image("case", _cube(nifti_file, "a.nii.gz", 4))
    version_a = store.get_image_info("case")[VERSION_KEY]
    store.remove_image("case")
    store.add_image("case", _cube(nifti_file, "a.nii.gz", 4))  # same file, new addition
    assert store.get_image_info("case")[VERSION_KEY] != version_a
    store.remove_image("case")
    store.restore_image("case", image_version=version_a)
    assert store.get_image_info("case")[VERSION_KEY] == version_a


def test_old_version_data_listable_explicitly_and_restored_with_the_image(
    store: LocalDatastore, nifti_file: NiftiFile
) -> None:
    store.add_image("case", _cube(nifti_file, "a.nii.gz", 4), {"patient_id": "A"})
    version_a = store.get_image_info("case")[VERSION_KEY]
    store.remove_image("case")
    box = _patient_a_then_b(store, nifti_file)  # A again (a second addition), then B
    version_b = store.get_image_info("case")[VERSION_KEY]
    assert version_b != version_a
    kept = store.label_history("case", "final", earlier_images=True)
    assert [r["version"] for r in kept] == [1, 2]
    assert version_b not in {r["image_version"] for r in kept}
    assert all(Path(r["path"]).is_file() for r in kept)
    store.save_label("case", kept[0]["path"], "final", force=True)  # explicit: attach it anyway
    earlier = kept[0]["image_version"]
    assert [a.id for a in store.annotations.list("case", image_version=earlier)] == [box.id]
    # B goes; A (the second addition) comes back with its annotation, history and split
    store.remove_image("case")
    store.restore_image("case", image_version=earlier)
    assert store.get_image_info("case")["patient_id"] == "A"
    assert [a.id for a in store.annotations.list("case")] == [box.id]
    assert SplitLog(store).assignments()["case"].split == "train"
    history = store.label_history("case", "final")
    assert [(r["version"], r.get("current", False)) for r in history] == [
        (1, False),
        (2, False),
        (4, True),  # 3 is B's label, kept when B was removed
    ]
    assert {r["image_version"] for r in history} == {earlier}
    (of_b,) = [
        r for r in store.label_history("case", "final", earlier_images=True) if r["version"] == 3
    ]
    assert of_b["image_version"] == version_b
    with pytest.raises(ImageNotFoundError, match="no removed image"):
        store.restore_image("case", image_version="nonexistent")


# ---------------------------------------------------------------- every way in gets a version


def test_every_addition_gets_a_new_version(
    tmp_path: Path, store: LocalDatastore, nifti_file: NiftiFile
) -> None:
    src = _cube(nifti_file, "a.nii.gz", 4)
    store.add_image("one", src, {VERSION_KEY: "forged"})
    store.add_images([("two", src), ("three", src)])
    store.add_image("one", src)  # replaces: a new image
    make_nifti(store.root / "four.nii.gz", np.zeros((4, 4, 4), np.int16))
    store.refresh()
    versions = versions_in(store.json())
    assert sorted(versions) == ["four", "one", "three", "two"]
    assert len(set(versions.values())) == 4 and "forged" not in versions.values()
    assert all(store.get_image_info(i)[VERSION_KEY] == v for i, v in versions.items())
    store.update_image_info("two", {VERSION_KEY: versions["three"], "note": "x"})
    assert store.get_image_info("two")[VERSION_KEY] == versions["two"]
    assert store.get_image_info("two")["note"] == "x"
    doc = json.loads((store.root / "datastore_v2.json").read_text())
    assert set(doc) == {"name", "description", "images_dir", "labels_dir", "objects"}


def test_old_store_without_versions_keeps_working(tmp_path: Path, nifti_file: NiftiFile) -> None:
    root = tmp_path / "store"
    store = LocalDatastore(root)
    store.add_image("case", _cube(nifti_file, "a.nii.gz", 4))
    store.save_label("case", np.ones((4, 4, 4), np.uint8), "final")
    store.save_label("case", np.full((4, 4, 4), 2, np.uint8), "final")
    box = _box()
    store.annotations.add("case", box)
    SplitLog(store).save({"case": "train"}, source="local")
    _strip_versions(root)
    annotations = root / ".medstore" / "annotations" / "case.json"
    doc = json.loads(annotations.read_text())
    for record in doc["annotations"]:
        record.pop("image_version", None)
    annotations.write_text(json.dumps(doc))
    log = root / ".medstore" / "splits.jsonl"
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    kept = [{k: v for k, v in e.items() if k != "image_version"} for e in lines]
    log.write_text("".join(json.dumps(e) + "\n" for e in kept))

    old = LocalDatastore(root)
    version = image_version("case", old.get_image_info("case"))
    assert image_version("case", LocalDatastore(root).get_image_info("case")) == version
    assert VERSION_KEY not in old.get_image_info("case")  # nothing written to get it
    assert [a.id for a in old.annotations.list("case")] == [box.id]
    assert len(old.label_history("case", "final")) == 2
    assert SplitLog(old).assignments()["case"].split == "train"
    old.restore_label("case", "final", 1)
    old.update_image_info("case", {"note": "x"})
    assert image_version("case", old.get_image_info("case")) == version
    # new records made for the old image belong to it, and not to a later image of that id
    old.annotations.add("case", BoxAnnotation.from_points([(0, 0, 0), (1, 1, 1)], identifier="b"))
    assert len(old.annotations.list("case")) == 2
    old.remove_image("case")
    old.add_image("case", _cube(nifti_file, "b.nii.gz", 8))
    assert old.annotations.list("case") == []
    assert old.label_history("case", "final") == []
    assert "case" not in SplitLog(old).assignments()


def test_a_vanished_image_comes_back_only_as_itself(
    store: LocalDatastore, nifti_file: NiftiFile
) -> None:
    """A file deleted by hand comes back with its info; another file under its name is new."""
    store.add_image("case", _cube(nifti_file, "a.nii.gz", 4), {"patient_id": "A"})
    store.annotations.add("case", _box())
    version_a = store.get_image_info("case")[VERSION_KEY]
    path = Path(store.get_image_uri("case"))
    saved = path.read_bytes()
    for content, same in ((saved, True), (_cube(nifti_file, "b.nii.gz", 8).read_bytes(), False)):
        path.unlink()
        store.refresh()
        path.write_bytes(content)
        store.refresh()
        info = store.get_image_info("case")
        assert (info[VERSION_KEY] == version_a, info.get("patient_id")) == (
            same,
            "A" if same else None,
        )
        assert len(store.annotations.list("case")) == (1 if same else 0)
