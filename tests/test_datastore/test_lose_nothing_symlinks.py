"""Issue 12 case 20: nothing under a store is ever written through a symbolic link.

Every path below the store root is opened, created, replaced and removed without following a link
at any component. Two exceptions hold on purpose: the store root itself may be a link, and images
added with ``link=True`` are read (never written) where they point.

``MEDSTORE_SOAK=1`` runs the swapping-folder race for 30 s instead of 2.5 s.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from medstore.datastore.annotations import CategoryAnnotation, VolumeSegmentation
from medstore.datastore.durable import atomic_write_bytes
from medstore.datastore.errors import DatastoreError, InvalidIdError, UnsafePathError
from medstore.datastore.store.local import LocalDatastore
from medstore.datastore.store.split_log import SplitLog
from medstore.datastore.upkeep import collect_garbage
from support.stores import MakeStore, simple_case

pytestmark = [pytest.mark.contract, pytest.mark.timeout(180)]  # contract: once per write path

_SOAK = os.environ.get("MEDSTORE_SOAK") == "1"
_LABEL = np.zeros((4, 5, 6), dtype=np.uint8)  # canonical (D, H, W) of a (6, 5, 4) file


def _files(folder: Path) -> list[str]:
    """Every entry under ``folder`` (relative names), for 'nothing landed there' checks."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


def _contents(folder: Path) -> dict[str, bytes]:
    """``{relative name: bytes}`` of every file under ``folder``."""
    return {
        name: (folder / name).read_bytes() for name in _files(folder) if (folder / name).is_file()
    }


class _Swapper:
    """A thread that keeps swapping a store folder for a symlink to ``outside`` and back."""

    def __init__(self, folder: Path, outside: Path, parked: Path) -> None:
        self.folder, self.outside, self.parked = folder, outside, parked
        self.swaps = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> _Swapper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._restore()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                os.rename(self.folder, self.parked)
            except OSError:
                time.sleep(0.0005)
                continue
            with contextlib.suppress(OSError):  # the store may have re-made the folder
                os.symlink(self.outside, self.folder)
                self.swaps += 1
            time.sleep(0.002)  # the link stands for 2 ms, the real folder for 8 ms
            self._restore()
            time.sleep(0.008)

    def _restore(self) -> None:
        if self.folder.is_symlink():
            self.folder.unlink()
        if not self.parked.exists():
            return
        try:
            os.rename(self.parked, self.folder)
        except OSError:  # the store made a new folder meanwhile: merge the parked files in
            for entry in self.parked.iterdir():
                os.replace(entry, self.folder / entry.name)
            self.parked.rmdir()


def test_swapping_the_tag_folder_for_a_link_puts_no_label_outside(
    make_store: MakeStore, tmp_path: Path
) -> None:
    store = make_store({f"case_{i}": simple_case(i) for i in range(4)})
    outside = tmp_path / "outside"
    outside.mkdir()
    final = store.root / "labels" / "final"
    parked = store.root / ".medstore" / "parked-final"
    parked.parent.mkdir(exist_ok=True)
    saved = refused = 0
    deadline = time.monotonic() + (30.0 if _SOAK else 2.5)
    cap = deadline + 60.0  # a loaded machine: go on until 10 saves landed, within reason
    with _Swapper(final, outside, parked) as swapper:
        while time.monotonic() < deadline or (saved < 10 and time.monotonic() < cap):
            try:
                store.save_label(f"case_{(saved + refused) % 4}", _LABEL, "final")
                saved += 1
            except (DatastoreError, OSError):
                refused += 1
    assert swapper.swaps > 0
    assert saved > 0
    assert _files(outside) == [], f"{saved} saves, {refused} refused, {swapper.swaps} swaps"


def test_a_split_log_planted_as_a_link_is_refused_and_its_target_untouched(
    make_store: MakeStore, tmp_path: Path
) -> None:
    store = make_store({"case_0": simple_case(0)})
    outside = tmp_path / "outside.jsonl"
    outside.write_bytes(b"untouched")
    store.root.joinpath(".medstore").mkdir(exist_ok=True)
    store.root.joinpath(".medstore", "splits.jsonl").symlink_to(outside)
    with pytest.raises(UnsafePathError, match=r"\.medstore/splits\.jsonl"):
        SplitLog(store).save({"case_0": "train"}, source="local")
    assert outside.read_bytes() == b"untouched"
    assert store.root.joinpath(".medstore", "splits.jsonl").is_symlink()


def _save_twice(store: LocalDatastore) -> None:
    store.save_label("case_0", _LABEL + 1, "final")  # the first version goes to history


def _remove(store: LocalDatastore) -> None:
    store.remove_image("case_0")


def _annotate(store: LocalDatastore) -> None:
    store.annotations.add("case_0", CategoryAnnotation(identifier="finding", value="benign"))


def _segment(store: LocalDatastore) -> None:
    seg = VolumeSegmentation.from_semantic_segmentation(_LABEL, {"background": 0}, created_by="r")
    store.annotations.add("case_0", seg, allow_external=True)  # staged in .medstore/tmp


def _split(store: LocalDatastore) -> None:
    SplitLog(store).save({"case_0": "train"}, source="local")


# (planted link, the write that must refuse to go through it)
_SIDE_LINKS: list[tuple[str, Callable[[LocalDatastore], None]]] = [
    (".medstore/history", _save_twice),
    (".medstore/trash", _remove),
    (".medstore/pending", _save_twice),
    (".medstore/annotations", _annotate),
    (".medstore/tmp", _segment),
    (".medstore", _split),
    (".medstore", _save_twice),
]


@pytest.mark.parametrize(("planted", "write"), _SIDE_LINKS, ids=lambda v: getattr(v, "__name__", v))
def test_a_side_folder_planted_as_a_link_is_refused_and_nothing_lands_outside(
    make_store: MakeStore, tmp_path: Path, planted: str, write: Callable[[LocalDatastore], None]
) -> None:
    store = make_store({"case_0": simple_case(0)})
    store.annotations.add("case_0", CategoryAnnotation(identifier="size", value="small"))
    outside = tmp_path / "outside"
    outside.mkdir()
    link = store.root / planted
    if link.exists():  # what the folder held now lives outside, reached through the link
        shutil.copytree(link, outside, dirs_exist_ok=True)
        shutil.rmtree(link)
    before = _contents(outside)
    link.symlink_to(outside, target_is_directory=True)
    listed = store.list_images()
    with pytest.raises(UnsafePathError, match=planted.replace(".", r"\.")):
        write(store)
    assert _contents(outside) == before
    assert link.is_symlink()
    assert store.list_images() == listed


def test_gc_never_deletes_where_a_planted_history_link_points(
    make_store: MakeStore, tmp_path: Path
) -> None:
    store = make_store({"case_0": simple_case(0)})
    outside = tmp_path / "outside"
    versions = outside / "final" / "case_0"
    versions.mkdir(parents=True)
    old = time.time() - 90 * 86400
    for n in range(1, 13):
        for name in (f"v{n:04d}.json", f"v{n:04d}.nii.gz"):
            versions.joinpath(name).write_bytes(b"{}")
            os.utime(versions / name, (old, old))
    before = _contents(outside)
    store.root.joinpath(".medstore").mkdir(exist_ok=True)
    store.root.joinpath(".medstore", "history").symlink_to(outside, target_is_directory=True)
    with pytest.raises(UnsafePathError, match=r"\.medstore/history"):
        collect_garbage(store, keep_versions=1, older_than_days=1)
    assert _contents(outside) == before


def test_a_manifest_planted_as_a_link_is_refused_and_its_target_untouched(
    make_store: MakeStore, tmp_path: Path
) -> None:
    store = make_store({"case_0": simple_case(0)})
    manifest = store.root / "datastore_v2.json"
    outside = tmp_path / "outside.json"
    shutil.copyfile(manifest, outside)
    original = outside.read_bytes()
    manifest.unlink()
    manifest.symlink_to(outside)
    with pytest.raises(UnsafePathError, match=r"datastore_v2\.json"):
        store.update_image_info("case_0", {"patient_id": "P1"})
    assert outside.read_bytes() == original
    assert manifest.is_symlink()


@pytest.mark.parametrize("inside", [True, False], ids=["to-inside", "to-outside"])
def test_an_images_folder_that_is_a_link_is_refused(
    tmp_path: Path, nifti_file: Callable[..., Path], inside: bool
) -> None:
    root = tmp_path / "store"
    target = root / "elsewhere" if inside else tmp_path / "outside"
    target.mkdir(parents=True)
    root.mkdir(exist_ok=True)
    root.joinpath("images").symlink_to(target, target_is_directory=True)
    with pytest.raises(UnsafePathError, match=r"store/images"):
        LocalDatastore(root, images_dir="images", lock_timeout=5.0)  # it makes its folders
    store = LocalDatastore(root, images_dir="images", lock_timeout=5.0, refresh=False)
    try:
        with pytest.raises((UnsafePathError, InvalidIdError), match=r"images|outside"):
            store.add_image("case_0", nifti_file("a.nii.gz"))
        assert _files(target) == []
    finally:
        store.close()


def test_a_store_root_that_is_a_link_still_works(
    tmp_path: Path, nifti_file: Callable[..., Path]
) -> None:
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real, target_is_directory=True)
    store = LocalDatastore(link, lock_timeout=5.0)
    try:
        store.add_image("case_0", nifti_file("a.nii.gz", shape=(6, 5, 4)))
        store.save_label("case_0", _LABEL, "final")
        store.save_label("case_0", _LABEL + 1, "final")
        store.annotations.add("case_0", CategoryAnnotation(identifier="size", value="small"))
        SplitLog(store).save({"case_0": "train"}, source="local")
        store.remove_image("case_0")
        store.restore_image("case_0")
        assert store.list_images() == ["case_0"]
        assert len(store.label_history("case_0", "final")) >= 1
        assert SplitLog(store).assignments()["case_0"].split == "train"
        assert (real / "labels" / "final" / "case_0.nii.gz").is_file()
        assert (real / ".medstore" / "splits.jsonl").is_file()
        assert (real / ".medstore" / "annotations" / "case_0.json").is_file()
    finally:
        store.close()


def test_linked_images_are_still_read_where_they_point(
    tmp_path: Path, nifti_file: Callable[..., Path]
) -> None:
    source = nifti_file("linked.nii.gz", value=7, shape=(6, 5, 4))
    original = source.read_bytes()
    store = LocalDatastore(tmp_path / "store", lock_timeout=5.0)
    try:
        store.add_image("case_0", source, link=True)
        assert (store.root / "case_0.nii.gz").is_symlink()
        assert store.get_image("case_0").read() == original
        store.save_label("case_0", _LABEL, "final")
        store.remove_image("case_0")
        store.restore_image("case_0")
        assert store.get_image("case_0").read() == original
        assert source.read_bytes() == original
    finally:
        store.close()


def test_a_lock_file_planted_as_a_link_leaves_its_target_untouched(tmp_path: Path) -> None:
    root = tmp_path / "store"
    root.mkdir()
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"precious")
    (root / ".lock").symlink_to(outside)
    with pytest.raises(UnsafePathError, match=r"store/\.lock"):
        LocalDatastore(root, lock_timeout=5.0)
    assert outside.read_bytes() == b"precious"


def test_paths_under_no_store_root_follow_links_as_plain_os_calls_do(tmp_path: Path) -> None:
    """Only store roots are confined: a user's export folder reached through a link still works."""
    target = tmp_path / "exports"
    target.mkdir()
    (tmp_path / "via").symlink_to(target, target_is_directory=True)
    atomic_write_bytes(tmp_path / "via" / "out.json", b"{}")
    assert (target / "out.json").read_bytes() == b"{}"


def test_a_link_below_a_store_root_is_refused_by_the_write_protocol(make_store: MakeStore) -> None:
    store = make_store()
    (store.root / "real").mkdir()
    (store.root / "via").symlink_to(store.root / "real", target_is_directory=True)
    with pytest.raises(UnsafePathError, match=r"store0/via"):
        atomic_write_bytes(store.root / "via" / "out.json", b"{}")
    (store.root / "real" / "file.json").write_bytes(b"old")
    (store.root / "planted.json").symlink_to(store.root / "real" / "file.json")
    with pytest.raises(UnsafePathError, match=r"planted\.json"):
        atomic_write_bytes(store.root / "planted.json", b"new")
    assert _files(store.root / "real") == ["file.json"]
    assert (store.root / "real" / "file.json").read_bytes() == b"old"


def test_a_cache_folder_planted_as_a_link_is_not_written_or_emptied(
    make_store: MakeStore, tmp_path: Path
) -> None:
    from medstore.datasets.loading.cache import VolumeCache

    store = make_store({"case_0": simple_case(0)})
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "planted-old.b2nd").write_bytes(b"precious")
    long_ago = time.time() - 90 * 86400
    os.utime(outside / "planted-old.b2nd", (long_ago, long_ago))
    store.root.joinpath(".medstore").mkdir(exist_ok=True)
    store.layout.cache.symlink_to(outside, target_is_directory=True)
    cache = VolumeCache(store.layout.cache, fallback=tmp_path / "fallback")
    volume = cache.get(store.get_image_uri("case_0"))
    assert volume is not None
    cache.clear()
    cache.prune(older_than_days=1)
    assert _contents(outside) == {"planted-old.b2nd": b"precious"}
    assert any(p.suffix == ".b2nd" for p in (tmp_path / "fallback").iterdir())


def test_an_archive_is_never_unpacked_through_a_planted_imports_link(
    make_store: MakeStore, tmp_path: Path
) -> None:
    from medstore.datastore.interop.archive_import import import_archive

    source = make_store({"case_0": simple_case(0)})
    archive = Path(source.get_dataset_archive(None))
    target = make_store()
    outside = tmp_path / "outside"
    outside.mkdir()
    target.root.joinpath(".medstore").mkdir(exist_ok=True)
    target.side_path("imports").symlink_to(outside, target_is_directory=True)
    with pytest.raises(UnsafePathError, match=r"\.medstore/imports"):
        import_archive(target, archive)
    assert _files(outside) == []
    assert target.list_images() == []


def test_the_schema_s_folder_is_never_made_through_a_planted_link(
    make_store: MakeStore, tmp_path: Path
) -> None:
    from medstore.datastore.annotations.schema import AnnotationSpec, save_schema

    store = make_store({"case_0": simple_case(0)})
    outside = tmp_path / "outside" / "side"  # not there yet: the link dangles
    shutil.rmtree(store.root / ".medstore", ignore_errors=True)
    (store.root / ".medstore").symlink_to(outside, target_is_directory=True)
    with pytest.raises(UnsafePathError, match=r"store0/\.medstore"):
        save_schema(store, [AnnotationSpec(identifier="size", type="category")])
    assert not (tmp_path / "outside").exists()
