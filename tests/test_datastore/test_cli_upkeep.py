"""``medstore verify | doctor | gc | import-archive`` through the command line."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
from medstore.datastore.cli.main import main
from support.nifti import make_nifti


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    """A store with one labelled image, built through the CLI."""
    make_nifti(tmp_path / "ct.nii.gz", np.zeros((6, 5, 4), np.int16))
    make_nifti(tmp_path / "lab.nii.gz", np.ones((6, 5, 4), np.uint8))
    root = tmp_path / "store"
    assert main(["--store", str(root), "init"]) == 0
    assert main(["--store", str(root), "add", str(tmp_path / "ct.nii.gz")]) == 0
    assert main(["--store", str(root), "label", "ct", str(tmp_path / "lab.nii.gz")]) == 0
    return root


def test_verify_reports_a_changed_file(store_dir: Path, capsys: pytest.CaptureFixture[str]):
    assert main(["--store", str(store_dir), "verify"]) == 0
    (store_dir / "ct.nii.gz").write_bytes(b"tampered")
    assert main(["--store", str(store_dir), "verify"]) == 1
    assert "CHANGED  image ct" in capsys.readouterr().out


def test_doctor_needs_rebuild_for_a_corrupt_manifest(
    store_dir: Path, capsys: pytest.CaptureFixture[str]
):
    (store_dir / "datastore_v2.json").write_text("{")
    assert main(["--store", str(store_dir), "doctor"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not valid JSON" in err
    assert (store_dir / "datastore_v2.json").read_text() == "{"
    assert main(["--store", str(store_dir), "doctor", "--rebuild"]) == 0
    assert main(["--store", str(store_dir), "ls"]) == 0
    assert "ct" in capsys.readouterr().out


def test_import_archive_round_trip_and_hostile_zip(store_dir: Path, tmp_path: Path):
    archive = tmp_path / "a.zip"
    assert main(["--store", str(store_dir), "archive", "--out", str(archive)]) == 0
    other = tmp_path / "other"
    assert main(["--store", str(other), "init"]) == 0
    assert main(["--store", str(other), "import-archive", str(archive)]) == 0
    assert (other / "labels" / "final" / "ct.nii.gz").is_file()
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("../../escaped.nii.gz", b"x")
    assert main(["--store", str(other), "import-archive", str(evil)]) == 1
    assert not (tmp_path / "escaped.nii.gz").exists()


def test_gc_dry_run_deletes_nothing(store_dir: Path, tmp_path: Path):
    for value in (2, 3):
        data = np.full((6, 5, 4), value, np.uint8)
        make_nifti(tmp_path / f"v{value}.nii.gz", data)
        assert (
            main(["--store", str(store_dir), "label", "ct", str(tmp_path / f"v{value}.nii.gz")])
            == 0
        )
    history = store_dir / ".medstore" / "history" / "final" / "ct"
    before = sorted(p.name for p in history.iterdir())
    args = ["--store", str(store_dir), "gc", "--keep-versions", "0", "--older-than-days", "0"]
    assert main([*args, "--dry-run"]) == 0
    assert sorted(p.name for p in history.iterdir()) == before
    assert main(args) == 0
    assert list(history.iterdir()) == []
