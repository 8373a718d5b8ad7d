"""LocalDatastore's MONAI Label API: meanings, return types, copies, history, batches, errors."""

from __future__ import annotations

import json
import os
import threading
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from medstore.datastore import (
    ImageNotFoundError,
    LabelNotFoundError,
    LocalDatastore,
    UnsupportedFormatError,
)
from medstore.datastore.store.manifest import ManifestFile
from support import reliability_harness as h


@pytest.fixture
def make_file(tmp_path: Path) -> Callable[..., Path]:
    """Write a tiny NIfTI (image: int16; label: uint8) outside any store and return its path."""
    folder = tmp_path / "files"
    folder.mkdir()

    def make(name: str, seed: int = 0, *, image: bool = False) -> Path:
        path = folder / name
        path.write_bytes(h.seeded_nifti_bytes(seed, dtype="int16" if image else "uint8"))
        return path

    return make


@pytest.fixture
def store(tmp_path: Path) -> LocalDatastore:
    """A store with img000..img003, a final label on img000 and an alice label on img001."""
    root = tmp_path / "store"
    h.write_indexed_store(root, 4, labels={"final": [0], "alice": [1]})
    return LocalDatastore(root)


def test_new_store_layout_and_defaults(tmp_path: Path) -> None:
    root = tmp_path / "new"
    store = LocalDatastore(root)
    assert (root / "labels" / "final").is_dir() and (root / "labels" / "original").is_dir()
    assert (root / ".lock").exists()
    store.set_name("fresh")  # the manifest exists once something was written
    doc = json.loads((root / "datastore_v2.json").read_bytes())
    assert set(doc) == {"name", "description", "images_dir", "labels_dir", "objects"}
    assert store.status() == {"total": 0, "completed": 0, "label_tags": {}}
    assert store.list_images() == [] and store.datalist() == []


def test_add_image_copies_and_records_info(store: LocalDatastore, make_file: Any) -> None:
    src = make_file("ct scan.nii.gz", 5, image=True)
    info: dict[str, Any] = {"patient_id": "P7", "nested": {"a": [1, 2]}}
    frozen = json.dumps(info)
    assert store.add_image("case", src, info) == "case"
    assert json.dumps(info) == frozen, "the caller's dict was mutated"
    path = store.root / "case.nii.gz"
    assert path.is_file() and not path.is_symlink()
    assert path.read_bytes() == src.read_bytes() and src.exists()
    got = store.get_image_info("case")
    assert got["patient_id"] == "P7" and got["nested"] == {"a": [1, 2]}
    assert got["name"] == "case.nii.gz" and isinstance(got["ts"], int)
    assert got["checksum"] == h.sha256_file(src)
    assert got["path"] == os.path.realpath(path)
    assert store.get_image_uri("case") == os.path.realpath(path)
    assert store.get_image("case").getvalue() == src.read_bytes()
    # The caller's nested objects are not aliased by the store.
    info["nested"]["a"].append(3)
    assert store.get_image_info("case")["nested"] == {"a": [1, 2]}


def test_add_image_derives_the_id_from_the_longest_pattern(tmp_path: Path, make_file: Any) -> None:
    store = LocalDatastore(tmp_path / "s", extensions=("*.gz", "*.nii.gz", "*.nii"))
    assert store.add_image("", make_file("brain.t1.nii.gz", image=True)) == "brain.t1"
    assert store.get_image_info("brain.t1")["name"] == "brain.t1.nii.gz"
    with pytest.raises(UnsupportedFormatError):
        store.add_image("", make_file("notes.txt"))


def test_getters_return_copies(store: LocalDatastore, make_file: Any) -> None:
    store.save_label("img002", make_file("l.nii.gz", 1), "final", {"label_info": [{"name": "a"}]})
    store.get_image_info("img002")["name"] = "hacked"
    store.get_label_info("img002", "final")["label_info"].append({"name": "b"})
    store.json()["objects"].clear()
    item = next(i for i in store.datalist(with_info=True) if i["image"].endswith("img002.nii.gz"))
    item["meta"]["label"]["label_info"].clear()
    assert store.get_image_info("img002")["name"] == "img002.nii.gz"
    assert store.get_label_info("img002", "final")["label_info"] == [{"name": "a"}]
    assert len(store.json()["objects"]) == 4


def test_readding_an_image_keeps_its_labels(store: LocalDatastore, make_file: Any) -> None:
    before = store.get_label_info("img000", "final")
    store.add_image("img000", make_file("v2.nii.gz", 9, image=True), {"v": 2})
    assert store.get_labels_by_image_id("img000") == {"final": "img000"}
    assert store.get_label_info("img000", "final") == before
    assert store.get_image_info("img000")["v"] == 2


def test_save_label_replaces_and_keeps_history(store: LocalDatastore, make_file: Any) -> None:
    first = make_file("a.nii.gz", 1)
    second = make_file("b.nii.gz", 2)
    info = {"label_info": [{"name": "liver", "idx": 1}], "client_id": "reader"}
    frozen = json.dumps(info)
    assert store.save_label("img002", first, "final", info) == "img002"
    assert json.dumps(info) == frozen
    store.save_label("img002", second, "final", {"note": "second"})
    assert store.get_label("img002", "final").getvalue() == second.read_bytes()
    current = store.get_label_info("img002", "final")
    assert current["note"] == "second" and "client_id" not in current  # replaced, as MONAI Label
    assert current["checksum"] == h.sha256_file(second)
    history = store.label_history("img002", "final")
    assert [r["version"] for r in history] == [1, 2]
    assert history[0]["checksum"] == h.sha256_file(first)
    assert history[0]["info"]["client_id"] == "reader"
    assert history[-1]["current"] is True
    store.restore_label("img002", "final", 1)
    assert store.get_label("img002", "final").getvalue() == first.read_bytes()
    assert store.get_label_info("img002", "final")["client_id"] == "reader"
    assert [r["checksum"] for r in store.label_history("img002", "final")] == [
        h.sha256_file(first),
        h.sha256_file(second),
        h.sha256_file(first),
    ]
    with pytest.raises(LabelNotFoundError):
        store.restore_label("img002", "final", 99)


def test_remove_and_restore_label(store: LocalDatastore) -> None:
    content = store.get_label("img000", "final").getvalue()
    store.remove_label("img000", "final")
    assert store.get_labels_by_image_id("img000") == {}
    assert not (store.root / "labels" / "final" / "img000.nii.gz").exists()
    with pytest.raises(LabelNotFoundError):
        store.get_label_info("img000", "final")
    (version,) = [r["version"] for r in store.label_history("img000", "final")]
    store.restore_label("img000", "final", version)
    assert store.get_label("img000", "final").getvalue() == content


def test_remove_and_restore_image(store: LocalDatastore) -> None:
    image = store.get_image("img000").getvalue()
    label = store.get_label("img000", "final").getvalue()
    info = store.get_image_info("img000")
    store.remove_image("img000")
    assert "img000" not in store.list_images()
    assert not (store.root / "img000.nii.gz").exists()
    with pytest.raises(ImageNotFoundError):
        store.get_image_info("img000")
    assert "img000" not in LocalDatastore(store.root).list_images()  # refresh does not resurrect
    store.restore_image("img000")
    assert store.get_image("img000").getvalue() == image
    assert store.get_label("img000", "final").getvalue() == label
    assert store.get_image_info("img000")["name"] == info["name"]
    with pytest.raises(ImageNotFoundError):
        store.restore_image("never-there")


def test_promote_label(store: LocalDatastore) -> None:
    store.update_label_info("img001", "alice", {"label_info": [{"name": "liver", "idx": 1}]})
    store.promote_label("img001", "alice", approved_by="dr. b")
    final, alice = store.get_label("img001", "final"), store.get_label("img001", "alice")
    assert final.getvalue() == alice.getvalue()
    info = store.get_label_info("img001", "final")
    assert info["approved_by"] == "dr. b" and info["promoted_from"] == "alice"
    assert info["label_info"] == [{"name": "liver", "idx": 1}]
    assert "approved_at" in info
    with pytest.raises(LabelNotFoundError):
        store.promote_label("img002", "alice")


def _count_manifest_writes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    writes: list[int] = []
    real = ManifestFile.write

    def counting(self: ManifestFile, doc: dict[str, Any]) -> None:
        writes.append(1)
        real(self, doc)

    monkeypatch.setattr(ManifestFile, "write", counting)
    return writes


def test_batch_is_one_manifest_write(
    store: LocalDatastore, make_file: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes = _count_manifest_writes(monkeypatch)
    with store.batch():
        store.set_name("batched")
        for i in range(5):
            store.save_label(f"img00{i % 4}", make_file(f"b{i}.nii.gz", i), f"t{i}")
            store.update_image_info("img003", {f"k{i}": i})
        store.add_image("extra", make_file("x.nii.gz", 3, image=True))
    assert len(writes) == 1
    fresh = LocalDatastore(store.root, read_only=True)
    assert fresh.name() == "batched"
    assert fresh.status()["label_tags"]["t4"] == 1 and "extra" in fresh.list_images()
    writes.clear()
    store.add_images([make_file(f"many{i}.nii.gz", i, image=True) for i in range(20)])
    assert len(writes) == 1
    assert len(store.list_images()) == 4 + 1 + 20


def test_batch_that_raises_writes_nothing(store: LocalDatastore, make_file: Any) -> None:
    root = store.root
    manifest = (root / "datastore_v2.json").read_bytes()
    listing = {p for p in root.rglob("*") if ".medstore" not in p.parts}
    before = store.json()
    with pytest.raises(RuntimeError, match="boom"), store.batch():
        store.save_label("img002", make_file("x.nii.gz", 1), "final")
        store.add_image("extra", make_file("y.nii.gz", 2, image=True))
        store.update_image_info("img000", {"x": 1})
        store.remove_label("img000", "final")
        raise RuntimeError("boom")
    assert (root / "datastore_v2.json").read_bytes() == manifest
    assert {p for p in root.rglob("*") if ".medstore" not in p.parts} == listing
    assert store.json() == before
    assert h.stray_temp_files(root) == []


def test_datalist_paths(store: LocalDatastore) -> None:
    (rel,) = store.datalist(full_path=False)
    assert rel["image"] == "img000.nii.gz" and rel["label"] == "labels/final/img000.nii.gz"
    (full,) = store.datalist()
    assert full["image"] == os.path.realpath(store.root / "img000.nii.gz")
    assert full["label"] == os.path.realpath(store.root / "labels/final/img000.nii.gz")
    assert set(full) == {"image", "label"}  # MONAI Label's keys only: DataLoader collates all
    (alice,) = store.datalist(full_path=False, label_tag="alice")
    assert alice["label"] == "labels/alice/img001.nii.gz"


def test_datalist_with_images_dir(tmp_path: Path, make_file: Any) -> None:
    store = LocalDatastore(tmp_path / "s", images_dir="imgs", labels_dir="segs")
    store.add_image("a", make_file("a.nii.gz", image=True))
    store.save_label("a", make_file("la.nii.gz"), "final")
    (item,) = store.datalist(full_path=False)
    assert item["image"] == "imgs/a.nii.gz" and item["label"] == "segs/final/a.nii.gz"
    assert (tmp_path / "s" / item["image"]).is_file() and (tmp_path / "s" / item["label"]).is_file()


def test_labeled_images_by_tag_and_class_names(store: LocalDatastore, make_file: Any) -> None:
    classes = [{"name": "liver", "idx": 1}, {"name": "tumor", "idx": 2}]
    store.save_label("img002", make_file("l.nii.gz"), "final", {"label_info": classes})
    assert store.get_labeled_images() == ["img000", "img002"]
    assert store.get_labeled_images("alice") == ["img001"]
    assert store.get_labeled_images("final", ["liver"]) == ["img002"]
    assert store.get_labeled_images("final", ["liver", "tumor"]) == ["img002"]
    assert store.get_labeled_images("final", ["liver", "spleen"]) == []
    assert store.get_unlabeled_images() == ["img001", "img003"]
    assert store.get_unlabeled_images("final", ["tumor"]) == ["img000", "img001", "img003"]
    assert store.get_unlabeled_images("nobody") == store.list_images()


def test_class_name_queries_read_label_info_with_the_one_parser(
    store: LocalDatastore, make_file: Any
) -> None:
    """Both label_info forms count; entries without a usable index name no class."""
    store.update_label_info("img000", "final", {"label_info": {"liver": 1}})
    bad = [{"name": "spleen"}, {"name": "kidney", "idx": "two"}, "tumor"]
    store.save_label("img002", make_file("l.nii.gz"), "final", {"label_info": bad})
    assert store.get_labeled_images("final", ["liver"]) == ["img000"]
    for name in ("spleen", "kidney", "tumor"):
        assert store.get_labeled_images("final", [name]) == []


def test_unknown_ids_raise(store: LocalDatastore, make_file: Any) -> None:
    src = make_file("l.nii.gz")
    for call in (
        lambda: store.get_image_uri("nope"),
        lambda: store.get_image_info("nope"),
        lambda: store.get_image("nope"),
        lambda: store.get_labels_by_image_id("nope"),
        lambda: store.update_image_info("nope", {}),
        lambda: store.remove_image("nope"),
        lambda: store.save_label("nope", src, "final"),
        lambda: store.add_tags("nope", ["t"]),
    ):
        with pytest.raises(ImageNotFoundError, match="nope"):
            call()
    for call in (
        lambda: store.get_label_uri("img002", "final"),
        lambda: store.get_label_info("img002", "final"),
        lambda: store.get_label("img002", "final"),
        lambda: store.update_label_info("img002", "final", {}),
        lambda: store.remove_label("img002", "final"),
        lambda: store.get_label_info("nope", "final"),
    ):
        with pytest.raises(LabelNotFoundError):
            call()
    assert store.get_label_by_image_id("img002", "final") == ""
    assert isinstance(ImageNotFoundError("x"), LookupError)


def test_status_name_description_tags(store: LocalDatastore) -> None:
    assert store.status() == {"total": 4, "completed": 1, "label_tags": {"final": 1, "alice": 1}}
    store.set_name("study")
    store.set_description("phantoms")
    assert store.add_tags("img000", ["split:train", "qc"]) == ["split:train", "qc"]
    assert store.add_tags("img000", ["qc", "new"]) == ["split:train", "qc", "new"]
    assert store.remove_tags("img000", ["qc"]) == ["split:train", "new"]
    fresh = LocalDatastore(store.root, read_only=True)
    assert (fresh.name(), fresh.description()) == ("study", "phantoms")
    assert fresh.get_image_info("img000")["tags"] == ["split:train", "new"]


def test_update_info_merges_without_mutating_the_caller(store: LocalDatastore) -> None:
    store.update_image_info("img000", {"a": 1, "b": {"c": 1}})
    patch = {"b": {"d": 2}}
    store.update_image_info("img000", patch)
    patch["b"]["d"] = 99
    info = store.get_image_info("img000")
    assert info["a"] == 1 and info["b"] == {"d": 2}  # top-level merge, as MONAI Label
    store.update_label_info("img000", "final", {"reviewed": True})
    assert store.get_label_info("img000", "final")["reviewed"] is True


def _watch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "medstore-watch" and t.is_alive()]


def test_context_manager_exit_stops_and_joins_the_watcher(tmp_path: Path) -> None:
    before = len(_watch_threads())
    with LocalDatastore(tmp_path / "s", auto_reload=True, watch="poll") as store:
        watcher = store.watcher
        assert watcher is not None and watcher.running
        assert len(_watch_threads()) == before + 1
        store.set_name("x")
    assert store.watcher is None
    assert not watcher.running
    assert len(_watch_threads()) == before
    assert store.name() == "x"  # still readable once closed


def test_close_stops_the_watcher_and_is_idempotent(tmp_path: Path) -> None:
    store = LocalDatastore(tmp_path / "s", auto_reload=True, watch="poll")
    watcher = store.watcher
    assert watcher is not None and watcher.running
    store.close()
    assert store.watcher is None and not watcher.running
    store.close()
    assert LocalDatastore(tmp_path / "s").watcher is None  # no auto_reload: no watcher


def test_dataset_archive(store: LocalDatastore) -> None:
    for limit in (None, 0):  # MONAI Label 0.8.5: 0 means every case, like None
        path = Path(store.get_dataset_archive(limit_cases=limit))
        try:
            with zipfile.ZipFile(path) as zf:
                names = set(zf.namelist())
                assert names == {"image/img000.nii.gz", "label/img000.nii.gz", "metadata.json"}
                label = store.get_label("img000", "final").getvalue()
                assert zf.read("label/img000.nii.gz") == label
                assert json.loads(zf.read("metadata.json"))["objects"] == store.json()["objects"]
        finally:
            path.unlink()


def test_refresh_indexes_and_drops_and_writes_only_on_change(store: LocalDatastore) -> None:
    manifest = store.root / "datastore_v2.json"
    stamp = manifest.stat().st_mtime_ns
    store.refresh()
    assert manifest.stat().st_mtime_ns == stamp, "a refresh with nothing new wrote the manifest"
    (store.root / "img003.nii.gz").unlink()
    (store.root / "new.nii.gz").write_bytes(h.seeded_nifti_bytes(1, dtype="int16"))
    store.refresh()
    assert sorted(store.list_images()) == ["img000", "img001", "img002", "new"]


def test_add_images_shows_a_progress_bar_when_asked(
    store: LocalDatastore, make_file: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    files = [make_file(f"bar{i}.nii.gz", i, image=True) for i in range(5)]
    store.add_images(files[:2])
    assert "add_images" not in capsys.readouterr().err  # off by default
    store.add_images(files[2:], progress=True)
    err = capsys.readouterr().err
    assert "add_images" in err and "3/3" in err
    assert {f"bar{i}" for i in range(5)} <= set(store.list_images())
