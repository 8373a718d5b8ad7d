"""Permissions (issue 6 item 6): replaced files keep mode and group; new files follow the umask."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from medstore.datastore import LocalDatastore
from support import reliability_harness as h


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _other_group() -> int:
    """A group id other than the file's default, that this process may chown to."""
    groups = [g for g in os.getgroups() if g != os.getegid()]
    if groups:
        return groups[0]
    if os.geteuid() == 0:
        return 4242  # root may give a file any group id
    pytest.skip("needs a second group or root to test group preservation")


def _saves(store: LocalDatastore, tmp_path: Path, n: int = 3) -> None:
    src = tmp_path / "l.nii.gz"
    for i in range(n):
        src.write_bytes(h.seeded_nifti_bytes(i))
        store.save_label("img000", src, "final", {"i": i})
        store.update_image_info("img000", {"i": i})


def test_manifest_keeps_0640_and_group_through_saves(tmp_path: Path) -> None:
    root = tmp_path / "store"
    h.write_indexed_store(root, 1)
    manifest = root / h.MANIFEST
    gid = _other_group()
    os.chmod(manifest, 0o640)
    os.chown(manifest, -1, gid)
    with h.umask(0o000):  # the umask must not leak into a replaced file
        _saves(LocalDatastore(root), tmp_path)
    assert b'"i": 2' in manifest.read_bytes(), "the manifest was not rewritten"
    assert _mode(manifest) == 0o640
    assert manifest.stat().st_gid == gid


def test_replaced_label_keeps_its_mode(tmp_path: Path) -> None:
    root = tmp_path / "store"
    h.write_indexed_store(root, 1, labels={"final": [0]})
    label = root / "labels" / "final" / "img000.nii.gz"
    os.chmod(label, 0o604)
    _saves(LocalDatastore(root), tmp_path, n=1)
    assert _mode(label) == 0o604


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o077, 0o002])
def test_new_files_follow_the_umask(mask: int, tmp_path: Path) -> None:
    root = tmp_path / "store"
    h.write_store_files(root, 1)
    with h.umask(mask):
        store = LocalDatastore(root)
        _saves(store, tmp_path, n=2)
    expected = 0o666 & ~mask
    assert _mode(root / h.MANIFEST) == expected
    assert _mode(root / "labels" / "final" / "img000.nii.gz") == expected
    kept = list((root / ".medstore" / "history").rglob("v*.*"))
    assert kept and all(_mode(p) == expected for p in kept)


def test_file_mode_option_gives_stricter_new_files(tmp_path: Path) -> None:
    root = tmp_path / "store"
    h.write_store_files(root, 1)
    with h.umask(0o022):
        store = LocalDatastore(root, file_mode=0o600)
        _saves(store, tmp_path, n=2)
        src = tmp_path / "new.nii.gz"
        src.write_bytes(h.seeded_nifti_bytes(7, dtype="int16"))
        store.add_image("img001", src)
    assert _mode(root / h.MANIFEST) == 0o600
    assert _mode(root / "labels" / "final" / "img000.nii.gz") == 0o600
    assert _mode(root / "img001.nii.gz") == 0o600
    side = [p for p in (root / ".medstore").rglob("*") if p.is_file()]
    assert side and all(_mode(p) == 0o600 for p in side), {str(p): oct(_mode(p)) for p in side}
