"""Issue 12 cases 10 and 12: add_image never writes over a file in the store no image owns.

A file dropped into the store (copied in by hand, by another tool, or left by MONAI Label) is
not indexed until the next refresh or watcher event. Before, ``add_image`` of that id replaced
it with no trash record (``restore_image`` answered "no removed image"): the user's file was
gone. A series id named after the store's manifest failed with a bare ``NotADirectoryError``.
Now both are refused by name before any file is written.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from medstore.datastore.errors import InvalidIdError
from support.dicom import make_dicom_series
from support.nifti import make_nifti
from support.stores import MakeStore, simple_case

pytestmark = pytest.mark.contract  # runs once per store write path (support.contract)


def test_add_image_never_writes_over_a_file_not_yet_indexed(
    make_store: MakeStore, tmp_path: Path
) -> None:
    store = make_store()
    dropped = make_nifti(store.root / "b.nii.gz", np.full((4, 4, 4), 7, np.int16))
    before = dropped.read_bytes()
    source = make_nifti(tmp_path / "other.nii.gz", np.zeros((4, 4, 4), np.int16))
    with pytest.raises(InvalidIdError, match=r"b\.nii\.gz.*no image owns.*refresh"):
        store.add_image("b", str(source))
    assert dropped.read_bytes() == before
    assert store.list_images() == []
    store.refresh()  # indexed, it is an image of the store like any other
    assert store.list_images() == ["b"]


def test_a_series_id_named_after_the_manifest_is_refused_by_name(
    make_store: MakeStore, tmp_path: Path
) -> None:
    store = make_store({"case_0": simple_case(0)}, extensions=("*.nii.gz", "*.dcm"))
    make_dicom_series(tmp_path / "ser", np.arange(80, dtype=np.int16).reshape(4, 4, 5))
    manifest = (store.root / "datastore_v2.json").read_bytes()
    with pytest.raises(InvalidIdError, match=r"datastore_v2\.json.*manifest"):
        store.add_image("datastore_v2.json", str(tmp_path / "ser"))
    assert (store.root / "datastore_v2.json").read_bytes() == manifest


def test_save_label_keeps_a_label_file_not_yet_indexed_in_the_history(
    make_store: MakeStore,
) -> None:
    store = make_store({"a": simple_case(1, (4, 4, 4))})
    dropped = make_nifti(
        store.root / "labels" / "rev" / "a.nii.gz", np.full((4, 4, 4), 5, np.uint8)
    )
    before = dropped.read_bytes()
    store.save_label("a", np.zeros((4, 4, 4), np.uint8), "rev")
    kept = [r for r in store.label_history("a", "rev") if not r.get("current")]
    assert [Path(r["path"]).read_bytes() for r in kept] == [before]
    store.restore_label("a", "rev", kept[0]["version"])
    assert dropped.read_bytes() == before
