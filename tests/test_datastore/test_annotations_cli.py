"""Tests of ``medstore annotate import/export/ls`` through the real command-line entry point."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from medstore.datastore.cli.main import main
from medstore.datastore.interop.nml import load_nml
from medstore.datastore.store.local import LocalDatastore
from support.nifti import make_nifti

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


@pytest.fixture
def store_root(tmp_path: Path) -> Path:
    """A store with one image ``case_1`` of 6 frames."""
    root = tmp_path / "store"
    src = tmp_path / "case_1.nii.gz"
    make_nifti(src, np.zeros((4, 5, 6), np.int16))
    LocalDatastore(root, lock_timeout=5.0).add_image("case_1", src, {"shape": [6, 5, 4]})
    return root


def _run(root: Path, *argv: str) -> int:
    return main(["--store", str(root), "annotate", *argv])


def test_nucleus_import_is_idempotent_and_exports_back(
    store_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fixture = FIXTURES / "nucleus_payloads.json"
    assert _run(store_root, "import", str(fixture), "--image", "case_1") == 0
    assert "imported 9 nucleus annotation(s) into 'case_1' (9 new)" in capsys.readouterr().out
    assert _run(store_root, "import", str(fixture), "--image", "case_1") == 0
    assert "(0 new)" in capsys.readouterr().out
    out = tmp_path / "out.json"
    assert _run(store_root, "export", "case_1", "--format", "nucleus", "--out", str(out)) == 0
    expected = list(json.loads(fixture.read_text()).values())
    assert json.loads(out.read_text()) == expected


def test_datamint_import_export_and_ls(
    store_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fixture = FIXTURES / "datamint_payloads.json"
    assert (
        _run(store_root, "import", str(fixture), "--image", "case_1", "--created-by", "dr-a") == 0
    )
    capsys.readouterr()
    assert _run(store_root, "ls", "case_1") == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == [
        "ID", "TYPE", "IDENTIFIER", "SCOPE", "FRAME", "CREATED_BY", "STATUS", "DELETED",
    ]  # fmt: skip
    assert table[-1] == "8 annotation(s)"
    assert any(line.split()[1:5] == ["box", "nodule", "frame", "3"] for line in table)
    assert _run(store_root, "export", "case_1", "--format", "datamint") == 0
    exported = json.loads(capsys.readouterr().out)
    assert [e["identifier"] for e in exported] == [
        v["model_dump_json"]["identifier"] for v in json.loads(fixture.read_text()).values()
    ]
    assert all(e["created_by"] == "dr-a" for e in exported)


def test_nml_import_and_export(store_root: Path, tmp_path: Path) -> None:
    fixture = FIXTURES / "handwritten_full_example.nml"
    assert _run(store_root, "import", str(fixture), "--image", "case_1") == 0
    out = tmp_path / "again.zip"
    assert _run(store_root, "export", "case_1", "--format", "nml", "--out", str(out)) == 0
    assert load_nml(out).trees == load_nml(fixture).trees


def test_user_mistakes_are_one_line_errors(
    store_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    odd = tmp_path / "odd.txt"
    odd.write_text("hello")
    assert _run(store_root, "import", str(odd), "--image", "case_1") == 1
    assert "neither NML nor JSON" in capsys.readouterr().err
    unknown = tmp_path / "unknown.json"
    unknown.write_text('{"foo": {"bar": 1}}')
    assert _run(store_root, "import", str(unknown), "--image", "case_1") == 1
    assert "cannot tell the format" in capsys.readouterr().err
    assert _run(store_root, "import", str(tmp_path / "missing.nml"), "--image", "case_1") == 1
    assert "cannot read" in capsys.readouterr().err
    assert _run(store_root, "export", "case_1", "--format", "nml") == 1
    err = capsys.readouterr().err
    assert "0 matching skeleton annotations" in err and len(err.strip().splitlines()) == 1
    assert not (store_root / ".medstore" / "annotations" / "case_1.json").exists()


def test_a_webknossos_zip_with_a_volume_layer_imports_as_a_label(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The fixture written by webknossos (6 x 7 x 8 voxels) on an image of the same grid."""
    root = tmp_path / "store"
    src = make_nifti(tmp_path / "ct.nii.gz", np.zeros((6, 7, 8), np.int16), np.eye(4))
    LocalDatastore(root, lock_timeout=5.0).add_image("ct", src)
    fixture = FIXTURES / "wk_volume_zarr3.zip"
    assert _run(root, "import", str(fixture), "--image", "ct", "--created-by", "wk") == 0
    assert "volume layer 'seg' saved as label 'wk'" in capsys.readouterr().out
    store = LocalDatastore(root)
    kinds = sorted(a.annotation_type for a in store.annotations.list("ct"))
    assert kinds == ["skeleton", "volume_segmentation"]
    info = store.get_label_info("ct", "wk")["label_info"]
    assert {(item["name"], item["idx"]) for item in info} == {("marker", 1), ("block", 2)}
