"""Hostile inputs (issue 6 item 5, issue 2 "Bad input"): manifests, ids, links, read-only, locks."""

from __future__ import annotations

import contextlib
import json
import logging
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from medstore.datastore import (
    InvalidIdError,
    LocalDatastore,
    ManifestCorruptError,
    ReadOnlyError,
    StoreLockedError,
)
from medstore.datastore.annotations import CategoryAnnotation
from support import reliability_harness as h

GOOD = {
    "name": "n",
    "description": "d",
    "images_dir": ".",
    "labels_dir": "labels",
    "objects": {
        "img000": {
            "image": {"ext": ".nii.gz", "info": {"ts": 1, "name": "img000.nii.gz"}},
            "labels": {},
        }
    },
}


def _with(**changes: Any) -> bytes:
    doc = json.loads(json.dumps(GOOD))
    for path, value in changes.items():
        target = doc
        *parents, last = path.split("__")
        for key in parents:
            target = target[key]
        target[last] = value
    return json.dumps(doc, indent=2).encode()


def _obj(**image: Any) -> dict[str, Any]:
    return {"image": {"ext": ".nii.gz", "info": {}, **image}, "labels": {}}


DEEP = 100_000
HOSTILE_MANIFESTS: dict[str, bytes] = {
    "empty": b"",
    "whitespace": b"  \n\t ",
    "truncated": json.dumps(GOOD, indent=2).encode()[:-40],
    "not-json": b"name: n\ndescription: d\n",
    "bom": b"\xef\xbb\xbf" + json.dumps(GOOD).encode(),
    "nul-bytes": b"\x00" * 64,
    "deep-array": b"[" * DEEP + b"]" * DEEP,
    "deep-in-info": json.dumps(GOOD)
    .encode()
    .replace(b'"ts": 1', b'"ts": ' + b"[" * DEEP + b"]" * DEEP),
    "deep-objects": b'{"a":' * DEEP + b"1" + b"}" * DEEP,
    "duplicate-top-key": b'{"name": "a", "name": "b", "description": "", "objects": {}}',
    "duplicate-image-id": (
        b'{"name": "n", "description": "", "objects": {'
        b'"img000": {"image": {"ext": ".nii.gz", "info": {}}, "labels": {}},'
        b'"img000": {"image": {"ext": ".nii", "info": {}}, "labels": {}}}}'
    ),
    "duplicate-info-key": json.dumps(GOOD).encode().replace(b'"ts": 1', b'"ts": 1, "ts": 2'),
    "top-level-list": b"[]",
    "top-level-string": b'"datastore"',
    "name-not-string": _with(name=5),
    "objects-list": _with(objects=[]),
    "image-missing": _with(objects={"img000": {"labels": {}}}),
    "image-not-object": _with(objects={"img000": {"image": "x.nii.gz", "labels": {}}}),
    "info-string": _with(objects={"img000": _obj(info="ts=1")}),
    "ext-number": _with(objects={"img000": _obj(ext=3)}),
    "labels-list": _with(objects={"img000": {**_obj(), "labels": []}}),
    "images-dir-parent": _with(images_dir="../outside"),
    "images-dir-absolute": _with(images_dir="/etc"),
    "labels-dir-parent": _with(labels_dir="../../labels"),
    "labels-dir-absolute": _with(labels_dir="/tmp"),
    "id-parent": _with(objects={"../evil": _obj()}),
    "id-absolute": _with(objects={"/etc/passwd": _obj()}),
    "id-slash": _with(objects={"a/b": _obj()}),
    "tag-parent": _with(objects={"img000": {**_obj(), "labels": {"../x": {"ext": ".nii.gz"}}}}),
    "ext-escape": _with(objects={"img000": _obj(ext="/../../../etc/passwd")}),
    "label-ext-escape": _with(
        objects={"img000": {**_obj(), "labels": {"final": {"ext": "/../../x", "info": {}}}}}
    ),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_MANIFESTS))
@pytest.mark.parametrize("read_only", [False, True])
def test_hostile_manifest_is_refused_untouched(case: str, read_only: bool, tmp_path: Path) -> None:
    root = tmp_path / "store"
    h.write_store_files(root, 1)
    manifest = root / h.MANIFEST
    manifest.write_bytes(HOSTILE_MANIFESTS[case])
    before = h.tree_listing(tmp_path)
    raw = manifest.read_bytes()
    run = subprocess.run(
        [sys.executable, str(h.HARNESS), "open", str(root), *(["--read-only"] * read_only)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    outcome = json.loads(run.stdout.splitlines()[-1])
    assert outcome["error"] == "ManifestCorruptError", outcome
    assert str(manifest) in outcome["message"]
    assert outcome["seconds"] < 2.0
    assert outcome["peak_mb"] < 500
    assert manifest.read_bytes() == raw
    assert h.tree_listing(tmp_path) == before, "a refused manifest must leave the folder as is"


def test_hostile_manifest_in_process_names_the_file(tmp_path: Path) -> None:
    root = tmp_path / "store"
    h.write_indexed_store(root, 1)
    store = LocalDatastore(root)
    manifest = root / h.MANIFEST
    manifest.write_bytes(HOSTILE_MANIFESTS["truncated"])
    stamp = manifest.stat().st_mtime_ns
    with pytest.raises(ManifestCorruptError, match=r"datastore_v2\.json"):
        LocalDatastore(root)
    # An already open store refuses to write over it, too.
    with pytest.raises(ManifestCorruptError, match=r"datastore_v2\.json"):
        store.update_image_info("img000", {"x": 1})
    assert manifest.read_bytes() == HOSTILE_MANIFESTS["truncated"]
    assert manifest.stat().st_mtime_ns == stamp


BAD_NAMES = {
    "parent": "../evil",
    "absolute": "/etc/passwd",
    "slash": "a/b",
    "backslash": "a\\b",
    "dotdot": "..",
    "dot": ".",
    "hidden": ".hidden",
    "nul": "a\x00b",
    "control": "a\nb",
    "device": "CON",
    "device-ext": "com1.nii",
    "long": "x" * 300,
    "long-utf8": "é" * 101,
    "empty": "",
}


@pytest.fixture
def guarded(tmp_path: Path) -> tuple[LocalDatastore, Path, Callable[[], None]]:
    """A store inside ``tmp_path/box``, and a check that nothing changed outside the root."""
    box = tmp_path / "box"
    root = box / "store"
    h.write_indexed_store(root, 2)
    src = box / "src.nii.gz"
    src.write_bytes(h.seeded_nifti_bytes(1, dtype="int16"))
    store = LocalDatastore(root)
    outside = {k: v for k, v in h.tree_listing(tmp_path).items() if "store" not in k.split("/")}
    manifest = (root / h.MANIFEST).read_bytes()

    def check() -> None:
        now = {k: v for k, v in h.tree_listing(tmp_path).items() if "store" not in k.split("/")}
        assert now == outside, "something was created or changed outside the root"
        assert (root / h.MANIFEST).read_bytes() == manifest
        assert h.stray_temp_files(root) == []
        assert not (Path("/etc") / "passwd.nii.gz").exists()

    return store, src, check


# An empty id given to add_image means "derive it from the file name", as in MONAI Label.
@pytest.mark.parametrize("name", sorted(set(BAD_NAMES) - {"empty"}))
def test_bad_image_id_is_refused(name: str, guarded: Any) -> None:
    store, src, check = guarded
    with pytest.raises(InvalidIdError):
        store.add_image(BAD_NAMES[name], src)
    with pytest.raises(InvalidIdError):
        store.add_images([(BAD_NAMES[name], src)])
    check()


@pytest.mark.parametrize("name", sorted(BAD_NAMES))
def test_bad_label_tag_is_refused(name: str, guarded: Any) -> None:
    store, src, check = guarded
    with pytest.raises(InvalidIdError):
        store.save_label("img000", src, BAD_NAMES[name])
    check()


@pytest.mark.parametrize("name", sorted(BAD_NAMES))
def test_bad_image_id_in_save_label_is_refused(name: str, guarded: Any) -> None:
    store, src, check = guarded
    with pytest.raises((InvalidIdError, LookupError)):
        store.save_label(BAD_NAMES[name], src, "final")
    check()


def test_valid_unusual_names_are_accepted(guarded: Any) -> None:
    store, src, _ = guarded
    for image_id in ("case 01", "Größe-ß", "写真", "x" * 200, "con-trast", "a.b"):
        assert store.add_image(image_id, src) == image_id
        store.save_label(image_id, src, "reader é 1")
        assert store.get_label_info(image_id, "reader é 1")["name"] == f"{image_id}.nii.gz"


def test_image_symlink_to_outside_is_not_indexed_nor_written_through(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "secret.nii.gz"
    secret.write_bytes(h.seeded_nifti_bytes(9, dtype="int16"))
    stamp = secret.stat().st_mtime_ns
    root = tmp_path / "store"
    h.write_store_files(root, 1)
    (root / "evil.nii.gz").symlink_to(secret)
    with caplog.at_level(logging.WARNING):
        store = LocalDatastore(root)
    assert store.list_images() == ["img000"]
    assert any("evil" in r.getMessage() for r in caplog.records)
    src = tmp_path / "new.nii.gz"
    src.write_bytes(h.seeded_nifti_bytes(10, dtype="int16"))
    with pytest.raises(InvalidIdError, match="outside"):
        store.add_image("evil", src)
    for attempt in (
        lambda: store.save_label("evil", src, "final"),
        lambda: store.update_image_info("evil", {"x": 1}),
        lambda: store.remove_image("evil"),
        store.refresh,
    ):
        with contextlib.suppress(InvalidIdError, LookupError):
            attempt()
    assert secret.read_bytes() == h.seeded_nifti_bytes(9, dtype="int16")
    assert secret.stat().st_mtime_ns == stamp
    assert sorted(p.name for p in outside.iterdir()) == ["secret.nii.gz"]


def test_label_tag_folder_symlink_to_outside_is_ignored(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    planted = outside / "img000.nii.gz"
    planted.write_bytes(h.seeded_nifti_bytes(3))
    root = tmp_path / "store"
    h.write_store_files(root, 1)
    (root / "labels").mkdir()
    (root / "labels" / "evil").symlink_to(outside, target_is_directory=True)
    store = LocalDatastore(root)
    assert store.get_labels_by_image_id("img000") == {}
    src = tmp_path / "l.nii.gz"
    src.write_bytes(h.seeded_nifti_bytes(4))
    with pytest.raises(InvalidIdError):
        store.save_label("img000", src, "evil")
    assert sorted(p.name for p in outside.iterdir()) == ["img000.nii.gz"]
    assert planted.read_bytes() == h.seeded_nifti_bytes(3)
    assert store.status()["label_tags"] == {}


def _mutators(src: Path) -> dict[str, Callable[[LocalDatastore], object]]:
    def batch(store: LocalDatastore) -> None:
        with store.batch():
            store.set_name("x")

    return {
        "set_name": lambda s: s.set_name("x"),
        "set_description": lambda s: s.set_description("x"),
        "add_image": lambda s: s.add_image("new", src),
        "add_images": lambda s: s.add_images([src]),
        "save_label": lambda s: s.save_label("img000", src, "final"),
        "remove_label": lambda s: s.remove_label("img000", "final"),
        "restore_label": lambda s: s.restore_label("img000", "final", 1),
        "promote_label": lambda s: s.promote_label("img000", "final", "reviewed"),
        "remove_image": lambda s: s.remove_image("img001"),
        "restore_image": lambda s: s.restore_image("img001"),
        "update_image_info": lambda s: s.update_image_info("img000", {"x": 1}),
        "update_label_info": lambda s: s.update_label_info("img000", "final", {"x": 1}),
        "add_tags": lambda s: s.add_tags("img000", ["t"]),
        "remove_tags": lambda s: s.remove_tags("img000", ["t"]),
        "refresh": lambda s: s.refresh(),
        "batch": batch,
        "annotations.add": lambda s: s.annotations.add(
            "img000", CategoryAnnotation(identifier="finding", value="benign")
        ),
        "annotations.delete": lambda s: s.annotations.delete("img000", "x"),
    }


@pytest.mark.parametrize("with_manifest", [True, False])
def test_read_only_store_writes_nothing(with_manifest: bool, tmp_path: Path) -> None:
    root = tmp_path / "store"
    if with_manifest:
        h.write_indexed_store(root, 2, labels={"final": [0]})
        (root / ".lock").unlink()
    else:
        h.write_store_files(root, 2, labels={"final": [0]})
    src = tmp_path / "src.nii.gz"
    src.write_bytes(h.seeded_nifti_bytes(1000))
    before = h.tree_listing(tmp_path)
    store = LocalDatastore(root, read_only=True)
    assert store.list_images() == ["img000", "img001"]
    assert store.get_labeled_images() == ["img000"]
    for name, mutate in _mutators(src).items():
        with pytest.raises(ReadOnlyError):
            mutate(store)
            pytest.fail(f"{name} did not raise")
    store.close()
    assert h.tree_listing(tmp_path) == before
    assert not (root / ".lock").exists()


def _hold_lock(root: Path, seconds: float) -> subprocess.Popen[str]:
    """Hold ``root/.lock`` with a plain filelock in another process, as MONAI Label does."""
    code = (
        "import filelock, sys, time\n"
        f"lock = filelock.FileLock({str(root / '.lock')!r})\n"
        "lock.acquire()\n"
        "print('held', flush=True)\n"
        f"time.sleep({seconds})\n"
        "lock.release()\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_lock_held_elsewhere_past_timeout_raises(tmp_path: Path) -> None:
    root = tmp_path / "store"
    h.write_indexed_store(root, 1)
    store = LocalDatastore(root, lock_timeout=0.5)
    manifest = (root / h.MANIFEST).read_bytes()
    holder = _hold_lock(root, 30)
    try:
        t0 = time.monotonic()
        with pytest.raises(StoreLockedError, match="locked"):
            store.update_image_info("img000", {"x": 1})
        assert 0.4 < time.monotonic() - t0 < 5
        with pytest.raises(StoreLockedError):
            LocalDatastore(root, lock_timeout=0.2)
    finally:
        holder.kill()
        holder.wait()
    assert (root / h.MANIFEST).read_bytes() == manifest
    store.update_image_info("img000", {"x": 2})
    assert store.get_image_info("img000")["x"] == 2


def test_write_waits_for_monai_label_lock_and_proceeds(tmp_path: Path) -> None:
    root = tmp_path / "store"
    h.write_indexed_store(root, 1)
    store = LocalDatastore(root, lock_timeout=30)
    src = tmp_path / "l.nii.gz"
    src.write_bytes(h.seeded_nifti_bytes(1))
    holder = _hold_lock(root, 1.5)
    t0 = time.monotonic()
    store.save_label("img000", src, "final")
    waited = time.monotonic() - t0
    holder.wait(timeout=30)
    assert holder.returncode == 0
    assert waited > 1.0, "the save did not wait for the other process's lock"
    assert LocalDatastore(root, read_only=True).get_labeled_images() == ["img000"]


def test_huge_info_values_round_trip_quickly(tmp_path: Path) -> None:
    """A big (10 MB) info value is stored and read back; not hostile, but the edge of sane."""
    root = tmp_path / "store"
    h.write_indexed_store(root, 1)
    store = LocalDatastore(root)
    blob = "x" * 10_000_000
    store.update_image_info("img000", {"blob": blob})
    assert LocalDatastore(root, read_only=True).get_image_info("img000")["blob"] == blob
