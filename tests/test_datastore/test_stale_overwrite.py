"""A program that writes back a stale copy of ``datastore_v2.json`` loses none of medstore's writes.

MONAI Label's ``LocalDatastore`` keeps the manifest in memory and, at each of its saves,
truncates the file and writes that copy. These tests play that program with plain ``open(path,
"w")`` writes of an older manifest, and check that medstore puts its acknowledged entries back at
its next lock or refresh, while a deliberate later change by that program stays.
"""

from __future__ import annotations

import errno
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from medstore.datastore import LocalDatastore
from medstore.datastore.errors import UnsafePathError
from medstore.datastore.store.layout import StoreLayout
from medstore.datastore.store.stale_repair import LOG_NAME, AckLog
from support.nifti import make_nifti
from support.stores import MakeStore, simple_case


class OtherProgram:
    """MONAI Label's way of writing: an in-memory manifest dumped over the file at each save."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.doc: dict[str, Any] = json.loads((root / "datastore_v2.json").read_text())

    def save_label(self, image_id: str, tag: str, source: Path) -> None:
        folder = self.root / "labels" / tag
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, folder / f"{image_id}.nii.gz")
        info = {"ts": 1, "name": f"{image_id}.nii.gz", "by": "other"}
        self.doc["objects"][image_id]["labels"][tag] = {"ext": ".nii.gz", "info": info}
        self.write()

    def write(self) -> None:
        with open(self.root / "datastore_v2.json", "w") as handle:  # truncate, then write
            handle.write(json.dumps(self.doc, indent=2))


def _on_disk(root: Path) -> dict[str, Any]:
    return json.loads((root / "datastore_v2.json").read_text())["objects"]


@pytest.fixture
def label_file(tmp_path: Path) -> Path:
    return make_nifti(tmp_path / "src" / "label.nii.gz", np.ones((6, 5, 4), np.uint8))


@pytest.fixture
def store(make_store: MakeStore) -> LocalDatastore:
    return make_store({name: simple_case(i) for i, name in enumerate(("a", "b", "c"))})


def _medstore_writes(store: LocalDatastore, label_file: Path) -> None:
    store.save_label("a", str(label_file), "reviewed", {"by": "medstore"})
    store.update_image_info("b", {"patient_id": "P001"})
    store.add_tags("c", ["checked"])
    store.update_label_info("c", "final", {"score": 0.75})


def _assert_medstore_writes(store: LocalDatastore) -> None:
    assert store.get_label_info("a", "reviewed")["by"] == "medstore"
    assert store.get_image_info("b")["patient_id"] == "P001"
    assert store.get_image_info("c")["tags"] == ["checked"]
    assert store.get_label_info("c", "final")["score"] == 0.75


def test_a_stale_copy_is_written_over_at_the_next_lock(
    store: LocalDatastore, label_file: Path
) -> None:
    other = OtherProgram(store.root)  # loaded before medstore's writes: its copy goes stale
    _medstore_writes(store, label_file)
    other.write()
    assert "reviewed" not in _on_disk(store.root)["a"]["labels"]  # the stale copy landed

    store.update_image_info("a", {"next": 1})  # medstore's next lock

    _assert_medstore_writes(store)
    objects = _on_disk(store.root)
    assert objects["a"]["labels"]["reviewed"]["info"]["by"] == "medstore"
    assert objects["b"]["image"]["info"]["patient_id"] == "P001"
    assert objects["c"]["labels"]["final"]["info"]["score"] == 0.75


def test_refresh_puts_back_the_entries_with_their_info(
    store: LocalDatastore, label_file: Path
) -> None:
    other = OtherProgram(store.root)
    _medstore_writes(store, label_file)
    other.write()
    store.refresh()  # without the repair the label came back bare, the info never
    _assert_medstore_writes(store)


def test_a_later_process_repairs_a_stale_copy_written_while_none_was_open(
    make_store: MakeStore, label_file: Path
) -> None:
    store = make_store({"a": simple_case(0)}, name="s")
    other = OtherProgram(store.root)
    store.save_label("a", str(label_file), "reviewed", {"by": "medstore"})
    store.close()
    other.write()
    reopened = LocalDatastore(store.root, refresh=False)
    try:
        reopened.update_image_info("a", {"x": 1})
        assert reopened.get_label_info("a", "reviewed")["by"] == "medstore"
    finally:
        reopened.close()


def test_both_programs_writes_survive_when_the_other_saves_a_label(
    store: LocalDatastore, label_file: Path
) -> None:
    other = OtherProgram(store.root)
    _medstore_writes(store, label_file)
    other.save_label("b", "other_tag", label_file)  # stale copy plus its own new label
    store.update_image_info("a", {"next": 1})
    _assert_medstore_writes(store)
    assert store.get_label_info("b", "other_tag")["by"] == "other"


def test_a_deliberate_deletion_by_the_other_program_is_not_undone(
    store: LocalDatastore, label_file: Path
) -> None:
    store.save_label("a", str(label_file), "reviewed", {"by": "medstore"})
    other = OtherProgram(store.root)  # up to date: MONAI Label reloaded the manifest
    (store.root / "labels" / "reviewed" / "a.nii.gz").unlink()  # its remove_label: file, entry
    del other.doc["objects"]["a"]["labels"]["reviewed"]
    other.write()
    store.update_image_info("b", {"x": 1})
    assert "reviewed" not in store.get_labels_by_image_id("a")
    assert "reviewed" not in _on_disk(store.root)["a"]["labels"]
    # medstore's claim is forgotten: the same file name coming back is not medstore's label
    shutil.copy(label_file, store.root / "labels" / "reviewed" / "a.nii.gz")
    other.write()
    store.update_image_info("b", {"x": 2})
    assert "reviewed" not in _on_disk(store.root)["a"]["labels"]


def test_a_deliberate_change_by_the_other_program_is_kept(
    store: LocalDatastore, label_file: Path
) -> None:
    store.update_image_info("b", {"patient_id": "P001"})
    other = OtherProgram(store.root)
    other.doc["objects"]["b"]["image"]["info"]["patient_id"] = "P002"  # its update_image_info
    other.write()
    store.update_image_info("a", {"x": 1})
    other.doc = json.loads((store.root / "datastore_v2.json").read_text())
    assert store.get_image_info("b")["patient_id"] == "P002"
    # medstore's claim is forgotten: an even older copy brought back later is not "stale" any more
    store.update_image_info("a", {"x": 2})
    assert store.get_image_info("b")["patient_id"] == "P002"


def test_a_medstore_removal_stays_removed(store: LocalDatastore) -> None:
    other = OtherProgram(store.root)
    store.remove_label("c", "final")
    store.remove_image("b")
    other.write()  # still lists the label and the image
    store.update_image_info("a", {"x": 1})
    assert "final" not in store.get_labels_by_image_id("c")
    assert "b" not in store.list_images()
    assert "b" not in _on_disk(store.root)


def test_two_hundred_interleaved_saves_lose_no_file_and_no_entry(
    make_store: MakeStore, label_file: Path
) -> None:
    ids = [f"case{i:02d}" for i in range(10)]
    store = make_store({image_id: simple_case(i) for i, image_id in enumerate(ids)}, name="s")
    other = OtherProgram(store.root)  # never reloads: every save of it writes a stale copy
    for i in range(200):
        image_id, tag = ids[i % len(ids)], f"t{i:03d}"
        if i % 2:
            other.save_label(image_id, tag, label_file)
        else:
            store.save_label(image_id, str(label_file), tag, {"by": "medstore", "i": i})
    store.refresh()
    files = sorted((store.root / "labels").glob("t*/*.nii.gz"))
    assert len(files) == 200
    objects = _on_disk(store.root)
    entries = {(image_id, tag) for image_id, obj in objects.items() for tag in obj["labels"]}
    missing = [(ids[i % len(ids)], f"t{i:03d}") for i in range(200)]
    assert [key for key in missing if key not in entries] == []
    for i in range(0, 200, 2):
        info = objects[ids[i % len(ids)]]["labels"][f"t{i:03d}"]["info"]
        assert (info["by"], info["i"]) == ("medstore", i)


def test_a_torn_last_line_of_the_log_is_ignored_and_not_joined(
    store: LocalDatastore, label_file: Path
) -> None:
    log = store.side_path(LOG_NAME)
    store.update_image_info("a", {"x": 1})
    with open(log, "ab") as handle:
        handle.write(b'{"wrote": [["i", "a"')  # a crash mid-append: never acknowledged
    other = OtherProgram(store.root)
    store.update_image_info("b", {"patient_id": "P001"})
    other.write()
    store.update_image_info("c", {"x": 1})
    assert store.get_image_info("b")["patient_id"] == "P001"
    assert b'"a"{"wrote"' not in log.read_bytes()


def _obj(rounds: int) -> dict[str, Any]:
    return {"image": {"ext": ".nii.gz", "info": {"round": rounds}}, "labels": {}}


def test_the_log_stays_bounded_and_keeps_its_latest_claims(tmp_path: Path) -> None:
    layout = StoreLayout(tmp_path)
    ids = [f"i{i}" for i in range(5)]
    for image_id in ids:
        (tmp_path / f"{image_id}.nii.gz").write_bytes(b"image")
    log = AckLog(layout, capacity=4)
    log.append({"i0": _obj(0)}, {"objects": {"i0": _obj(1)}})
    for rounds in range(1, 7):  # 25 writes through a log of 4 parts: compacted on the way
        for image_id in ids[1:]:
            log.append({image_id: _obj(rounds - 1)}, {"objects": {image_id: _obj(rounds)}})
    assert len(log.path.read_bytes().splitlines()) <= 2 * 4
    stale = {"objects": {image_id: _obj(0) for image_id in ids}}  # older than all six rounds
    assert AckLog(layout, capacity=4).repair(stale) == ids[1:]  # i0's claim was the oldest
    assert [stale["objects"][i]["image"]["info"]["round"] for i in ids] == [0, 6, 6, 6, 6]


def test_a_failing_log_append_never_fails_a_committed_save(
    store: LocalDatastore, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(fd: int) -> None:
        raise OSError(errno.EIO, "injected")

    monkeypatch.setattr("medstore.datastore.store.stale_repair._sync", broken)
    store.update_image_info("b", {"patient_id": "P001"})  # committed, then the append fails
    assert _on_disk(store.root)["b"]["image"]["info"]["patient_id"] == "P001"
    assert "could not record an acknowledged change" in caplog.text


def test_an_entry_whose_file_was_since_replaced_is_not_put_back(
    store: LocalDatastore, label_file: Path, tmp_path: Path
) -> None:
    other = OtherProgram(store.root)
    store.save_label("a", str(label_file), "reviewed", {"by": "medstore"})
    replaced = make_nifti(tmp_path / "other.nii.gz", np.full((6, 5, 4), 7, np.uint8))
    shutil.copy(replaced, store.root / "labels" / "reviewed" / "a.nii.gz")  # not medstore's file
    other.write()
    store.update_image_info("b", {"x": 1})
    assert "reviewed" not in _on_disk(store.root)["a"]["labels"]  # no checksum of other content


def test_a_log_planted_as_a_link_is_refused_and_nothing_written_through_it(
    store: LocalDatastore, tmp_path: Path
) -> None:
    store.update_image_info("a", {"x": 1})
    outside = tmp_path / "outside.log"
    outside.write_bytes(b"")
    log = store.side_path(LOG_NAME)
    log.unlink()
    log.symlink_to(outside)
    reopened = LocalDatastore(store.root, refresh=False)
    try:
        with pytest.raises(UnsafePathError, match=r"acknowledged\.log"):
            reopened.update_image_info("a", {"x": 2})
    finally:
        reopened.close()
    assert outside.read_bytes() == b""


def test_readers_see_acknowledged_saves_a_stale_copy_wrote_over(
    store: LocalDatastore, label_file: Path
) -> None:
    """Before: a reader opened after the stale write saw it as is until medstore's next lock."""
    other = OtherProgram(store.root)  # loads the manifest now
    store.update_image_info("a", {"patient_id": "P001"})  # acknowledged
    other.save_label("b", "theirs", label_file)  # writes its copy: without patient_id
    stale = (store.root / "datastore_v2.json").read_bytes()
    reader = LocalDatastore(store.root, read_only=True)
    assert reader.get_image_info("a")["patient_id"] == "P001"
    assert reader.get_label_info("b", "theirs")["by"] == "other"
    assert store.get_image_info("a")["patient_id"] == "P001"  # the writer's own reads, too
    assert (store.root / "datastore_v2.json").read_bytes() == stale  # readers write nothing
    store.update_image_info("c", {"x": 1})  # the next lock writes it back
    assert _on_disk(store.root)["a"]["image"]["info"]["patient_id"] == "P001"
