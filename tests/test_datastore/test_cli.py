"""Tests of the ``medstore`` command line: every command, bad ids, read-only stores, errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import filelock
import numpy as np
import pytest
from medstore.datastore import LocalDatastore
from medstore.datastore.cli.main import main
from support.cli import Run
from support.nifti import NiftiFile

# ---------------------------------------------------------------------------- fixtures


@pytest.fixture
def store(tmp_path: Path, cli: Run, nifti_file: NiftiFile) -> Path:
    """A store with images a, b, c; ``a`` labelled final (liver=1), ``b`` labelled by alice."""
    root = tmp_path / "store"
    assert cli("init", root, "--name", "demo")[0] == 0
    for name in ("a", "b", "c"):
        nifti_file(f"{name}.nii.gz")
    assert cli("--store", root, "add", tmp_path / "src", "--info", "site=Lyon")[0] == 0
    label = nifti_file("lab.nii.gz", value=1, dtype=np.uint8)
    assert cli("--store", root, "label", "a", label, "--class", "liver=1")[0] == 0
    assert cli("--store", root, "label", "b", label, "--tag", "alice")[0] == 0
    return root


def assert_one_error_line(err: str, match: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("medstore: error: ")
    assert match in lines[0], lines[0]
    assert "Traceback" not in err


def tree(path: Path) -> dict[str, int]:
    """Every entry under ``path`` with its mtime (ns)."""
    return {str(p.relative_to(path)): p.lstat().st_mtime_ns for p in path.rglob("*")}


# ---------------------------------------------------------------------------- init / add
def test_init_creates_a_store_named_after_its_folder(tmp_path: Path, cli: Run) -> None:
    code, out, _ = cli("init", tmp_path / "new")
    assert code == 0 and "Initialised store" in out
    doc = json.loads((tmp_path / "new" / "datastore_v2.json").read_text())
    assert doc["name"] == "new" and doc["objects"] == {}
    code, out, _ = cli("init", tmp_path / "new", "--description", "CT phantoms")
    assert code == 0 and "already existed" in out
    assert LocalDatastore(tmp_path / "new").description() == "CT phantoms"
    assert LocalDatastore(tmp_path / "new").name() == "new"


def test_init_indexes_files_already_there(tmp_path: Path, cli: Run, nifti_file: NiftiFile) -> None:
    nifti_file("x.nii.gz")
    code, out, _ = cli("init", tmp_path / "src")
    assert code == 0 and "1 image" in out
    assert LocalDatastore(tmp_path / "src").list_images() == ["x"]


def test_init_on_a_file_fails(tmp_path: Path, cli: Run) -> None:
    (tmp_path / "f").write_text("x")
    code, _, err = cli("init", tmp_path / "f")
    assert code == 1
    assert_one_error_line(err, "not a folder")


def test_add_files_folders_and_globs(
    tmp_path: Path, cli: Run, nifti_file: NiftiFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "store"
    cli("init", root)
    nifti_file("one.nii.gz")
    nifti_file("deep/er/two.nii")
    nifti_file("g1.nii.gz")
    nifti_file("g2.nii.gz")
    (tmp_path / "src" / "deep" / "notes.txt").write_text("skip me")
    (tmp_path / "src" / "deep" / ".hidden.nii.gz").write_bytes(b"")
    monkeypatch.chdir(tmp_path / "src")
    code, out, _ = cli(
        "--store",
        root,
        "add",
        "one.nii.gz",
        "deep",
        "g*.nii.gz",
        "--tag",
        "train",
        "--info",
        "age:=42",
        "--info",
        "site=Lyon",
    )
    assert code == 0, out
    assert "added 4 images" in out
    store = LocalDatastore(root)
    assert sorted(store.list_images()) == ["g1", "g2", "one", "two"]
    info = store.get_image_info("two")
    assert info["tags"] == ["train"] and info["age"] == 42 and info["site"] == "Lyon"
    assert info["name"] == "two.nii"


def test_add_with_id_and_link(tmp_path: Path, cli: Run, nifti_file: NiftiFile) -> None:
    root = tmp_path / "store"
    cli("init", root)
    src = nifti_file("scan.nii.gz")
    code, out, _ = cli("--store", root, "add", src, "--id", "case 01", "--link")
    assert code == 0 and "linked 1 image" in out
    assert (root / "case 01.nii.gz").is_symlink()
    info = LocalDatastore(root).get_image_info("case 01")
    assert info["source_path"] == str(src)


def test_add_refuses_clashing_ids_and_writes_nothing(
    tmp_path: Path, cli: Run, nifti_file: NiftiFile
) -> None:
    root = tmp_path / "store"
    cli("init", root)
    nifti_file("x/case.nii.gz")
    nifti_file("y/case.nii.gz")
    before = tree(root)
    code, _, err = cli("--store", root, "add", tmp_path / "src")
    assert code == 1
    assert_one_error_line(err, "would both get id 'case'")
    assert tree(root) == before


def test_add_is_all_or_nothing(tmp_path: Path, cli: Run, nifti_file: NiftiFile) -> None:
    root = tmp_path / "store"
    cli("init", root)
    good = nifti_file("good.nii.gz")
    code, _, err = cli("--store", root, "add", good, tmp_path / "missing.nii.gz")
    assert code == 1
    assert_one_error_line(err, "does not exist")
    assert LocalDatastore(root).list_images() == []


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["add", "{src}/a.nii.gz", "{src}/b.nii.gz", "--id", "x"], 2, "--id needs exactly one"),
        (["add", "{src}/nothing*.nii.gz"], 1, "no files match"),
        (["add", "{src}/notes.txt"], 1, "matches none of the store's patterns"),
        (["add", "{src}/a.nii.gz", "--info", "novalue"], 2, "expected KEY=VALUE"),
        (["add", "{src}/a.nii.gz", "--info", "k:={bad"], 2, "invalid JSON"),
        (["add"], 2, "required"),
    ],
)
def test_add_user_mistakes(
    tmp_path: Path, cli: Run, nifti_file: NiftiFile, argv: list[str], code: int, message: str
) -> None:
    root = tmp_path / "store"
    cli("init", root)
    nifti_file("a.nii.gz")
    nifti_file("b.nii.gz")
    (tmp_path / "src" / "notes.txt").write_text("x")
    args = [a.replace("{src}", str(tmp_path / "src")) for a in argv]
    got, _, err = cli("--store", root, *args)
    assert got == code
    assert_one_error_line(err, message)
    assert LocalDatastore(root).list_images() == []


def test_add_dicom_series_folder_is_one_image(tmp_path: Path, cli: Run) -> None:
    pydicom_data = pytest.importorskip("pydicom.data")
    dcm = Path(pydicom_data.get_testdata_file("CT_small.dcm"))
    series = tmp_path / "src" / "patient" / "series1"
    series.mkdir(parents=True)
    shutil.copy(dcm, series / "slice1.dcm")
    root = tmp_path / "store"
    exts = ["--ext", "*.nii.gz", "--ext", "*.dcm"]
    cli("init", root, *exts)
    code, out, err = cli("--store", root, *exts, "add", tmp_path / "src")
    assert code == 0, err
    assert "added 1 image " in out
    store = LocalDatastore(root, extensions=("*.nii.gz", "*.dcm"))
    assert store.list_images() == ["series1"]
    assert (root / "series1" / "slice1.dcm").is_file()


def test_writing_commands_need_an_initialised_store(tmp_path: Path, cli: Run) -> None:
    (tmp_path / "plain").mkdir()
    for argv in (["refresh"], ["tag", "a", "--add", "x"], ["rm", "a"]):
        code, _, err = cli("--store", tmp_path / "plain", *argv)
        assert code == 1
        assert_one_error_line(err, "not a medstore store")
    # read-only commands index a folder without a manifest in memory (issue 17)
    code, out, err = cli("--store", tmp_path / "plain", "status")
    assert code == 0, err
    assert "Images      0" in out
    code, _, err = cli("--store", tmp_path / "plain", "info", "a")
    assert code == 1
    assert_one_error_line(err, "a")
    assert list((tmp_path / "plain").iterdir()) == []


# ---------------------------------------------------------------------------- label / ls / status
def test_label_saves_classes_and_keeps_history(
    store: Path, cli: Run, nifti_file: NiftiFile
) -> None:
    info = LocalDatastore(store).get_label_info("a", "final")
    assert info["label_info"] == [{"name": "liver", "idx": 1}]
    second = nifti_file("lab2.nii.gz", value=2, dtype=np.uint8)
    code, out, _ = cli(
        "--store",
        store,
        "label",
        "a",
        second,
        "--class",
        "liver=1",
        "--class",
        "tumour=2",
        "--info",
        "by=alice",
    )
    assert code == 0 and "previous version kept" in out
    info = LocalDatastore(store).get_label_info("a", "final")
    assert [c["name"] for c in info["label_info"]] == ["liver", "tumour"]
    assert info["by"] == "alice"
    code, out, _ = cli("--store", store, "history", "a", "--tag", "final", "--json")
    records = json.loads(out)
    assert [r["version"] for r in records] == [1, 2] and records[-1]["current"] is True


@pytest.mark.parametrize(
    ("classes", "message"),
    [(["liver"], "expected NAME=INDEX"), (["liver=x"], "integer"), (["a=1", "b=1"], "twice")],
)
def test_label_bad_class_is_a_usage_error(
    store: Path, cli: Run, nifti_file: NiftiFile, classes: list[str], message: str
) -> None:
    lab = nifti_file("l.nii.gz")
    argv = [a for c in classes for a in ("--class", c)]
    code, _, err = cli("--store", store, "label", "c", lab, *argv)
    assert code == 2
    assert_one_error_line(err, message)
    assert "final" not in LocalDatastore(store).get_labels_by_image_id("c")


def test_label_unknown_image(store: Path, cli: Run, nifti_file: NiftiFile) -> None:
    code, _, err = cli("--store", store, "label", "nope", nifti_file("l.nii.gz"))
    assert code == 1
    assert_one_error_line(err, "'nope' not found")


def test_ls_filters(store: Path, cli: Run) -> None:
    def ids(*argv: str) -> list[str]:
        code, out, _ = cli("--store", store, "ls", *argv)
        assert code == 0
        return out.split()

    assert ids() == ["a", "b", "c"]
    assert ids("--labeled") == ["a"]
    assert ids("--unlabeled") == ["b", "c"]
    assert ids("--tag", "alice") == ["b"]
    assert ids("--tag", "alice", "--unlabelled") == ["a", "c"]
    cli("--store", store, "tag", "c", "--add", "test")
    assert ids("--image-tag", "test") == ["c"]
    code, out, _ = cli("ls", "--json", "--store", store)  # global option after the command
    rows = json.loads(out)
    assert rows[0] == {"id": "a", "labels": ["final"], "tags": []}
    code, out, _ = cli("--store", store, "ls", "-l")
    assert code == 0
    assert out.splitlines()[0].split() == ["ID", "LABELS", "TAGS"]
    assert "alice" in out.splitlines()[2]


def test_status_table(store: Path, cli: Run) -> None:
    code, out, _ = cli("--store", store, "status")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["Store", str(store)]
    assert lines[1].startswith("Name        demo")
    assert lines[2].split() == ["Images", "3"]
    assert lines[3].split()[:2] == ["Labelled", "1"]
    assert lines[4].split() == ["Unlabelled", "2"]
    table = {ln.split()[0]: ln.split()[1:] for ln in lines[6:]}
    assert table == {
        "Label": ["tag", "Labelled", "Unlabelled"],
        "alice": ["1", "2"],
        "final": ["1", "2"],
        "original": ["0", "3"],
    }


def test_status_json_and_env_store(store: Path, cli: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDSTORE_STORE", str(store))
    code, out, _ = cli("status", "--json")
    assert code == 0
    summary = json.loads(out)
    assert summary["images"] == 3 and summary["labelled"] == 1 and summary["unlabelled"] == 2
    assert summary["tags"]["alice"] == {"labelled": 1, "unlabelled": 2}


def test_default_store_is_the_current_folder(
    store: Path, cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(store)
    assert cli("ls")[1].split() == ["a", "b", "c"]


# ---------------------------------------------------------------------------- info / tag / rm
def test_info_prints_json(store: Path, cli: Run) -> None:
    code, out, _ = cli("--store", store, "info", "a", "--json")
    doc = json.loads(out)
    assert doc["id"] == "a" and doc["image"]["site"] == "Lyon"
    assert doc["image"]["path"] == str(store / "a.nii.gz")
    assert doc["labels"]["final"]["label_info"] == [{"name": "liver", "idx": 1}]
    code, out, _ = cli("--store", store, "info", "b", "--tag", "alice")
    assert json.loads(out)["path"] == str(store / "labels" / "alice" / "b.nii.gz")
    code, _, err = cli("--store", store, "info", "b", "--tag", "final")
    assert code == 1
    assert_one_error_line(err, "label 'final' of image 'b' not found")


def test_tag_add_remove_show(store: Path, cli: Run) -> None:
    code, out, _ = cli("--store", store, "tag", "a", "--add", "train", "hard")
    assert code == 0 and out.split() == ["train", "hard"]
    code, out, _ = cli("--store", store, "tag", "a", "--remove", "train")
    assert out.split() == ["hard"]
    assert cli("--store", store, "tag", "a")[1].split() == ["hard"]
    assert LocalDatastore(store).get_image_info("a")["tags"] == ["hard"]
    assert "no tags" in cli("--store", store, "tag", "b")[1]


def test_rm_and_restore(store: Path, cli: Run) -> None:
    code, out, _ = cli("--store", store, "rm", "a", "--tag", "final")
    assert code == 0 and "restore with" in out
    assert LocalDatastore(store).get_labeled_images() == []
    assert cli("--store", store, "restore", "a", "--tag", "final")[0] == 0
    assert LocalDatastore(store).get_labeled_images() == ["a"]
    assert cli("--store", store, "rm", "b")[0] == 0
    assert not (store / "b.nii.gz").exists()
    assert sorted(LocalDatastore(store).list_images()) == ["a", "c"]
    assert cli("--store", store, "restore", "b")[0] == 0
    restored = LocalDatastore(store)
    assert "b" in restored.list_images()
    assert restored.get_labels_by_image_id("b") == {"alice": "b"}


def test_restore_explicit_version_and_errors(store: Path, cli: Run, nifti_file: NiftiFile) -> None:
    cli("--store", store, "label", "a", nifti_file("v2.nii.gz", value=2, dtype=np.uint8))
    first = LocalDatastore(store).label_history("a", "final")[0]["checksum"]
    assert cli("--store", store, "restore", "a", "--tag", "final", "--version", "1")[0] == 0
    assert LocalDatastore(store).get_label_info("a", "final")["checksum"] == first
    code, _, err = cli("--store", store, "restore", "a", "--tag", "final", "--version", "99")
    assert code == 1
    assert_one_error_line(err, "no version 99")
    code, _, err = cli("--store", store, "restore", "c", "--tag", "final")
    assert code == 1
    assert_one_error_line(err, "no kept version")
    code, _, err = cli("--store", store, "restore", "c", "--version", "1")
    assert code == 2
    assert_one_error_line(err, "--version needs --label-tag")


def test_history_table(store: Path, cli: Run) -> None:
    code, out, _ = cli("--store", store, "history", "a", "--tag", "final")
    assert code == 0
    assert out.splitlines()[1].split()[0] == "1" and "current" in out
    code, out, _ = cli("--store", store, "history", "c", "--tag", "final")
    assert "no versions" in out


# ---------------------------------------------------------------------------- refresh / archive
def test_refresh_indexes_files_dropped_in(store: Path, cli: Run, nifti_file: NiftiFile) -> None:
    shutil.copy(nifti_file("new.nii.gz"), store / "d.nii.gz")
    (store / "c.nii.gz").unlink()
    code, out, _ = cli("--store", store, "refresh")
    assert code == 0 and "3 images (1 new, 1 gone)" in out
    assert sorted(LocalDatastore(store).list_images()) == ["a", "b", "d"]


def test_archive(store: Path, cli: Run, tmp_path: Path) -> None:
    out_zip = tmp_path / "out" / "cases.zip"
    code, out, _ = cli("--store", store, "archive", "--out", out_zip)
    assert code == 0 and out.strip() == str(out_zip)
    with zipfile.ZipFile(out_zip) as zf:
        names = sorted(zf.namelist())
    assert names == ["image/a.nii.gz", "label/a.nii.gz", "metadata.json"]
    code, _, err = cli("--store", store, "archive", "--out", out_zip)
    assert code == 1
    assert_one_error_line(err, "already exists")
    assert cli("--store", store, "archive", "--out", out_zip, "--force", "--limit", "1")[0] == 0
    with zipfile.ZipFile(out_zip) as zf:
        assert sorted(zf.namelist()) == names
    for limit in ("0", "-1"):
        code, _, err = cli("--store", store, "archive", "--limit", limit)
        assert code == 1
        assert_one_error_line(err, "--limit must be >= 1")


# ---------------------------------------------------------------------------- watch / demo
def test_watch_logs_indexed_files_until_timeout(
    store: Path, cli: Run, nifti_file: NiftiFile
) -> None:
    src = nifti_file("late.nii.gz")
    result: list[tuple[int, str, str]] = []
    thread = threading.Thread(
        target=lambda: result.append(
            cli("--store", store, "watch", "--interval", "0.1", "--timeout", "1.5")
        )
    )
    thread.start()
    time.sleep(0.5)
    LocalDatastore(store).add_image("late", str(src))
    thread.join(timeout=20)
    code, out, _ = result[0]
    assert code == 0
    assert "watching" in out and "indexed image late (late.nii.gz)" in out
    assert out.strip().endswith("stopped")


def test_demo_on_a_given_store_leaves_it_untouched(store: Path, cli: Run) -> None:
    before = tree(store)
    code, out, _ = cli("demo", store)
    assert code == 0
    assert "Images      3" in out
    assert "MONAI datalist (label tag 'final'): 1 cases" in out
    assert "image: a.nii.gz" in out and "label: labels/final/a.nii.gz" in out
    assert tree(store) == before


def test_demo_without_sample_store_is_one_line(
    tmp_path: Path, cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    import medstore.datasets.demo.command as cli_demo

    monkeypatch.setattr(cli_demo, "sample_store_path", lambda: tmp_path / "sample_store")
    code, _, err = cli("demo")
    assert code == 1
    assert_one_error_line(err, "not found")


@pytest.mark.slow
def test_demo_on_the_repository_sample_store(cli: Run) -> None:
    from medstore.datasets.demo.command import sample_store_path

    if not (sample_store_path() / "datastore_v2.json").is_file():
        pytest.skip("sample_store/ is not generated yet")
    before = tree(sample_store_path())
    code, out, _ = cli("demo", "--epochs", "1", "--no-progress")
    assert code == 0 and "MONAI datalist" in out
    assert tree(sample_store_path()) == before


# ---------------------------------------------------------------------------- bad input
BAD_IDS = ["../evil", "/etc/passwd", "a/b", "a\\b", "..", ".hidden", "CON", "x" * 300]


@pytest.mark.parametrize("bad", BAD_IDS)
@pytest.mark.parametrize(
    "argv",
    [
        ["add", "{file}", "--id", "{bad}"],
        ["label", "{bad}", "{file}"],
        ["label", "a", "{file}", "--tag", "{bad}"],
        ["info", "{bad}"],
        ["tag", "{bad}", "--add", "x"],
        ["rm", "{bad}"],
        ["rm", "a", "--tag", "{bad}"],
        ["history", "{bad}", "--tag", "final"],
        ["restore", "{bad}"],
    ],
)
def test_bad_ids_are_refused(
    tmp_path: Path, store: Path, cli: Run, nifti_file: NiftiFile, bad: str, argv: list[str]
) -> None:
    file = nifti_file("ok.nii.gz")
    outside = {p for p in tmp_path.rglob("*") if store not in p.parents and p != store}
    before = tree(store)
    args = [a.replace("{bad}", bad).replace("{file}", str(file)) for a in argv]
    code, _, err = cli("--store", store, *args)
    assert code == 1
    assert_one_error_line(err, "")
    assert "image id" in err or "label tag" in err
    assert {p for p in tmp_path.rglob("*") if store not in p.parents and p != store} == outside
    assert not Path("/etc/passwd.nii.gz").exists()
    after = tree(store)
    assert set(after) == set(before)


@pytest.mark.parametrize("name", ["CON.nii.gz", "x" * 240 + ".nii.gz"])
def test_bad_file_names_are_refused(tmp_path: Path, store: Path, cli: Run, name: str) -> None:
    src = tmp_path / "bad"
    src.mkdir()
    shutil.copy(store / "a.nii.gz", src / name)
    code, _, err = cli("--store", store, "add", src / name)
    assert code == 1
    assert_one_error_line(err, "image id")
    assert sorted(LocalDatastore(store).list_images()) == ["a", "b", "c"]


@pytest.mark.parametrize(
    "argv",
    [
        ["add", "{file}"],
        ["label", "c", "{file}"],
        ["tag", "a", "--add", "x"],
        ["rm", "a"],
        ["rm", "a", "--tag", "final"],
        ["restore", "a", "--tag", "final"],
        ["refresh"],
    ],
)
def test_read_only_store_is_never_written(
    store: Path, cli: Run, nifti_file: NiftiFile, argv: list[str]
) -> None:
    file = nifti_file("ro.nii.gz")
    before = tree(store)
    args = [a.replace("{file}", str(file)) for a in argv]
    code, _, err = cli("--store", store, "--read-only", *args)
    assert code == 1
    assert_one_error_line(err, "read-only")
    assert tree(store) == before


def test_read_commands_write_nothing(store: Path, cli: Run) -> None:
    (store / ".lock").unlink(missing_ok=True)
    before = tree(store)
    for argv in (
        ["ls"],
        ["status"],
        ["info", "a"],
        ["history", "a", "--tag", "final"],
        ["archive", "--limit", "1"],
    ):
        assert cli("--store", store, *argv)[0] == 0
    assert tree(store) == before


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs a non-root POSIX user")
def test_unwritable_store_folder_is_one_line(store: Path, cli: Run, nifti_file: NiftiFile) -> None:
    file = nifti_file("p.nii.gz")
    (store / ".lock").unlink(missing_ok=True)
    store.chmod(0o555)
    try:
        code, _, err = cli("--store", store, "add", file)
    finally:
        store.chmod(0o755)
    assert code == 1
    assert_one_error_line(err, "ermission denied")


def test_locked_store_times_out(store: Path, cli: Run, nifti_file: NiftiFile) -> None:
    file = nifti_file("l.nii.gz")
    with filelock.FileLock(store / ".lock"):
        code, _, err = cli("--store", store, "--lock-timeout", "0.2", "add", file)
    assert code == 1
    assert_one_error_line(err, "locked by another process")


def test_corrupt_manifest_is_reported_and_kept(store: Path, cli: Run) -> None:
    manifest = store / "datastore_v2.json"
    manifest.write_text('{"name": "x", "objects": {')
    for argv in (["ls"], ["add", str(store / "a.nii.gz")]):
        code, _, err = cli("--store", store, *argv)
        assert code == 1
        assert_one_error_line(err, "datastore_v2.json")
    assert manifest.read_text() == '{"name": "x", "objects": {'


def test_usage_errors_exit_2_with_one_line(cli: Run) -> None:
    for argv in ([], ["nope"], ["ls", "--bogus"], ["history"], ["archive", "--limit", "x"]):
        code, _, err = cli(*argv)
        assert code == 2, argv
        assert_one_error_line(err, "")


def test_unexpected_errors_are_one_line_unless_verbose(
    store: Path, cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    import medstore.datastore.cli.store as cli_store

    def boom(*_: object) -> dict[str, object]:
        raise RuntimeError("boom")

    monkeypatch.setattr(cli_store, "status_summary", boom)
    code, _, err = cli("--store", store, "status")
    assert code == 1
    assert err.strip().splitlines() == [
        "medstore: internal error (run with -v for the traceback): RuntimeError: boom"
    ]
    code, _, err = cli("--store", store, "status", "-v")
    assert code == 1 and "Traceback" in err and "boom" in err


def test_version(cli: Run, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.startswith("medstore ")


# ---------------------------------------------------------------------------- real entry point
@pytest.mark.slow
def test_installed_entry_point(store: Path) -> None:
    exe = Path(sys.executable).parent / "medstore"
    if not exe.exists():
        found = shutil.which("medstore")
        if found is None:
            pytest.skip("the medstore console script is not installed")
        exe = Path(found)
    env = {k: v for k, v in os.environ.items() if k != "MEDSTORE_STORE"}
    ok = subprocess.run(
        [exe, "--store", store, "status", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["images"] == 3
    bad = subprocess.run(
        [exe, "--store", store, "info", "../evil"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert bad.returncode == 1 and bad.stdout == ""
    assert bad.stderr.strip().splitlines() == [
        "medstore: error: image id '../evil' must not start with '.'"
    ]


def test_watch_stops_cleanly_on_ctrl_c(
    store: Path, cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    import medstore.datastore.cli.watch as cli_watch

    def interrupt(_: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_watch.time, "sleep", interrupt)
    code, out, err = cli("--store", store, "watch")
    assert code == 0 and err == ""
    assert out.strip().endswith("stopped")


def test_optional_command_groups_are_wired_in(
    store: Path, cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    import argparse
    import types

    seen: list[object] = []

    def run(args: argparse.Namespace, store: LocalDatastore) -> int:
        seen.append((args.image_id, store.read_only, sorted(store.list_images())))
        return 0

    def register(subparsers: object) -> None:
        p = subparsers.add_parser("annotate-probe")  # type: ignore[attr-defined]
        p.add_argument("image_id")
        p.set_defaults(handler=run)

    fake = types.ModuleType("medstore.datastore.cli.annotate")
    fake.register = register  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "medstore.datastore.cli.annotate", fake)
    code, _, err = cli("annotate-probe", "a", "--store", store)
    assert code == 0, err
    assert seen == [("a", False, ["a", "b", "c"])]


def test_add_never_searches_the_store_itself(
    tmp_path: Path, cli: Run, nifti_file: NiftiFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    nifti_file("new.nii.gz")
    root = tmp_path / "src" / "store"
    cli("init", root)
    cli("--store", root, "add", nifti_file("old.nii.gz"))
    monkeypatch.chdir(tmp_path / "src")
    code, out, err = cli("--store", root, "add", ".")
    assert code == 0, err
    assert "added 2 images" in out
    assert sorted(LocalDatastore(root).list_images()) == ["new", "old"]
