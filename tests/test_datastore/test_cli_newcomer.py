"""Issue 17, the CLI a new user meets: each reproduction through the real ``medstore`` script."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from medstore.datastore import LocalDatastore
from support.console import MEDSTORE, console_env, run_medstore
from support.nifti import make_nifti

pytestmark = pytest.mark.timeout(600)

AFFINE = np.diag([-0.8, -0.8, 2.5, 1.0])


def _studies_folder(root: Path) -> Path:
    """A MONAI Label studies folder as a server would find it: no datastore_v2.json."""
    for name, value in (("case_a", 10), ("case_b", 20)):
        make_nifti(root / f"{name}.nii.gz", np.full((6, 5, 4), value, np.int16), AFFINE)
    label = np.zeros((6, 5, 4), np.uint8)
    label[2:4, 1:3, 1:3] = 1
    make_nifti(root / "labels" / "final" / "case_a.nii.gz", label, AFFINE)
    return root


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
    } | {".": (0, root.stat().st_mtime_ns)}


def _store(tmp_path: Path, n: int = 2) -> Path:
    root = tmp_path / "store"
    store = LocalDatastore(root)
    for i in range(n):
        src = make_nifti(
            tmp_path / "src" / f"img{i}.nii.gz", np.full((6, 5, 4), i, np.int16), AFFINE
        )
        store.add_image(f"img{i}", src, {})
    label = np.zeros((4, 5, 6), np.uint8)  # canonical (D, H, W) of a (6, 5, 4) file
    label[1:3, 1:3, 1:3] = 1
    store.save_label("img0", label, "final", {"label_info": [{"name": "organ", "idx": 1}]})
    store.close()
    return root


# ---------------------------------------------------------------------------- read-only commands
def test_read_only_commands_work_on_a_studies_folder_without_manifest(tmp_path: Path) -> None:
    studies = _studies_folder(tmp_path / "studies")
    before = _tree(studies)
    for argv in (
        ["ls"],
        ["status"],
        ["info", "case_a"],
        ["history", "case_a"],
        ["preview", "case_a", "--out", tmp_path / "a.png"],
        ["export", "--format", "datalist", tmp_path / "datalist.json"],
        ["export", "--format", "decathlon", tmp_path / "Task01"],
    ):
        done = run_medstore("--store", studies, *argv, cwd=tmp_path)
        assert done.returncode == 0, (argv, done.stderr)
        assert "not a medstore store" not in done.stderr
    assert _tree(studies) == before  # nothing written: no manifest, no .lock, no .medstore
    listing = run_medstore("--store", studies, "ls", "-l").stdout.splitlines()
    assert listing[1:] == ["case_a  final", "case_b  -"]
    doc = json.loads((tmp_path / "datalist.json").read_text())
    assert doc["training"] == [
        {"image": "studies/case_a.nii.gz", "label": "studies/labels/final/case_a.nii.gz"}
    ]
    # writing still needs a store
    done = run_medstore("--store", studies, "tag", "case_a", "--add", "x")
    assert done.returncode == 1 and "not a medstore store" in done.stderr
    assert _tree(studies) == before


# ---------------------------------------------------------------------------- add id templates
def test_add_one_folder_per_patient_with_id_templates(tmp_path: Path) -> None:
    for patient, value in (("P001", 1), ("P002", 2)):
        make_nifti(tmp_path / "patients" / patient / "t1.nii.gz", np.full((4, 4, 4), value), AFFINE)
    assert run_medstore("init", tmp_path / "s1").returncode == 0
    done = run_medstore("--store", tmp_path / "s1", "add", tmp_path / "patients")
    assert done.returncode == 1
    assert "both get id 't1'" in done.stderr and "--id-from parent" in done.stderr
    done = run_medstore(
        "--store", tmp_path / "s1", "add", tmp_path / "patients", "--id-from", "parent"
    )
    assert done.returncode == 0, done.stderr
    assert LocalDatastore(tmp_path / "s1").list_images() == ["P001_t1", "P002_t1"]
    assert run_medstore("init", tmp_path / "s2").returncode == 0
    template = "{grandparent}-{parent}-{stem}"
    done = run_medstore("--store", tmp_path / "s2", "add", tmp_path / "patients", "--id", template)
    assert done.returncode == 0, done.stderr
    assert LocalDatastore(tmp_path / "s2").list_images() == ["patients-P001-t1", "patients-P002-t1"]
    done = run_medstore("--store", tmp_path / "s2", "add", tmp_path / "patients", "--id", "{age}")
    assert done.returncode == 2 and "unknown field {age}" in done.stderr


# ---------------------------------------------------------------------------- tags and defaults
def test_history_defaults_to_the_final_label(tmp_path: Path) -> None:
    store = _store(tmp_path)
    done = run_medstore("--store", store, "history", "img0")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[1].split()[0] == "1"
    assert "current" in done.stdout


def test_label_tags_and_image_tags_are_named_apart(tmp_path: Path) -> None:
    store = _store(tmp_path)
    help_text = run_medstore("label", "--help").stdout
    assert "--label-tag" in help_text and "annotator or model" in help_text
    assert "--image-tag" in run_medstore("add", "--help").stdout
    label = make_nifti(tmp_path / "lab.nii.gz", np.zeros((6, 5, 4), np.uint8), AFFINE)
    for flag, tag in (("--label-tag", "alice"), ("--tag", "bob")):  # the old spelling stays
        done = run_medstore("--store", store, "label", "img1", label, flag, tag)
        assert done.returncode == 0, done.stderr
    assert sorted(LocalDatastore(store).get_labels_by_image_id("img1")) == ["alice", "bob"]
    src = make_nifti(tmp_path / "new.nii.gz", np.ones((6, 5, 4), np.int16), AFFINE)
    assert run_medstore("--store", store, "add", src, "--image-tag", "hard").returncode == 0
    done = run_medstore("--store", store, "ls", "--image-tag", "hard")
    assert done.stdout.split() == ["new"]


def test_label_force_saves_a_float_label(tmp_path: Path) -> None:
    store = _store(tmp_path)
    floats = make_nifti(tmp_path / "prob.nii.gz", np.full((6, 5, 4), 0.5, np.float32), AFFINE)
    done = run_medstore("--store", store, "label", "img1", floats, "--label-tag", "model")
    assert done.returncode == 1 and "--force" not in done.stdout
    done = run_medstore(
        "--store", store, "label", "img1", floats, "--label-tag", "model", "--force"
    )
    assert done.returncode == 0, done.stderr
    assert "model" in LocalDatastore(store).get_labels_by_image_id("img1")


# ---------------------------------------------------------------------------- export / import
def test_export_and_import_take_the_global_store(tmp_path: Path) -> None:
    store = _store(tmp_path)
    done = run_medstore("--store", store, "export", "--format", "decathlon", tmp_path / "Task01")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "Task01" / "dataset.json").is_file()
    done = run_medstore(
        "--store", tmp_path / "back", "import", "--format", "decathlon", tmp_path / "Task01"
    )
    assert done.returncode == 0, done.stderr
    assert LocalDatastore(tmp_path / "back").list_images() == ["img0", "img1"]
    # positional paths keep working
    done = run_medstore("export", "--format", "decathlon", store, tmp_path / "Task02")
    assert done.returncode == 0, done.stderr
    done = run_medstore("import", "--format", "decathlon", tmp_path / "Task02", tmp_path / "back2")
    assert done.returncode == 0, done.stderr


# ---------------------------------------------------------------------------- lock, Ctrl-C, pipes
def _hold_lock(store: Path) -> subprocess.Popen[str]:
    code = (
        "import filelock, sys, time\n"
        f"lock = filelock.FileLock({str(store / '.lock')!r}); lock.acquire()\n"
        "print('held', flush=True); time.sleep(120)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    return holder


def test_waiting_for_the_lock_says_who_holds_it(tmp_path: Path) -> None:
    store = _store(tmp_path)
    holder = _hold_lock(store)
    try:
        done = run_medstore("--store", store, "--lock-timeout", "2", "tag", "img0", "--add", "x")
    finally:
        holder.kill()
        holder.wait()
    assert done.returncode == 1
    assert f"waiting for the lock held by process {holder.pid} (python" in done.stderr
    assert "is locked by another process" in done.stderr


def test_ctrl_c_says_nothing_was_changed(tmp_path: Path) -> None:
    store = _store(tmp_path)
    holder = _hold_lock(store)
    try:
        proc = subprocess.Popen(
            [str(MEDSTORE), "--store", str(store), "tag", "img0", "--add", "x"],
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
            env=console_env(),
        )
        assert proc.stderr is not None
        line = proc.stderr.readline()  # the lock wait is announced: the command is waiting
        assert "waiting for the lock" in line
        proc.send_signal(signal.SIGINT)
        rest = proc.stderr.read()
        assert proc.wait(timeout=60) == 130
    finally:
        holder.kill()
        holder.wait()
    assert rest.strip() == "medstore: interrupted: nothing was changed"
    assert "x" not in LocalDatastore(store).get_image_info("img0").get("tags", [])


def test_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    store = _store(tmp_path)
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before medstore writes (as `medstore ls | head`)
    try:
        proc = subprocess.run(
            [str(MEDSTORE), "--store", str(store), "ls"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            env=console_env(),
            timeout=120,
            check=False,
        )
    finally:
        os.close(write_end)
    assert proc.stderr == ""
    assert proc.returncode == 141


# ---------------------------------------------------------------------------- preview, info, demo
def test_preview_writes_to_the_current_folder_not_the_store(tmp_path: Path) -> None:
    store = _store(tmp_path)
    here = tmp_path / "here"
    here.mkdir()
    before = _tree(store)
    done = run_medstore("--store", store, "--read-only", "preview", "img0", cwd=here)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Wrote img0-final-preview.png (label 'final'; window ")
    assert (here / "img0-final-preview.png").is_file()
    assert _tree(store) == before


def test_info_prints_both_axis_orders_labelled(tmp_path: Path) -> None:
    root = tmp_path / "store"
    src = make_nifti(
        tmp_path / "x.nii.gz", np.zeros((33, 41, 25), np.int16), np.diag([1, 1, 3, 1.0])
    )
    LocalDatastore(root).add_image("x", src, {})
    out = run_medstore("--store", root, "info", "x").stdout
    assert "file order (i, j, k): 33 x 41 x 25" in out
    assert "medstore (D, H, W): 25 x 41 x 33" in out
    assert "file order (i, j, k): 1 x 1 x 3 mm" in out and "medstore (D, H, W): 3 x 1 x 1 mm" in out
    doc = json.loads(run_medstore("--store", root, "info", "x", "--json").stdout)
    assert doc["geometry"]["file_order"]["shape"] == [33, 41, 25]
    assert doc["geometry"]["medstore_order"]["shape"] == [25, 41, 33]


def test_demo_preview_folder_is_per_user_and_per_run() -> None:
    from medstore.datasets.demo.command import _preview_folder

    first, second = _preview_folder(), _preview_folder()
    try:
        assert first != second
        assert first.stat().st_mode & 0o777 == 0o700  # private to this user
        assert first.stat().st_uid == os.getuid()
        assert "medstore-demo-" in first.name
    finally:
        first.rmdir()
        second.rmdir()


# ---------------------------------------------------------------------------- no torch at start
_PROBE = """
import json, sys
from medstore.datastore.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
sys.stdout.flush()
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "monai"))),
      file=sys.stderr)
"""


def test_help_and_store_commands_never_import_torch_or_monai(tmp_path: Path) -> None:
    store = _store(tmp_path)
    label = make_nifti(tmp_path / "lab.nii.gz", np.zeros((6, 5, 4), np.uint8), AFFINE)
    src = make_nifti(tmp_path / "more.nii.gz", np.ones((6, 5, 4), np.int16), AFFINE)
    for argv in (
        ["--help"],
        ["ls"],
        ["status"],
        ["info", "img0"],
        ["history", "img0"],
        ["add", str(src)],
        ["label", "img1", str(label)],
        ["preview", "img0", "--out", str(tmp_path / "p.png")],
        ["export", "--format", "nnunet", str(tmp_path / "Dataset001_X"), "--modality", "CT"],
        ["verify"],
    ):
        args = argv if argv == ["--help"] else ["--store", str(store), *argv]
        done = subprocess.run(
            [sys.executable, "-c", _PROBE, *args],
            capture_output=True,
            text=True,
            env=console_env(),
            timeout=300,
            check=False,
        )
        loaded = json.loads(done.stderr.strip().splitlines()[-1])
        assert loaded == [], (argv, loaded)


def test_python_dash_m_runs_the_same_command() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "medstore.datastore.cli", "--version"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0 and done.stdout.startswith("medstore ")
