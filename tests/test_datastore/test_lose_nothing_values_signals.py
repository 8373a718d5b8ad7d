"""Issue 12, values, names, versions, caches and watch limits: each case a reproduction.

Case 23: ids and tags are validated before any lookup. Case 24: NaN/Inf refused on write,
accepted on read; big ints read back as ints; deep nesting a clear error. Case 21: label versions
are numbers. Case 22: the decode-once cache keys on the manifest checksum. Case 25: the watcher
falls back to polling when inotify refuses a watch.
"""

from __future__ import annotations

import errno
import json
import logging
import math
import os
import subprocess
import time
from collections.abc import Iterator
from hashlib import sha256
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from medstore.datasets import VolumeDataset
from medstore.datastore.errors import InvalidIdError, InvalidValueError, ManifestCorruptError
from medstore.datastore.store import split_log
from medstore.datastore.store.local import LocalDatastore
from medstore.datastore.store.split_log import SplitLog
from medstore.datastore.upkeep import collect_garbage
from medstore.datastore.watch.watcher import WatchOptions
from support.nifti import make_nifti
from support.stores import MakeStore, simple_case
from watchdog.observers.inotify import InotifyObserver

pytestmark = pytest.mark.contract  # runs once per store write path (support.contract)

BAD_NAMES = ["../evil", "", ".hidden", "a/b", "a\\b", "nul\x00byte", "CON"]


@pytest.fixture
def store(make_store: MakeStore) -> LocalDatastore:
    return make_store({"case": simple_case(1)})


def _id_calls(store: LocalDatastore, bad: str) -> dict[str, Any]:
    """Every facade method taking an image id, called with ``bad`` as the id."""
    label = np.zeros((6, 5, 4), np.uint8)
    return {
        "has_image": lambda: store.has_image(bad),
        "get_image_uri": lambda: store.get_image_uri(bad),
        "get_image": lambda: store.get_image(bad),
        "get_image_info": lambda: store.get_image_info(bad),
        "get_label_uri": lambda: store.get_label_uri(bad, "final"),
        "get_label": lambda: store.get_label(bad, "final"),
        "get_label_info": lambda: store.get_label_info(bad, "final"),
        "get_labels_by_image_id": lambda: store.get_labels_by_image_id(bad),
        "get_label_by_image_id": lambda: store.get_label_by_image_id(bad, "final"),
        "label_history": lambda: store.label_history(bad, "final"),
        "update_image_info": lambda: store.update_image_info(bad, {"a": 1}),
        "update_label_info": lambda: store.update_label_info(bad, "final", {"a": 1}),
        "add_tags": lambda: store.add_tags(bad, ["t"]),
        "remove_tags": lambda: store.remove_tags(bad, ["t"]),
        "remove_image": lambda: store.remove_image(bad),
        "restore_image": lambda: store.restore_image(bad),
        "save_label": lambda: store.save_label(bad, label, "final"),
        "remove_label": lambda: store.remove_label(bad, "final"),
        "restore_label": lambda: store.restore_label(bad, "final", 1),
        "promote_label": lambda: store.promote_label(bad, "final", "bob"),
    }


def _tag_calls(store: LocalDatastore, bad: str) -> dict[str, Any]:
    """Every facade method taking a label tag, called with ``bad`` as the tag."""
    label = np.zeros((6, 5, 4), np.uint8)
    return {
        "get_label_uri": lambda: store.get_label_uri("case", bad),
        "get_label": lambda: store.get_label("case", bad),
        "get_label_info": lambda: store.get_label_info("case", bad),
        "get_label_by_image_id": lambda: store.get_label_by_image_id("case", bad),
        "get_labeled_images": lambda: store.get_labeled_images(bad),
        "get_unlabeled_images": lambda: store.get_unlabeled_images(bad),
        "datalist": lambda: store.datalist(label_tag=bad),
        "label_history": lambda: store.label_history("case", bad),
        "update_label_info": lambda: store.update_label_info("case", bad, {"a": 1}),
        "save_label": lambda: store.save_label("case", label, bad),
        "remove_label": lambda: store.remove_label("case", bad),
        "restore_label": lambda: store.restore_label("case", bad, 1),
        "promote_label_from": lambda: store.promote_label("case", bad, "bob"),
        "promote_label_to": lambda: store.promote_label("case", "final", bad),
    }


def _answer(call: Any) -> str:
    """What a call answered: ``"<error class>: <message>"``, or ``"returned"``."""
    try:
        call()
    except Exception as err:
        return f"{type(err).__name__}: {err}"
    return "returned"


@pytest.mark.parametrize("bad", BAD_NAMES)
def test_case23_every_id_is_validated_before_lookup(store: LocalDatastore, bad: str) -> None:
    before = store.json()
    answers = {method: _answer(call) for method, call in _id_calls(store, bad).items()}
    wrong = {m: a for m, a in answers.items() if not a.startswith("InvalidIdError: image id")}
    assert wrong == {}
    assert store.json() == before


@pytest.mark.parametrize("bad", BAD_NAMES)
def test_case23_every_tag_is_validated_before_lookup(store: LocalDatastore, bad: str) -> None:
    before = store.json()
    answers = {method: _answer(call) for method, call in _tag_calls(store, bad).items()}
    wrong = {m: a for m, a in answers.items() if not a.startswith("InvalidIdError: label tag")}
    assert wrong == {}
    assert store.json() == before


def test_case23_save_label_names_the_rule(store: LocalDatastore, tmp_path: Path) -> None:
    with pytest.raises(InvalidIdError, match=r"image id '\.\./evil' must not start with '\.'"):
        store.save_label("../evil", np.zeros((6, 5, 4), np.uint8), "final")


# ----------------------------------------------------------------------------- case 24: values
NON_FINITE = [float("nan"), float("inf"), float("-inf")]


def _deep(depth: int) -> dict[str, Any]:
    root: dict[str, Any] = {}
    node = root
    for _ in range(depth):
        node["d"] = {}
        node = node["d"]
    return root


@pytest.mark.parametrize("value", NON_FINITE)
def test_case24_non_finite_info_is_refused_naming_the_key(
    store: LocalDatastore, value: float
) -> None:
    before = store.json()
    label = np.zeros((6, 5, 4), np.uint8)
    writes = {
        "update_image_info": lambda info: store.update_image_info("case", info),
        "update_label_info": lambda info: store.update_label_info("case", "final", info),
        "save_label": lambda info: store.save_label("case", label, "final", info),
        "add_image": lambda info: store.add_image("new", store.get_image_uri("case"), info),
        "add_images": lambda info: store.add_images([store.get_image_uri("case")], info=info),
    }
    for method, write in writes.items():
        with pytest.raises(InvalidValueError, match=r"scores\[1\]\.dice.*not a finite number"):
            write({"scores": [{"dice": 0.5}, {"dice": value}]})
        assert store.json() == before, method


def _monailabel_manifest(root: Path, info: dict[str, Any]) -> None:
    """Write the manifest as MONAI Label does: Python's ``json.dumps(indent=2)``."""
    path = root / "datastore_v2.json"
    doc = json.loads(path.read_bytes())
    doc["objects"]["case"]["image"]["info"].update(info)
    path.write_text(json.dumps(doc, indent=2))


def test_case24_values_written_by_monailabel_are_read_and_kept(store: LocalDatastore) -> None:
    values = {"nan": float("nan"), "inf": float("inf"), "ninf": float("-inf"), "big": 2**70}
    _monailabel_manifest(store.root, values)
    reopened = LocalDatastore(store.root, lock_timeout=5.0)
    info = reopened.get_image_info("case")
    assert math.isnan(info["nan"]) and info["inf"] == math.inf and info["ninf"] == -math.inf
    assert info["big"] == 2**70 and isinstance(info["big"], int)
    reopened.update_image_info("case", {"site": "A"})  # a medstore write keeps them all
    reopened.compact()  # folded into the manifest MONAI Label reads (a no-op when direct)
    again = json.loads((store.root / "datastore_v2.json").read_bytes())["objects"]["case"]
    kept = again["image"]["info"]
    assert math.isnan(kept["nan"]) and kept["inf"] == math.inf and kept["ninf"] == -math.inf
    assert kept["big"] == 2**70 and kept["site"] == "A"
    assert LocalDatastore(store.root, read_only=True).get_image_info("case")["big"] == 2**70


def test_case24_duplicate_keys_and_bom_are_still_refused(store: LocalDatastore) -> None:
    path = store.root / "datastore_v2.json"
    raw = path.read_bytes()
    path.write_bytes(b"\xef\xbb\xbf" + raw)
    with pytest.raises(ManifestCorruptError, match="byte-order mark"):
        LocalDatastore(store.root, read_only=True)
    path.write_bytes(raw.replace(b'"name":', b'"name": "x", "name":', 1))
    with pytest.raises(ManifestCorruptError, match="duplicate key 'name'"):
        LocalDatastore(store.root, read_only=True)


def test_case24_a_deep_value_is_a_clear_error_on_write(store: LocalDatastore) -> None:
    before = store.json()
    with pytest.raises(InvalidValueError, match=r"nested deeper than \d+ levels"):
        store.update_image_info("case", {"deep": _deep(100_000)})
    assert store.json() == before


def test_case24_a_deep_manifest_is_a_clear_error_on_read(store: LocalDatastore) -> None:
    depth = 100_000
    nested = '{"d": ' * depth + "1" + "}" * depth
    path = store.root / "datastore_v2.json"
    path.write_text(path.read_text().replace('"info": {', '"info": {"deep": ' + nested + ", ", 1))
    with pytest.raises(ManifestCorruptError, match="nested too deeply"):
        LocalDatastore(store.root, read_only=True)


# ----------------------------------------------------------------------------- case 21: versions
def test_case21_gc_keeps_the_newest_versions_past_ten_thousand(store: LocalDatastore) -> None:
    folder = store.layout.history_dir("final", "case")
    folder.mkdir(parents=True)
    old = time.time() - 90 * 86400
    for version in range(1, 10_006):
        for name in (f"v{version:04d}.json", f"v{version:04d}.nii.gz"):
            path = folder / name
            path.write_text(json.dumps({"version": version, "ext": ".nii.gz", "info": {}}))
            os.utime(path, (old, old))
    report = collect_garbage(store, keep_versions=10, older_than_days=30)
    left = sorted(int(p.name[1:].split(".")[0]) for p in folder.glob("v*.json"))
    assert left == list(range(9_996, 10_006))
    assert {p.name for p in folder.iterdir() if p.name.endswith(".nii.gz")} == {
        f"v{v}.nii.gz" for v in range(9_996, 10_006)
    }
    assert report.history_versions == 9_995
    again = collect_garbage(store, keep_versions=10, older_than_days=30)
    assert again.history_versions == 0
    history = store.label_history("case", "final", earlier_images=True)  # records: no version
    assert [r["version"] for r in history][:-1] == left


# ----------------------------------------------------------------------------- case 22: cache key
def test_case22_same_size_in_place_rewrite_with_old_mtime_is_not_served_stale(
    make_store: MakeStore, tmp_path: Path
) -> None:
    store = make_store({"case": simple_case(1)})
    first = np.zeros((6, 5, 4), np.uint8)
    first[1, 1, 1] = 1
    store.save_label("case", make_nifti(tmp_path / "a.nii", first), "final")
    assert int(VolumeDataset(store)[0]["segmentations"]["final"].sum()) == 1
    label = Path(store.get_label_uri("case", "final"))
    before = label.stat()
    second = first.copy()
    second[2:4, 2, 2] = 1
    data = make_nifti(tmp_path / "b.nii", second).read_bytes()
    assert len(data) == before.st_size
    with open(label, "r+b") as handle:  # MONAI Label's in-place rewrite, same size
        handle.write(data)
    os.utime(label, ns=(before.st_atime_ns, before.st_mtime_ns))  # touch -r: same stat
    assert (label.stat().st_ino, label.stat().st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    store.update_label_info("case", "final", {"checksum": f"SHA256:{sha256(data).hexdigest()}"})
    reopened = LocalDatastore(store.root, refresh=False)
    assert int(VolumeDataset(reopened)[0]["segmentations"]["final"].sum()) == 3


# ----------------------------------------------------------------------------- case 25: inotify
def test_case25_inotify_limit_falls_back_to_polling(
    make_store: MakeStore, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def refuse(self: object) -> None:
        raise OSError(errno.ENOSPC, "inotify watch limit reached")

    monkeypatch.setattr(InotifyObserver, "start", refuse)
    options = WatchOptions(poll_interval=0.05, debounce=0.05, stability_window=0.05)
    with caplog.at_level(logging.WARNING, logger="medstore"):
        store = make_store(auto_reload=True, watch_options=options)
    assert store.watcher is not None and store.watcher.mode == "poll"
    assert "inotify watch limit reached" in caplog.text and "polling" in caplog.text
    make_nifti(store.root / "arrived.nii.gz", np.zeros((4, 4, 4), np.int16))
    deadline = time.monotonic() + 60.0  # generous: only bounds a hang, times nothing
    while not store.has_image("arrived") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert store.has_image("arrived")


# ----------------------------------------------------------------------------- case 19: split log
@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs mounted for the test (skipped where mounting is not permitted)."""
    mount = tmp_path / "small"
    mount.mkdir()
    run = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if run.returncode != 0:
        reason = f"cannot mount a tmpfs here: {run.stderr.strip() or run.returncode}"
        if os.environ.get("MEDSTORE_REQUIRE_MOUNTS") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(folder: Path, *, leave: int) -> None:
    """Fill the filesystem of ``folder``, then free ``leave`` bytes."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as err:
        assert err.errno == errno.ENOSPC
    finally:
        os.close(fd)
    os.truncate(filler, max(filler.stat().st_size - leave, 0))


def _splits(log: SplitLog, as_of: str | None = None) -> dict[str, str]:
    return {image: a.split for image, a in log.assignments(as_of).items()}


def test_case19_enospc_mid_save_leaves_the_log_as_before(small_fs: Path) -> None:
    store = LocalDatastore(small_fs / "store", lock_timeout=5.0)
    log = SplitLog(store)
    images = [f"img{i:04d}" for i in range(718)]
    assert log.save(dict.fromkeys(images, "train"), source="local") == 718
    before = log.path.read_bytes()
    _fill(small_fs, leave=16 * 1024)
    with pytest.raises(OSError) as caught:
        log.save(dict.fromkeys(images, "val"), source="local", force=True)
    assert caught.value.errno == errno.ENOSPC
    assert log.path.read_bytes() == before
    assert _splits(SplitLog(store)) == dict.fromkeys(images, "train")
    (small_fs / "filler").unlink()
    assert log.save(dict.fromkeys(images, "val"), source="local", force=True) == 718
    assert _splits(SplitLog(store)) == dict.fromkeys(images, "val")


def test_case19_a_writer_whose_clock_is_behind_cannot_reorder_the_log(
    make_store: MakeStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = make_store()
    images = [f"img{i}" for i in range(6)]
    monkeypatch.setattr(split_log, "iso_utc", lambda *_: "2026-01-01T10:00:00.000000Z")
    SplitLog(store).save(dict.fromkeys(images, "train"), source="local")
    # A second writer, its clock an hour behind, re-assigns them later (acknowledged).
    monkeypatch.setattr(split_log, "iso_utc", lambda *_: "2026-01-01T09:00:00.000000Z")
    assert SplitLog(store).save(dict.fromkeys(images, "val"), source="local", force=True) == 6
    log = SplitLog(store)
    assert _splits(log) == dict.fromkeys(images, "val")
    assert _splits(log, "2026-01-01T10:30:00Z") == dict.fromkeys(images, "val")
    assert _splits(log, "2026-01-01T10:00:00Z") == dict.fromkeys(images, "val")
    # Before the first entry's time: nothing, although later entries carry an earlier time.
    assert _splits(log, "2026-01-01T09:30:00Z") == {}


def test_case24_monailabel_values_survive_history_and_redo_records(store: LocalDatastore) -> None:
    path = store.root / "datastore_v2.json"
    doc = json.loads(path.read_bytes())
    doc["objects"]["case"]["labels"]["final"]["info"].update({"big": 2**70, "nan": math.nan})
    path.write_text(json.dumps(doc, indent=2))
    reopened = LocalDatastore(store.root, lock_timeout=5.0)
    reopened.promote_label("case", "final", "bob")  # the redo record carries the info
    promoted = reopened.get_label_info("case", "bob")
    assert promoted["big"] == 2**70 and math.isnan(promoted["nan"])
    reopened.save_label("case", np.zeros((4, 5, 6), np.uint8), "final")  # old one to history
    kept = reopened.label_history("case", "final")[0]["info"]
    assert kept["big"] == 2**70 and isinstance(kept["big"], int) and math.isnan(kept["nan"])
