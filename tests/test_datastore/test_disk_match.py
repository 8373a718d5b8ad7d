"""The refresh's fast path (issue 18): it answers only when a full scan would find the state.

Each case changes the disk in one way and checks the fast path against the full scan: either it
returns exactly what the scan finds (and the scan finds nothing to report), or it declines and
the full scan runs. A refresh through either path leaves the same manifest.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from medstore.datastore import LocalDatastore
from medstore.datastore.store import DEFAULT_EXTENSIONS
from medstore.datastore.store.disk_match import match_disk
from medstore.datastore.store.scan import scan_disk
from support.stores import MakeStore, simple_case


def _new_image(root: Path) -> None:
    shutil.copy(root / "case_0.nii.gz", root / "case_9.nii.gz")


def _orphan_label(root: Path) -> None:
    shutil.copy(root / "labels" / "final" / "case_0.nii.gz", root / "labels/final/ghost.nii.gz")


def _fifo_for_image(root: Path) -> None:
    (root / "case_1.nii.gz").unlink()
    os.mkfifo(root / "case_1.nii.gz")


def _link_for_image(root: Path) -> None:
    target = root / "case_1.nii.gz"
    target.rename(root / ".kept.nii.gz")
    target.symlink_to(root / ".kept.nii.gz")


def _label_renamed_to_another_extension(root: Path) -> None:
    label = root / "labels" / "final" / "case_0.nii.gz"
    label.rename(label.with_name("case_0.nii"))


def _series_folder(root: Path) -> None:
    (root / "series_1").mkdir()


def _new_tag_with_a_file(root: Path) -> None:
    (root / "labels" / "draft").mkdir()
    shutil.copy(root / "labels" / "final" / "case_0.nii.gz", root / "labels/draft/case_0.nii.gz")


def _folder_with_a_bad_tag_name(root: Path) -> None:
    (root / "labels" / "bad\ttag").mkdir()  # a control character: the scan warns


def _tag_folder_gone(root: Path) -> None:
    shutil.rmtree(root / "labels" / "final")


DECLINES: dict[str, Callable[[Path], None]] = {
    "new-image": _new_image,
    "image-removed": lambda root: (root / "case_2.nii.gz").unlink(),
    "label-removed": lambda root: (root / "labels" / "final" / "case_2.nii.gz").unlink(),
    "orphan-label": _orphan_label,
    "fifo-for-image": _fifo_for_image,
    "link-for-image": _link_for_image,
    "label-extension": _label_renamed_to_another_extension,
    "series-folder": _series_folder,
    "new-tag-with-a-file": _new_tag_with_a_file,
    "bad-tag-folder": _folder_with_a_bad_tag_name,
    "tag-folder-gone": _tag_folder_gone,
}
MATCHES: dict[str, Callable[[Path], None]] = {
    "nothing": lambda root: None,
    "readme": lambda root: (root / "README.txt").write_text("notes"),
    "hidden-files": lambda root: (root / "labels" / "final" / "._case_0.nii.gz").write_bytes(b""),
    "empty-tag-folder": lambda root: (root / "labels" / "draft").mkdir(),
}


def _store(make_store: MakeStore) -> LocalDatastore:
    return make_store({f"case_{i}": simple_case(i) for i in range(3)})


@pytest.mark.parametrize("change", DECLINES.values(), ids=DECLINES.keys())
def test_the_fast_path_declines_every_change_a_scan_would_act_on(
    make_store: MakeStore, change: Callable[[Path], None]
) -> None:
    store = _store(make_store)
    change(store.root)
    assert match_disk(store.layout, DEFAULT_EXTENSIONS, store.json()) is None


@pytest.mark.parametrize("change", MATCHES.values(), ids=MATCHES.keys())
def test_the_fast_path_answers_what_the_full_scan_finds(
    make_store: MakeStore, change: Callable[[Path], None]
) -> None:
    store = _store(make_store)
    change(store.root)
    doc = store.json()
    matched = match_disk(store.layout, DEFAULT_EXTENSIONS, doc)
    scanned = scan_disk(
        store.layout,
        DEFAULT_EXTENSIONS,
        tracked={k: v["image"]["ext"] for k, v in doc["objects"].items()},
    )
    assert matched is not None
    assert (matched.state.images, matched.state.labels) == (scanned.images, scanned.labels)
    assert not (scanned.orphans or scanned.skipped)


_BOTH = {**MATCHES, "new-image": _new_image, "label-removed": DECLINES["label-removed"]}


@pytest.mark.parametrize("change", _BOTH.values(), ids=_BOTH.keys())
def test_a_refresh_leaves_the_manifest_a_full_scan_would(
    make_store: MakeStore, change: Callable[[Path], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    store = _store(make_store)
    change(store.root)
    twin = store.root.parent / "twin"
    shutil.copytree(store.root, twin, symlinks=True)
    store.refresh()
    monkeypatch.setattr("medstore.datastore.store.indexer.match_disk", lambda *_: None)
    full = LocalDatastore(twin, lock_timeout=5.0)  # opening refreshes: the full scan
    fast_objects, full_objects = store.json()["objects"], full.json()["objects"]
    assert fast_objects.keys() == full_objects.keys()
    for image_id, obj in fast_objects.items():
        assert obj["labels"].keys() == full_objects[image_id]["labels"].keys()
    full.close()
