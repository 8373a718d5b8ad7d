"""Dataset archives (export and hostile import) and store upkeep (verify, doctor, gc)."""

from __future__ import annotations

import functools
import os
import stat
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from medstore.datastore import ImageReadError, LocalDatastore, ManifestCorruptError
from medstore.datastore.interop.archive_import import ArchiveError, ArchiveLimits, import_archive
from medstore.datastore.upkeep import collect_garbage, doctor, verify
from support.nifti import NiftiFile


@pytest.fixture
def nifti_file(nifti_file: NiftiFile) -> NiftiFile:
    """The shared ``nifti_file`` factory, with this module's (6, 5, 4) volumes."""
    return functools.partial(nifti_file, shape=(6, 5, 4))


@pytest.fixture
def labelled_store(tmp_path: Path, nifti_file: Callable[..., Path]) -> LocalDatastore:
    """A store with three images, two of them labelled ``final``."""
    store = LocalDatastore(tmp_path / "store")
    for i in range(3):
        store.add_image(f"case_{i}", nifti_file(f"c{i}.nii.gz", value=i), {"patient_id": f"P{i}"})
    for i in range(2):
        label = nifti_file(f"l{i}.nii.gz", value=1, dtype=np.uint8)
        store.save_label(f"case_{i}", label, "final", {"label_info": [{"name": "liver", "idx": 1}]})
    return store


def test_archive_round_trip_keeps_files_and_info(labelled_store: LocalDatastore, tmp_path: Path):
    archive = Path(labelled_store.get_dataset_archive(None))
    names = sorted(zipfile.ZipFile(archive).namelist())
    assert names == [
        "image/case_0.nii.gz",
        "image/case_1.nii.gz",
        "label/case_0.nii.gz",
        "label/case_1.nii.gz",
        "metadata.json",
    ]
    target = LocalDatastore(tmp_path / "copy")
    assert import_archive(target, archive) == ["case_0", "case_1"]
    assert target.get_image_info("case_1")["patient_id"] == "P1"
    assert target.get_label_info("case_0", "final")["label_info"] == [{"name": "liver", "idx": 1}]
    assert (
        Path(target.get_label_uri("case_0", "final")).read_bytes()
        == Path(labelled_store.get_label_uri("case_0", "final")).read_bytes()
    )


def test_archive_limit_cases(labelled_store: LocalDatastore):
    archive = labelled_store.get_dataset_archive(1)
    assert sum(n.startswith("image/") for n in zipfile.ZipFile(archive).namelist()) == 1


def test_archive_skips_symlinked_label_outside_root(labelled_store: LocalDatastore, tmp_path: Path):
    outside = tmp_path / "secret.nii.gz"
    outside.write_bytes(b"patient data")
    label = Path(labelled_store.get_label_uri("case_1", "final"))
    label.unlink()
    label.symlink_to(outside)
    names = zipfile.ZipFile(labelled_store.get_dataset_archive(None)).namelist()
    assert "label/case_1.nii.gz" not in names


def _zip(path: Path, entries: dict[str, bytes], *, deflate: bool = False) -> Path:
    mode = zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED
    with zipfile.ZipFile(path, "w", compression=mode) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return path


@pytest.mark.parametrize(
    ("entries", "reason"),
    [
        ({"../x.nii.gz": b"1"}, "escapes"),
        ({"image/../../x.nii.gz": b"1"}, "escapes"),
        ({"/etc/x.nii.gz": b"1"}, "absolute"),
        ({"image\\x.nii.gz": b"1"}, "absolute or Windows"),
        ({"C:/x.nii.gz": b"1"}, "absolute or Windows"),
        ({"other/x.nii.gz": b"1"}, "is not image/<file>"),
        ({"image/sub/x.nii.gz": b"1"}, "is not image/<file>"),
        ({"metadata.json": b"[1, 2"}, "not valid JSON"),
    ],
)
def test_hostile_archive_entries_are_refused(
    entries: dict[str, bytes], reason: str, tmp_path: Path
):
    store = LocalDatastore(tmp_path / "store")
    archive = _zip(tmp_path / "a.zip", entries)
    before = sorted(str(p) for p in tmp_path.parent.rglob("*"))
    with pytest.raises(ArchiveError, match=reason):
        import_archive(store, archive)
    assert store.list_images() == []
    after = {str(p) for p in tmp_path.parent.rglob("*")}
    assert not [p for p in after - set(before) if ".medstore" not in p]


def test_symlink_entry_is_refused(tmp_path: Path):
    info = zipfile.ZipInfo("image/link.nii.gz")
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    with zipfile.ZipFile(tmp_path / "a.zip", "w") as zf:
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(ArchiveError, match="symbolic link"):
        import_archive(LocalDatastore(tmp_path / "store"), tmp_path / "a.zip")


def test_duplicate_entries_are_refused(tmp_path: Path):
    with zipfile.ZipFile(tmp_path / "a.zip", "w") as zf:
        zf.writestr("image/a.nii.gz", b"1")
        with pytest.warns(UserWarning, match="Duplicate name"):
            zf.writestr("image/a.nii.gz", b"2")
    with pytest.raises(ArchiveError, match="appears twice"):
        import_archive(LocalDatastore(tmp_path / "store"), tmp_path / "a.zip")


def test_zip_bomb_is_refused_before_extraction(tmp_path: Path):
    bomb = _zip(tmp_path / "bomb.zip", {"image/a.nii.gz": bytes(20_000_000)}, deflate=True)
    assert bomb.stat().st_size < 100_000
    store = LocalDatastore(tmp_path / "store")
    with pytest.raises(ArchiveError, match="expands"):
        import_archive(store, bomb)
    assert not any((store.side_path("imports")).rglob("*.nii.gz"))


def test_entry_and_total_caps(tmp_path: Path):
    many = _zip(tmp_path / "many.zip", {f"image/{i}.nii.gz": b"x" for i in range(5)})
    store = LocalDatastore(tmp_path / "store")
    with pytest.raises(ArchiveError, match="5 entries"):
        import_archive(store, many, limits=ArchiveLimits(max_entries=4))
    with pytest.raises(ArchiveError, match="expands beyond"):
        import_archive(store, many, limits=ArchiveLimits(max_total_bytes=3))


def test_not_a_zip_is_refused(tmp_path: Path):
    (tmp_path / "a.zip").write_bytes(b"not a zip")
    with pytest.raises(ArchiveError, match="not a readable zip"):
        import_archive(LocalDatastore(tmp_path / "store"), tmp_path / "a.zip")


def test_archive_bad_id_imports_nothing(tmp_path: Path, nifti_file: Callable[..., Path]):
    good = nifti_file("good.nii.gz").read_bytes()
    archive = _zip(tmp_path / "a.zip", {"image/good.nii.gz": good, "image/CON.nii.gz": good})
    store = LocalDatastore(tmp_path / "store")
    with pytest.raises(ValueError, match="reserved device name"):
        import_archive(store, archive)
    assert store.list_images() == []


def test_verify_finds_changed_and_missing_files(labelled_store: LocalDatastore):
    assert verify(labelled_store).ok
    Path(labelled_store.get_image_uri("case_2")).write_bytes(b"changed")
    os.unlink(labelled_store.get_label_uri("case_0", "final"))
    report = verify(labelled_store)
    assert report.mismatched == ["image case_2"]
    assert report.missing == ["label final/case_0"]


def test_doctor_refuses_then_rebuilds_corrupt_manifest(labelled_store: LocalDatastore):
    manifest = labelled_store.root / "datastore_v2.json"
    manifest.write_bytes(b'{"name": "x", ')
    with pytest.raises(ManifestCorruptError, match=r"datastore_v2\.json"):
        doctor(labelled_store.root)
    assert manifest.read_bytes() == b'{"name": "x", '
    report = doctor(labelled_store.root, rebuild=True)
    assert report.rebuilt_manifest
    assert Path(report.corrupt_copy or "").read_bytes() == b'{"name": "x", '
    reopened = LocalDatastore(labelled_store.root)
    assert sorted(reopened.list_images()) == ["case_0", "case_1", "case_2"]
    assert sorted(reopened.get_labeled_images()) == ["case_0", "case_1"]


def test_gc_keeps_recent_and_newest_versions(labelled_store: LocalDatastore, nifti_file):
    for value in range(2, 6):
        labelled_store.save_label(
            "case_0", nifti_file(f"v{value}.nii.gz", value=value, dtype=np.uint8), "final", {}
        )
    assert len(labelled_store.label_history("case_0", "final")) == 5
    assert collect_garbage(labelled_store, keep_versions=1).history_versions == 0
    report = collect_garbage(labelled_store, keep_versions=1, older_than_days=0)
    assert report.history_versions == 3
    history = labelled_store.label_history("case_0", "final")
    assert [r["version"] for r in history] == [4, 5]
    assert history[-1]["current"]


def test_refresh_clears_temp_files_of_killed_manifest_writes(labelled_store: LocalDatastore):
    stale = labelled_store.root / ".datastore_v2.json.abc123.tmp"
    stale.write_bytes(b'{"name": "half a manif')
    other = labelled_store.root / ".someone-elses.tmp"
    other.write_bytes(b"not ours")
    labelled_store.refresh()  # nothing else changed: the fast path's listing finds it
    assert not stale.exists()
    assert other.exists()
    stale.write_bytes(b'{"name": "half a manif')
    (labelled_store.root / "brand_new.nii.gz").write_bytes(b"")  # the full scan runs
    labelled_store.refresh()
    assert not stale.exists()
    assert other.exists()


def test_add_image_refuses_a_broken_file_of_a_known_format(
    labelled_store: LocalDatastore, nifti_file: Callable[..., Path], tmp_path: Path
):
    whole = nifti_file("whole.nii.gz").read_bytes()
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(whole[: len(whole) // 2])
    before = labelled_store.json()
    with pytest.raises(ImageReadError, match=r"broken\.nii\.gz"):
        labelled_store.add_image("broken", broken)
    assert labelled_store.json() == before
    assert not (labelled_store.root / "broken.nii.gz").exists()
    assert not list(labelled_store.side_path("pending").glob("staged-*"))
