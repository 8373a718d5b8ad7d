"""A failed first write on a store with no manifest yet leaves nothing behind in memory.

Before the fix, a mutation that raised after changing the in-memory document fell back to that
changed document when there was no ``datastore_v2.json`` to re-read: the disk was right, but the
same object listed an image that was never stored.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from medstore.datastore import crashpoints
from support.nifti import NiftiFile
from support.stores import MakeStore


class _FaultAt:
    """A crash plan that raises ``OSError`` at one point instead of killing the process."""

    def __init__(self, point: str) -> None:
        self.point = point

    def reached(self, name: str) -> None:
        if name == self.point:
            raise OSError(f"injected fault at {name}")


def test_failed_first_add_images_leaves_no_entry(
    make_store: MakeStore, nifti_file: NiftiFile, tmp_path: Path
) -> None:
    store = make_store()
    manifest = store.root / "datastore_v2.json"
    assert not manifest.exists()
    good = nifti_file("good.nii.gz")
    with pytest.raises(FileNotFoundError, match=r"missing\.nii\.gz"):
        store.add_images([good, tmp_path / "missing.nii.gz"])
    assert not manifest.exists()
    assert store.list_images() == []
    # the store still works: the same image can be added afterwards
    assert store.add_image("", str(good)) == "good"
    assert store.list_images() == ["good"]


@pytest.mark.parametrize("point", ["manifest.before_replace", "txn.after_step"])
def test_first_add_image_killed_at_a_crash_point_leaves_no_entry(
    make_store: MakeStore,
    nifti_file: NiftiFile,
    monkeypatch: pytest.MonkeyPatch,
    point: str,
) -> None:
    store = make_store()
    manifest = store.root / "datastore_v2.json"
    monkeypatch.setattr(crashpoints, "_plan", _FaultAt(point))
    with pytest.raises(OSError, match="injected fault"):
        store.add_image("case", str(nifti_file("ct.nii.gz")))
    monkeypatch.setattr(crashpoints, "_plan", None)
    assert not manifest.exists() or "case" not in manifest.read_text()
    assert store.list_images() == []
