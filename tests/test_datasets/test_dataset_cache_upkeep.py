"""The cache folder is prunable by age alone: tagged, disposable files, mtime = last use."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
from medstore.datasets import VolumeCache
from medstore.datasets.loading.cache import CachedVolume
from medstore.datasets.loading.cache_upkeep import CACHEDIR_TAG, CachePrune, prune_folder

_DAY = 86400


def _reader(log: list[str]):  # type: ignore[no-untyped-def]
    def read(path: str) -> CachedVolume:
        log.append(path)
        return CachedVolume(np.zeros((1, 2, 3, 4), np.float32), np.eye(4), (1.0, 1.0, 1.0))

    return read


def _source(tmp_path: Path, name: str) -> str:
    path = tmp_path / name
    path.write_bytes(name.encode())
    return str(path)


def _age(paths: list[Path], days: float) -> None:
    when = time.time() - days * _DAY
    for path in paths:
        os.utime(path, (when, when))


def _entry_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*-*") if p.suffix in (".b2nd", ".npy", ".json"))


def test_cache_folder_is_tagged(tmp_path: Path) -> None:
    cache = VolumeCache(tmp_path / "cache", reader=_reader([]))
    cache.get(_source(tmp_path, "a"))
    tag = (tmp_path / "cache" / CACHEDIR_TAG).read_text()
    assert tag.startswith("Signature: 8a477f597d28d172789f06886806bc55\n")


def test_opening_an_entry_records_its_use(tmp_path: Path) -> None:
    log: list[str] = []
    source = _source(tmp_path, "a")
    VolumeCache(tmp_path / "cache", reader=_reader(log)).get(source)
    files = _entry_files(tmp_path / "cache")
    _age(files, 40)
    VolumeCache(tmp_path / "cache", reader=_reader(log)).get(source)  # another process opens it
    assert len(log) == 1  # a hit, not a decode
    assert all(time.time() - f.stat().st_mtime < _DAY for f in files)


def test_a_recent_use_is_not_written_again(tmp_path: Path) -> None:
    source = _source(tmp_path, "a")
    VolumeCache(tmp_path / "cache", reader=_reader([])).get(source)
    files = _entry_files(tmp_path / "cache")
    _age(files, 0.01)  # used about 15 minutes ago
    before = [f.stat().st_mtime_ns for f in files]
    VolumeCache(tmp_path / "cache", reader=_reader([])).get(source)
    assert [f.stat().st_mtime_ns for f in files] == before


def test_prune_removes_only_unused_entries_whole(tmp_path: Path) -> None:
    log: list[str] = []
    cache = VolumeCache(tmp_path / "cache", reader=_reader(log))
    old, fresh = _source(tmp_path, "old"), _source(tmp_path, "fresh")
    cache.get(old)
    old_files = _entry_files(tmp_path / "cache")
    cache.get(fresh)
    _age([*old_files, *(tmp_path / "cache").glob("*.lock")], 40)
    size = sum(f.stat().st_size for f in old_files)

    dry = cache.prune(older_than_days=30, dry_run=True)
    assert (dry.entries, dry.bytes_freed) == (1, size) and all(f.exists() for f in old_files)
    done = prune_folder(tmp_path / "cache", older_than_days=30)
    assert (done.entries, done.bytes_freed) == (1, size)
    assert not any(f.exists() for f in old_files) and len(_entry_files(tmp_path / "cache")) == 1
    assert len(list((tmp_path / "cache").glob("*.lock"))) == 1  # the fresh source's lock stays
    assert (tmp_path / "cache" / CACHEDIR_TAG).exists()


def test_damaged_entry_is_a_miss(tmp_path: Path) -> None:
    log: list[str] = []
    source = _source(tmp_path, "a")
    VolumeCache(tmp_path / "cache", reader=_reader(log)).get(source)
    (entry,) = _entry_files(tmp_path / "cache")
    entry.write_bytes(entry.read_bytes()[:40])  # cut short, as by a half-finished copy
    again = VolumeCache(tmp_path / "cache", reader=_reader(log)).get(source)
    assert len(log) == 2 and again.array.shape == (1, 2, 3, 4)
    assert len(_entry_files(tmp_path / "cache")) == 1


def test_format_one_entries_are_pruned_whole(tmp_path: Path) -> None:
    folder = tmp_path / "cache"
    folder.mkdir()
    legacy = [folder / "abc-def.npy", folder / "abc-def.json"]
    for path in legacy:
        path.write_bytes(b"x" * 10)
    _age(legacy, 40)
    assert prune_folder(folder, older_than_days=30) == CachePrune(entries=1, bytes_freed=20)
    assert not any(path.exists() for path in legacy)
