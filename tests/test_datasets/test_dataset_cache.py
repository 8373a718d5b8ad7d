"""The decode-once cache: one decode per content version, mmap reads, invalidation, concurrency."""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path

import medstore.datasets.loading.cache as cache_module
import numpy as np
import pytest
from medstore.datasets import VolumeCache, VolumeDataset
from medstore.datasets.loading.cache import CachedVolume
from medstore.datasets.loading.chunked import ChunkedArray
from medstore.datastore.errors import ImageNotFoundError
from medstore.datastore.store.local import LocalDatastore
from support.nifti import make_nifti
from support.stores import MakeStore, simple_case


def _counting_reader(log: Path):  # type: ignore[no-untyped-def]
    """A reader that appends one line per decode to ``log`` (works across processes)."""

    def read(path: str) -> CachedVolume:
        with open(log, "a") as handle:
            handle.write(path + "\n")
        time.sleep(0.05)  # widen the race window
        data = np.load(path) if path.endswith(".npy") else np.arange(24, dtype=np.int16)
        return CachedVolume(np.asarray(data).reshape(1, 2, 3, 4), np.eye(4), (1.0, 1.0, 1.0))

    return read


def _decodes(log: Path) -> int:
    return len(log.read_text().splitlines()) if log.exists() else 0


def test_decoded_once_then_memory_mapped(tmp_path: Path) -> None:
    src = tmp_path / "vol.bin"
    src.write_bytes(b"x")
    log = tmp_path / "decodes.log"
    cache = VolumeCache(tmp_path / "cache", reader=_counting_reader(log))
    first = cache.get(str(src))
    second = VolumeCache(tmp_path / "cache", reader=_counting_reader(log)).get(str(src))
    assert _decodes(log) == 1
    assert isinstance(second.array, ChunkedArray) and second.array.dtype == np.int16
    assert np.array_equal(first.array, second.array) and second.spacing == (1.0, 1.0, 1.0)
    assert sorted(p.suffix for p in (tmp_path / "cache").glob("*-*")) == [".b2nd"]


def test_changed_source_invalidates_entry(tmp_path: Path) -> None:
    src = tmp_path / "vol.npy"
    np.save(src, np.zeros(24, dtype=np.int16))
    log = tmp_path / "decodes.log"
    cache = VolumeCache(tmp_path / "cache", reader=_counting_reader(log))
    assert int(np.asarray(cache.get(str(src)).array).sum()) == 0
    np.save(src, np.ones(24, dtype=np.int16))
    os.utime(src, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert int(np.asarray(cache.get(str(src)).array).sum()) == 24
    assert _decodes(log) == 2
    assert len(list((tmp_path / "cache").glob("*.b2nd"))) == 1  # the stale entry is gone


def _worker(args: tuple[str, str, str]) -> float:
    folder, src, log = args
    cache = VolumeCache(folder, reader=_counting_reader(Path(log)))
    return float(np.asarray(cache.get(src).array).sum())


def test_concurrent_processes_decode_once(tmp_path: Path) -> None:
    src = tmp_path / "vol.bin"
    src.write_bytes(b"x")
    log = tmp_path / "decodes.log"
    args = (str(tmp_path / "cache"), str(src), str(log))
    with multiprocessing.get_context("fork").Pool(4) as pool:
        sums = pool.map(_worker, [args] * 8)
    assert sums == [float(sum(range(24)))] * 8
    assert _decodes(log) == 1
    assert not list((tmp_path / "cache").glob(".*tmp"))  # no temp files left behind


def test_missing_source_is_image_not_found(tmp_path: Path) -> None:
    cache = VolumeCache(tmp_path / "cache")
    with pytest.raises(ImageNotFoundError, match=r"image 'x'.*no longer exists"):
        cache.get(str(tmp_path / "nope.nii.gz"), what="image 'x'")


def test_store_cache_location_and_prefetch(make_store: MakeStore) -> None:
    store = make_store({"a": simple_case(1), "b": simple_case(2)})
    ds = VolumeDataset(store)
    assert ds.cache.folder == store.root / ".medstore" / "cache"
    assert ds.prefetch(progress=False) == 4  # 2 images + 2 labels
    assert len(list(ds.cache.folder.glob("*.b2nd"))) == 4


def test_read_only_store_uses_user_cache(
    make_store: MakeStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_store({"a": simple_case(1)}).root
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    ds = VolumeDataset(LocalDatastore(root, read_only=True))
    ds.prefetch(progress=False)
    assert ds[0]["image"].shape == (1, 4, 5, 6)
    assert ds.cache.folder.is_relative_to(tmp_path / "xdg" / "medstore")
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before


def test_decoded_once_across_dataset_and_slices(
    make_store: MakeStore, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    store = make_store({"a": simple_case(1)})
    calls: list[str] = []
    real = cache_module.read_canonical

    def spy(path: str) -> CachedVolume:
        calls.append(path)
        return real(path)

    monkeypatch.setattr(cache_module, "read_canonical", spy)
    ds = VolumeDataset(store)
    sliced = ds.slice("axial")
    for i in range(len(sliced)):
        sliced[i]
    ds[0]
    assert len(calls) == 2  # the image and its one label, each decoded once
    make_nifti(Path(store.get_image_uri("a")), simple_case(7).image)
    ds[0]
    assert len(calls) == 3  # rewritten image decoded again


def test_dataloader_workers_read_the_shared_cache(make_store: MakeStore) -> None:
    ds = VolumeDataset(make_store({"a": simple_case(1), "b": simple_case(2)}))
    ds.prefetch(progress=False)
    entries = sorted(p.stat().st_ino for p in ds.cache.folder.glob("*.b2nd"))  # rewrite: new inode
    batches = list(ds.get_dataloader(batch_size=2, num_workers=2))
    assert batches[0]["image"].shape == (2, 1, 4, 5, 6)
    assert sorted(p.stat().st_ino for p in ds.cache.folder.glob("*.b2nd")) == entries
