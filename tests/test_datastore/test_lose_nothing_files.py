"""Issue 12, odd files and a user's ordinary mistakes: medstore loses or misplaces nothing.

Each test reproduces one way data or information used to be lost (the case number of the issue is
in its name) with real files: FIFOs, character devices, DICOM series folders, symlinks.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import numpy as np
import pytest
from medstore.datastore import LocalDatastore
from medstore.datastore.errors import ImageNotFoundError, ImageReadError
from support.cli import Run
from support.dicom import make_dicom_series
from support.nifti import make_nifti
from support.stores import MakeStore, simple_case

pytestmark = pytest.mark.contract  # runs once per store write path (support.contract)

DICOM = ("*.nii.gz", "*.nii", "*.dcm")


def _volume(n: int = 4) -> np.ndarray:
    return np.arange(n * 4 * 5, dtype=np.int16).reshape(n, 4, 5)


def _zero_device(path: Path) -> None:
    """A character device with /dev/zero's numbers (reads never end)."""
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.stat("/dev/zero").st_rdev)
    except PermissionError:
        pytest.skip("creating a character device needs root (CAP_MKNOD)")


def _pending(root: Path) -> list[str]:
    folder = root / ".medstore" / "pending"
    return sorted(os.listdir(folder)) if folder.exists() else []


# ---------------------------------------------------------------------------- case 8
@pytest.mark.timeout(60)
def test_case8_refresh_never_indexes_a_fifo_or_a_device(
    make_store: MakeStore, caplog: pytest.LogCaptureFixture
) -> None:
    store = make_store({"a": simple_case(1)})
    os.mkfifo(store.root / "pipe.nii.gz")
    _zero_device(store.root / "zero.nii.gz")
    os.mkfifo(store.root / "labels" / "final" / "a.nii")
    with caplog.at_level(logging.WARNING):
        store.refresh()
    assert store.list_images() == ["a"]
    assert store.get_labels_by_image_id("a") == {"final": "a"}
    assert "pipe.nii.gz" in caplog.text and "not a regular file" in caplog.text
    reopened = LocalDatastore(store.root, lock_timeout=5.0)
    assert reopened.list_images() == ["a"]


@pytest.mark.timeout(60)
def test_case8_add_refuses_a_fifo_and_a_device(make_store: MakeStore, tmp_path: Path) -> None:
    store = make_store()
    os.mkfifo(tmp_path / "pipe.nii.gz")
    _zero_device(tmp_path / "zero.nii.gz")
    for name in ("pipe.nii.gz", "zero.nii.gz"):
        with pytest.raises(ImageReadError, match="not a regular file"):
            store.add_image(name.split(".")[0], str(tmp_path / name))
    assert store.list_images() == []
    assert [n for n in _pending(store.root) if n.startswith("staged-")] == []


@pytest.mark.timeout(60)
def test_case8_cli_add_of_a_fifo_or_device_fails_at_once(tmp_path: Path, cli: Run) -> None:
    root = tmp_path / "store"
    assert cli("init", root)[0] == 0
    src = tmp_path / "in"
    src.mkdir()
    os.mkfifo(src / "pipe.nii.gz")
    _zero_device(src / "zero.nii.gz")
    code, _, err = cli("--store", root, "add", src / "pipe.nii.gz")
    assert code != 0 and "not a regular file" in err
    code, _, err = cli("--store", root, "add", src / "zero.nii.gz")
    assert code != 0 and "not a regular file" in err
    make_nifti(src / "ok.nii.gz", np.zeros((3, 3, 3), np.int16))
    code, out, err = cli("--store", root, "add", src)
    assert code == 0 and "added 1 image" in out, err
    assert LocalDatastore(root).list_images() == ["ok"]
    assert _pending(root) == []


@pytest.mark.timeout(60)
def test_case8_watcher_passes_over_a_fifo_and_indexes_later_files(
    make_store: MakeStore, tmp_path: Path
) -> None:
    from medstore.datastore.watch.arrivals import ArrivalGate

    gate = ArrivalGate(stability_window=0.0, describe=str)
    fifo = tmp_path / "pipe.nii.gz"
    os.mkfifo(fifo)
    gate.begin_refresh()
    assert gate.accept(fifo) is False
    gate.check()  # used to block for good, opening the FIFO
    assert fifo not in gate and gate.settled()


# ---------------------------------------------------------------------------- case 16
@pytest.mark.parametrize(
    ("kind", "message"),
    [("gap", "missing slice"), ("duplicate", "duplicate"), ("mixed", "series")],
)
def test_case16_a_refused_series_says_why_and_leaves_nothing_staged(
    make_store: MakeStore, tmp_path: Path, kind: str, message: str
) -> None:
    store = make_store(extensions=DICOM)
    folder = tmp_path / "series"
    vol = _volume(5)
    if kind == "gap":
        make_dicom_series(folder, vol, skip=(2,))
    elif kind == "duplicate":
        make_dicom_series(folder, vol, spacing=(0.0, 0.5, 0.75))
    else:
        make_dicom_series(folder, vol, series_uids=["1.2.3", "1.2.3", "1.2.4", "1.2.4", "1.2.4"])
    with pytest.raises(ImageReadError, match=message) as info:
        store.add_image("s", str(folder))
    assert "staged-" not in str(info.value) and "pending" not in str(info.value)
    assert _pending(store.root) == []
    assert store.list_images() == []


def test_case16_cli_add_of_a_gapped_series_prints_the_gap(tmp_path: Path, cli: Run) -> None:
    root = tmp_path / "store"
    assert cli("init", root)[0] == 0
    make_dicom_series(tmp_path / "series", _volume(5), skip=(2,))
    code, _, err = cli("--store", root, "--ext", "*.dcm", "add", tmp_path / "series")
    assert code != 0
    assert "missing slice(s): gap of" in err and "IsADirectoryError" not in err
    assert _pending(root) == []


# ---------------------------------------------------------------------------- case 14
def test_case14_removing_a_linked_image_keeps_its_folder_and_restores(
    make_store: MakeStore, tmp_path: Path
) -> None:
    images = tmp_path / "user"
    src = make_nifti(images / "scan.nii.gz", np.ones((3, 3, 3), np.int16))
    user_file = images / "entry.json"
    user_file.write_text('{"mine": true}')
    store = make_store()
    store.add_image("scan", str(src), {"site": "Lyon"}, link=True)
    store.remove_image("scan")
    assert user_file.read_text() == '{"mine": true}'
    assert sorted(p.name for p in images.iterdir()) == ["entry.json", "scan.nii.gz"]
    store.restore_image("scan")
    assert store.get_image_info("scan")["site"] == "Lyon"
    assert os.path.realpath(store.get_image_uri("scan")) == str(src.resolve())


# ---------------------------------------------------------------------------- case 10
def test_case10_a_stray_file_never_repoints_a_tracked_image(
    make_store: MakeStore, caplog: pytest.LogCaptureFixture
) -> None:
    store = make_store({"a": simple_case(2)})
    store.update_image_info("a", {"checksum_probe": 1})
    before = store.get_image_info("a")
    make_nifti(store.root / "a.nii", np.zeros((2, 2, 2), np.int16))
    with caplog.at_level(logging.WARNING):
        state = store.refresh()
    assert store.get_image_uri("a").endswith("a.nii.gz")
    assert store.get_image_info("a") == before
    assert store.get_labels_by_image_id("a") == {"final": "a"}
    assert "a.nii" in state.skipped
    assert "a.nii" in caplog.text


# ---------------------------------------------------------------------------- case 11
def test_case11_a_narrower_extension_list_forgets_nothing(
    make_store: MakeStore, tmp_path: Path, cli: Run
) -> None:
    store = make_store(extensions=DICOM)
    make_dicom_series(tmp_path / "ser", _volume(4))
    store.add_image("ser", str(tmp_path / "ser"), {"patient_id": "P1"})
    make_nifti(tmp_path / "plain.nii", np.ones((4, 5, 4), np.int16))
    store.add_image("plain", str(tmp_path / "plain.nii"), {"patient_id": "P2"})
    store.save_label(
        "plain", str(make_nifti(tmp_path / "l.nii", np.ones((4, 5, 4), np.uint8))), "final"
    )
    store.update_label_info("plain", "final", {"label_info": [{"name": "x", "idx": 1}]})
    store.close()
    make_nifti(tmp_path / "P003" / "new.nii.gz", np.ones((3, 3, 3), np.int16))
    code, _, err = cli("--store", store.root, "--ext", "*.nii.gz", "add", tmp_path / "P003")
    assert code == 0, err
    again = LocalDatastore(store.root, extensions=DICOM)
    assert sorted(again.list_images()) == ["new", "plain", "ser"]
    assert again.get_image_info("ser")["patient_id"] == "P1"
    assert again.get_image_info("plain")["patient_id"] == "P2"
    assert again.get_label_info("plain", "final")["label_info"] == [{"name": "x", "idx": 1}]


def test_case11_an_object_whose_files_are_gone_stays_restorable(make_store: MakeStore) -> None:
    store = make_store({"a": simple_case(3, (4, 4, 4)), "b": simple_case(4, (4, 4, 4))})
    store.update_image_info("a", {"patient_id": "P1"})
    data = (store.root / "a.nii.gz").read_bytes()
    (store.root / "a.nii.gz").unlink()
    store.refresh()
    assert store.list_images() == ["b"]
    (store.root / "a.nii.gz").write_bytes(data)  # the user puts the file back
    store.refresh()
    assert store.get_image_info("a").get("patient_id") == "P1"
    assert store.get_label_info("a", "final")["label_info"] == simple_case(3).labels["final"][1]


def test_case11_restore_image_brings_back_a_vanished_image_info(make_store: MakeStore) -> None:
    store = make_store({"a": simple_case(5, (4, 4, 4))})
    store.update_image_info("a", {"patient_id": "P1"})
    data = (store.root / "a.nii.gz").read_bytes()
    (store.root / "a.nii.gz").unlink()
    store.refresh()
    with pytest.raises(ImageNotFoundError, match="file is gone"):
        store.restore_image("a")
    (store.root / "a.nii.gz").write_bytes(data)
    store.refresh()
    assert store.get_image_info("a")["patient_id"] == "P1"


def test_case11_a_label_whose_file_vanished_keeps_its_info_restorable(
    make_store: MakeStore, caplog: pytest.LogCaptureFixture
) -> None:
    """Before: the refresh dropped the label's entry; the file put back came with no info."""
    store = make_store({"a": simple_case(11, (4, 4, 4))})
    store.update_label_info("a", "final", {"by": "ann"})
    label = store.root / "labels" / "final" / "a.nii.gz"
    data = label.read_bytes()
    label.unlink()
    with caplog.at_level(logging.WARNING):
        store.refresh()
    assert store.get_labels_by_image_id("a") == {}  # the manifest names no missing file
    assert "label final/a.nii.gz is gone from the disk; its info is kept in" in caplog.text
    assert len(list((store.root / ".medstore" / "trash" / "a").glob("*/label-final.json"))) == 1
    label.write_bytes(data)  # the user puts the file back
    store.refresh()
    info = store.get_label_info("a", "final")
    assert info["by"] == "ann"
    assert info["label_info"] == simple_case(11).labels["final"][1]
    with pytest.raises(ImageNotFoundError, match="no removed image"):
        store.restore_image("a")  # the image was never removed


def test_case11_a_vanished_label_s_info_never_moves_to_a_new_image_of_the_id(
    make_store: MakeStore, tmp_path: Path
) -> None:
    store = make_store({"a": simple_case(12, (4, 4, 4))})
    store.update_label_info("a", "final", {"by": "ann"})
    label = store.root / "labels" / "final" / "a.nii.gz"
    data = label.read_bytes()
    label.unlink()
    store.refresh()
    replacement = make_nifti(tmp_path / "new.nii.gz", np.zeros((4, 4, 4), np.int16))
    store.add_image("a", str(replacement))  # a new image under the same id
    label.write_bytes(data)
    store.refresh()
    assert "by" not in store.get_label_info("a", "final")


# ---------------------------------------------------------------------------- case 15
def _unreadable(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "fake.dcm").write_text("this is not DICOM\n" * 20)
    (folder / "short.nii").write_bytes(b"\x5c\x01\x00\x00" + b"\x00" * 196)
    whole = make_nifti(folder / "whole.nii.gz", np.ones((16, 16, 16), np.int16)).read_bytes()
    (folder / "cut.nii.gz").write_bytes(whole[: len(whole) // 2])
    (folder / "whole.nii.gz").unlink()
    return {p.name.split(".")[0]: p for p in folder.iterdir()}


@pytest.mark.parametrize("name", ["fake", "short", "cut"])
def test_case15_add_refuses_an_unreadable_file(
    make_store: MakeStore, tmp_path: Path, name: str
) -> None:
    store = make_store(extensions=DICOM)
    path = _unreadable(tmp_path / "bad")[name]
    with pytest.raises(ImageReadError, match=path.name):
        store.add_image(name, str(path))
    assert store.list_images() == []
    assert _pending(store.root) == []


def test_case15_cli_add_refuses_unreadable_files_and_adds_nothing(tmp_path: Path, cli: Run) -> None:
    root = tmp_path / "store"
    assert cli("init", root)[0] == 0
    bad = _unreadable(tmp_path / "bad")
    bad["cut"].unlink()
    make_nifti(tmp_path / "bad" / "good.nii.gz", np.ones((3, 3, 3), np.int16))
    code, _, err = cli("--store", root, "--ext", "*.dcm", "--ext", "*.nii", "add", tmp_path / "bad")
    assert code != 0 and "fake.dcm" in err
    assert LocalDatastore(root).list_images() == []


def test_case15_verify_finds_unreadable_images_and_misfit_labels(make_store: MakeStore) -> None:
    from medstore.datastore.upkeep import verify

    store = make_store({"a": simple_case(6, (6, 5, 4)), "b": simple_case(7, (6, 5, 4))})
    assert verify(store).ok
    make_nifti(store.root / "labels" / "final" / "a.nii.gz", np.ones((3, 3, 3), np.uint8))
    whole = (store.root / "b.nii.gz").read_bytes()
    (store.root / "b.nii.gz").write_bytes(whole[: len(whole) // 2])
    store.refresh()
    report = verify(store)
    assert not report.ok
    assert report.misfit == ["label final/a"]
    assert report.unreadable == ["image b"]


@pytest.mark.timeout(120)
def test_case15_the_watcher_warns_about_a_misfit_label(
    make_store: MakeStore, caplog: pytest.LogCaptureFixture
) -> None:
    from medstore.datastore.watch.watcher import WatchOptions

    fast = WatchOptions(debounce=0.1, stability_window=0.3, poll_interval=0.3, rescan_interval=60.0)
    store = make_store(
        {"a": simple_case(8, (6, 5, 4))}, auto_reload=True, watch="poll", watch_options=fast
    )
    with caplog.at_level(logging.WARNING):
        make_nifti(store.root / "labels" / "review" / "a.nii.gz", np.ones((3, 3, 3), np.uint8))
        make_nifti(store.root / "labels" / "ok" / "a.nii.gz", np.ones((6, 5, 4), np.uint8))
        assert store.watcher is not None
        while set(store.get_labels_by_image_id("a")) != {"final", "ok", "review"}:
            store.watcher.wait_idle(5.0)
    assert "labels/review/a.nii.gz does not fit its image" in caplog.text
    assert "labels/ok/a.nii.gz" not in caplog.text


# ---------------------------------------------------------------------------- case 12
def test_case12_re_adding_an_id_keeps_the_old_image_restorable(
    make_store: MakeStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = make_store({"scan": simple_case(9, (6, 5, 4))})
    store.update_image_info("scan", {"site": "A"})
    old = (store.root / "scan.nii.gz").read_bytes()
    new = make_nifti(tmp_path / "siteB" / "scan.nii.gz", np.ones((8, 8, 8), np.int16))
    with caplog.at_level(logging.WARNING):
        assert store.add_image("scan", str(new), {"site": "B"}) == "scan"
    assert "final" in caplog.text and "no longer fits" in caplog.text
    assert store.get_image_info("scan")["site"] == "B"
    store.restore_image("scan")
    assert (store.root / "scan.nii.gz").read_bytes() == old
    assert store.get_image_info("scan")["site"] == "A"
    assert store.get_labels_by_image_id("scan") == {"final": "scan"}


def test_case12_cli_add_refuses_an_existing_id_unless_replace(tmp_path: Path, cli: Run) -> None:
    root = tmp_path / "store"
    assert cli("init", root)[0] == 0
    first = make_nifti(tmp_path / "siteA" / "scan.nii", np.zeros((6, 5, 4), np.int16))
    second = make_nifti(tmp_path / "siteB" / "scan.nii", np.zeros((8, 8, 8), np.int16))
    label = make_nifti(tmp_path / "lab.nii.gz", np.ones((6, 5, 4), np.uint8))
    assert cli("--store", root, "add", first)[0] == 0
    assert cli("--store", root, "label", "scan", label)[0] == 0
    before = (root / "scan.nii").read_bytes()
    code, _, err = cli("--store", root, "add", second)
    assert code != 0 and "'scan' is already in the store" in err and "--replace" in err
    assert (root / "scan.nii").read_bytes() == before
    code, out, err = cli("--store", root, "add", second, "--replace")
    assert code == 0, err
    assert "replaced image scan" in out
    assert "kept label final/scan, but it no longer fits the new image" in out
    store = LocalDatastore(root)
    store.restore_image("scan")
    assert (root / "scan.nii").read_bytes() == before


# ---------------------------------------------------------------------------- case 9
def test_case9_an_id_whose_file_is_another_ids_series_folder_is_refused(
    make_store: MakeStore, tmp_path: Path
) -> None:
    from medstore.datastore.errors import InvalidIdError

    store = make_store(extensions=DICOM)
    make_dicom_series(store.root / "scan.nii.gz", _volume(4))
    store.refresh()
    assert store.list_images() == ["scan.nii.gz"]
    files = sorted(os.listdir(store.root / "scan.nii.gz"))
    src = make_nifti(tmp_path / "f.nii.gz", np.ones((3, 3, 3), np.int16))
    with pytest.raises(InvalidIdError, match=r"'scan'.*'scan\.nii\.gz'"):
        store.add_image("scan", str(src))
    assert sorted(os.listdir(store.root / "scan.nii.gz")) == files
    assert store.list_images() == ["scan.nii.gz"]
    assert _pending(store.root) == []


@pytest.mark.timeout(60)
def test_case8_a_series_folder_holding_a_fifo_or_device_is_refused(
    make_store: MakeStore, tmp_path: Path
) -> None:
    store = make_store(extensions=DICOM)
    for name, make in (("pipe", os.mkfifo), ("zero", _zero_device)):
        folder = make_dicom_series(tmp_path / name, _volume(3))
        make(folder / "IM9999")
        with pytest.raises(ImageReadError, match=r"IM9999.*not a regular file"):
            store.add_image(name, str(folder))
    assert store.list_images() == []
    assert _pending(store.root) == []


def test_case16_a_refused_series_in_a_batch_after_a_good_one_says_why(
    tmp_path: Path, cli: Run
) -> None:
    root = tmp_path / "store"
    assert cli("init", root)[0] == 0
    make_dicom_series(tmp_path / "in" / "a_good", _volume(4))
    make_dicom_series(tmp_path / "in" / "b_gap", _volume(5), skip=(2,))
    code, _, err = cli("--store", root, "--ext", "*.dcm", "add", tmp_path / "in")
    assert code != 0
    assert "missing slice(s): gap of" in err and "IsADirectoryError" not in err
    assert _pending(root) == []
    assert LocalDatastore(root, extensions=DICOM).list_images() == []


@pytest.mark.timeout(20)
@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_case8_save_label_from_a_fifo_or_device_fails_at_once(
    make_store: MakeStore, tmp_path: Path, kind: str
) -> None:
    """Before: the label copy opened the FIFO and waited for a writer forever."""
    store = make_store({"a": simple_case(10, (4, 4, 4))})
    path = tmp_path / "label.nii.gz"
    os.mkfifo(path) if kind == "fifo" else _zero_device(path)
    with pytest.raises(ImageReadError, match="not a regular file"):
        store.save_label("a", str(path), "final")
    assert store.get_label_info("a", "final")["label_info"] == simple_case(10).labels["final"][1]
    assert _pending(store.root) == []


@pytest.mark.timeout(20)
def test_case8_a_source_swapped_for_a_fifo_after_its_check_is_refused_when_opened(
    make_store: MakeStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The copy checks the file it opened, not only the path it checked before (a swap)."""
    from medstore.datastore.store import image_writes

    store = make_store()
    os.mkfifo(tmp_path / "swapped.nii.gz")
    monkeypatch.setattr(image_writes, "source_kind", lambda source: "file")  # checked, then swapped
    with pytest.raises(ImageReadError, match="not a regular file"):
        store.add_image("swapped", str(tmp_path / "swapped.nii.gz"))
    assert store.list_images() == []
    assert _pending(store.root) == []
