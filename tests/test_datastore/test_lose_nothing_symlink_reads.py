"""Issue 12 case 20, reads: a side file or folder planted as a link is refused on read as on write.

The issue asks for *every* path under the store to be opened without following links below the
root. Writes were confined first; these are the reads of the store's own side files (label
history, split log, trash, annotations, the annotation schema). Followed, a planted link made
medstore answer with records that live outside the store, and ``restore_label`` copied a file
from outside into ``labels/``. Each planted link here points at an exact copy of what the store
held, so a read that follows it succeeds silently; the rule is that it is refused by name.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from medstore.datastore.annotations import CategoryAnnotation
from medstore.datastore.annotations.schema import AnnotationSpec, load_schema, save_schema
from medstore.datastore.errors import UnsafePathError
from medstore.datastore.store.local import LocalDatastore
from medstore.datastore.store.split_log import SplitLog
from support.nifti import NiftiFile
from support.stores import MakeStore, link_out_of_store, simple_case

pytestmark = pytest.mark.contract  # runs once per store write path (support.contract)

_LABEL = np.zeros((4, 5, 6), dtype=np.uint8)  # canonical (D, H, W) of a (6, 5, 4) file


def _history(store: LocalDatastore) -> object:
    return store.label_history("case_0", "final")


def _restore_label(store: LocalDatastore) -> object:
    return store.restore_label("case_0", "final", 1)


def _assignments(store: LocalDatastore) -> object:
    return SplitLog(store).assignments()


def _annotations(store: LocalDatastore) -> object:
    return store.annotations.list("case_0")


def _schema(store: LocalDatastore) -> object:
    return load_schema(store)


def _restore_image(store: LocalDatastore) -> object:
    return store.restore_image("case_1")


# (planted link, the read that must refuse to go through it)
_READS: list[tuple[str, Callable[[LocalDatastore], object]]] = [
    (".medstore/history", _history),
    (".medstore/history", _restore_label),
    (".medstore/splits.jsonl", _assignments),
    (".medstore/annotations", _annotations),
    (".medstore/schema.json", _schema),
    (".medstore/trash", _restore_image),
]


def _filled_store(make_store: MakeStore) -> LocalDatastore:
    """A store with a kept label version, a split, an annotation, a schema and a removed image."""
    store = make_store({"case_0": simple_case(0), "case_1": simple_case(1)})
    store.save_label("case_0", _LABEL + 1, "final")  # version 1 goes to history
    SplitLog(store).save({"case_0": "train"}, source="local")
    store.annotations.add("case_0", CategoryAnnotation(identifier="size", value="small"))
    save_schema(store, [AnnotationSpec(identifier="size", type="category")])
    store.remove_image("case_1")
    return store


@pytest.mark.parametrize(("planted", "read"), _READS, ids=lambda v: getattr(v, "__name__", v))
def test_a_side_file_planted_as_a_link_is_refused_on_read(
    make_store: MakeStore, tmp_path: Path, planted: str, read: Callable[[LocalDatastore], object]
) -> None:
    store = _filled_store(make_store)
    real = store.root / planted
    (tmp_path / "outside").mkdir()
    link_out_of_store(real, tmp_path / "outside" / real.name)
    labels = sorted(p.name for p in (store.root / "labels" / "final").iterdir())
    with pytest.raises(UnsafePathError, match=planted.replace(".", r"\.")):
        read(store)
    assert sorted(p.name for p in (store.root / "labels" / "final").iterdir()) == labels
    assert store.list_images() == ["case_0"]
    assert real.is_symlink()


@pytest.mark.parametrize("options", [{"read_only": True}, {"refresh": False}, {}])
def test_a_manifest_planted_as_a_link_is_never_read(
    make_store: MakeStore, tmp_path: Path, options: dict[str, bool]
) -> None:
    """Before: the store opened (read-only or writable) and answered from the outside file."""
    store = make_store({"case_0": simple_case(0)})
    store.update_image_info("case_0", {"patient_id": "P1"})
    store.close()
    manifest = store.root / "datastore_v2.json"
    outside = tmp_path / "outside.json"
    shutil.copyfile(manifest, outside)
    manifest.unlink()
    manifest.symlink_to(outside)
    with pytest.raises(UnsafePathError, match=r"datastore_v2\.json"):
        LocalDatastore(store.root, lock_timeout=5.0, **options)
    assert manifest.is_symlink()


def test_a_label_file_swapped_for_a_link_is_never_read(
    make_store: MakeStore, tmp_path: Path
) -> None:
    """Before: get_label_uri resolved the link and get_label returned the outside file."""
    store = make_store({"case_0": simple_case(0)})
    label = store.root / "labels" / "final" / "case_0.nii.gz"
    outside = tmp_path / "outside.nii.gz"
    shutil.copyfile(label, outside)
    label.unlink()
    label.symlink_to(outside)
    with pytest.raises(UnsafePathError, match=r"labels/final/case_0\.nii\.gz"):
        store.get_label_uri("case_0", "final")
    with pytest.raises(UnsafePathError, match=r"labels/final/case_0\.nii\.gz"):
        store.get_label("case_0", "final")


def test_a_copied_image_swapped_for_a_link_out_of_the_store_is_never_read(
    make_store: MakeStore, tmp_path: Path
) -> None:
    """Before: get_image_uri resolved the link and get_image returned the outside file."""
    store = make_store({"case_0": simple_case(0), "case_1": simple_case(1)})
    link_out_of_store(Path(store.get_image_uri("case_0")), tmp_path / "outside.nii.gz")
    with pytest.raises(UnsafePathError, match=r"case_0\.nii\.gz"):
        store.get_image_uri("case_0")
    with pytest.raises(UnsafePathError, match=r"case_0\.nii\.gz"):
        store.get_image("case_0")
    inside = Path(store.get_image_uri("case_1"))  # a link that stays in the store is read
    moved = inside.with_name("kept-case_1.bin")
    inside.rename(moved)
    inside.symlink_to(moved.name)
    assert store.get_image("case_1").read() == moved.read_bytes()


def test_a_linked_image_is_still_read_where_it_points(
    tmp_path: Path, nifti_file: NiftiFile
) -> None:
    """The documented exception: an image added with link=True reads its source in place."""
    source = nifti_file("scan.nii.gz")
    with LocalDatastore(tmp_path / "store") as store:
        store.add_image("scan", source, link=True)
        assert store.get_image_uri("scan") == str(source.resolve())
        assert store.get_image("scan").read() == source.read_bytes()
