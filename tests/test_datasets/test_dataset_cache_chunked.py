"""The chunked, compressed cache: own dtype, partial reads, real locks, read-only stores."""

from __future__ import annotations

import contextlib
import errno
import logging
import multiprocessing
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import medstore.datasets.loading.entry_lock as entry_lock_module
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from medstore.datasets import VolumeCache, VolumeDataset
from medstore.datasets.loading.cache import CachedVolume, user_cache_folder
from medstore.datasets.loading.chunked import ChunkedArray, chunk_shape, encode
from medstore.datasets.loading.entry_lock import entry_lock
from support.filesystems import REQUIRE_MOUNTS_ENV
from support.stores import Case, MakeStore, simple_case


def _ct(shape: tuple[int, int, int], seed: int = 0) -> np.ndarray:
    """A noisy int16 CT-like volume: air outside a soft-tissue ellipsoid, sigma = 20 HU."""
    rng = np.random.default_rng(seed)
    grids = np.meshgrid(*(np.linspace(-1, 1, s) for s in shape), indexing="ij")
    inside = sum(g**2 for g in grids) < 0.6
    image = np.where(inside, 40.0, -1000.0) + rng.normal(0, 20, shape)
    return image.astype(np.int16)


def test_entry_keeps_int16_and_is_smaller_than_raw(make_store: MakeStore) -> None:
    image = _ct((40, 48, 36))
    ds = VolumeDataset(make_store({"a": Case(image)}), return_segmentations=False)
    item = ds[0]
    (entry,) = ds.cache.folder.glob("*.b2nd")
    array = ChunkedArray.open(entry)
    assert array.dtype == np.int16 and array.chunks == (1, 32, 32, 32)
    assert entry.stat().st_size < image.nbytes * 0.7  # compressed, in its own dtype
    assert item["image"].dtype == torch.float32
    assert torch.equal(item["image"], torch.from_numpy(np.asarray(array, np.float32)))


@settings(max_examples=30, deadline=None)
@given(
    start=st.tuples(*(st.integers(0, 69) for _ in range(3))),
    size=st.tuples(*(st.integers(1, 40) for _ in range(3))),
)
def test_region_reads_match_and_touch_only_overlapping_chunks(
    start: tuple[int, int, int], size: tuple[int, int, int]
) -> None:
    data = _ct((70, 70, 70))[None]
    array = _opened(data)
    region = tuple(slice(s, min(70, s + n)) for s, n in zip(start, size, strict=True))
    assert np.array_equal(array[(slice(None), *region)], data[(slice(None), *region)])
    touched = array.chunk_bytes_touched((slice(0, 1), *region))
    chunks_per_axis = [len(range(r.start // 32, (r.stop - 1) // 32 + 1)) for r in region]
    assert 0 < touched <= array.compressed_bytes
    if np.prod(chunks_per_axis) < 27:  # 3 x 3 x 3 chunks make up the whole array
        assert touched < array.compressed_bytes


def _opened(data: np.ndarray) -> ChunkedArray:
    folder = Path(os.environ.get("TMPDIR", "/tmp"))
    path = folder / f"medstore-chunked-{os.getpid()}.b2nd"
    path.write_bytes(encode(data, {}))
    try:
        return ChunkedArray.open(path)
    finally:
        path.unlink()  # the open map keeps the data readable


def test_planes_and_new_axes_index_like_numpy() -> None:
    data = np.arange(2 * 40 * 35 * 3, dtype=np.int32).reshape(2, 40, 35, 3)
    array = _opened(data)
    keys: list[tuple[Any, ...]] = [(0, 5), (slice(None), 33), (slice(None), slice(None), 34)]
    for key in [*keys, (1, Ellipsis, 2)]:
        assert np.array_equal(array[key], data[key])
    assert np.array_equal(array[:, None], data[:, None])
    assert np.array_equal(array[:, -1], data[:, -1])
    with pytest.raises(IndexError, match="out of bounds"):
        array[:, 40]
    with pytest.raises(TypeError, match="basic indices only"):
        array[[0, 1]]
    assert chunk_shape(data.shape) == (1, 32, 32, 3)


def test_slices_and_whole_volumes_equal_the_source(make_store: MakeStore) -> None:
    case = simple_case(3, shape=(40, 36, 34))
    ds = VolumeDataset(make_store({"a": case}))
    volume = ds[0]
    sliced = ds.slice("coronal")
    for k in (0, 17, 35):
        item = sliced[k]
        assert torch.equal(item["image"], volume["image"][:, :, k])
        for tag, masks in item["segmentations"].items():
            assert masks.shape[1:] == item["image"].shape[1:], tag


def _locked_then_killed(path: str) -> None:
    with entry_lock(Path(path)):
        os._exit(0)  # dies holding the lock, as a killed DataLoader worker would


def test_a_dead_holder_never_blocks_the_next_fill(tmp_path: Path) -> None:
    (tmp_path / "cache").mkdir()
    source = tmp_path / "a.bin"
    source.write_bytes(b"x")
    cache = VolumeCache(tmp_path / "cache", reader=_reader)
    _, name = cache._entry(str(source), "", None)
    lock = tmp_path / "cache" / f"{name.split('-')[0]}.lock"
    process = multiprocessing.get_context("fork").Process(target=_locked_then_killed, args=(lock,))
    process.start()
    process.join(30)
    assert lock.exists()  # the lock file stays behind; the kernel lock went with the process
    run = subprocess.run(
        [sys.executable, "-c", _FILL_AGAIN, str(tmp_path / "cache"), str(source)],
        timeout=60,
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert len(list((tmp_path / "cache").glob("*.b2nd"))) == 1


_FILL_AGAIN = """
import sys, numpy as np
from medstore.datasets import VolumeCache
from medstore.datasets.loading.cache import CachedVolume
reader = lambda p: CachedVolume(np.zeros((1, 2, 2, 2), np.int16), np.eye(4), (1.0, 1.0, 1.0))
VolumeCache(sys.argv[1], reader=reader).get(sys.argv[2])
"""


def _reader(path: str) -> CachedVolume:
    return CachedVolume(np.ones((1, 2, 3, 4), np.int16), np.eye(4), (1.0, 1.0, 1.0))


def test_folder_without_locking_moves_to_the_fallback_then_skips_clearly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def no_flock(fd: int) -> None:
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(entry_lock_module, "_lock_fd", no_flock)
    source = tmp_path / "a.bin"
    source.write_bytes(b"x")
    cache = VolumeCache(tmp_path / "cache", reader=_reader, fallback=tmp_path / "user")
    with caplog.at_level(logging.WARNING):
        volume = cache.get(str(source))
    assert isinstance(volume.array, np.ndarray) and volume.array.shape == (1, 2, 3, 4)
    assert not list(tmp_path.rglob("*.b2nd"))  # nothing written without a lock
    (message,) = [r.getMessage() for r in caplog.records]
    assert "no file locking" in message and "decoding without caching" in message
    assert str(tmp_path / "cache") in message and str(tmp_path / "user") in message


def test_folder_without_locking_fills_the_fallback_which_later_reads_find(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real_lock = entry_lock_module.entry_lock

    def lock_except_in_cache(path: Path) -> contextlib.AbstractContextManager[None]:
        if path.parent == tmp_path / "cache":
            raise entry_lock_module.LockUnavailableError(errno.ENOLCK, "no file locking here")
        return real_lock(path)

    monkeypatch.setattr(entry_lock_module, "entry_lock", lock_except_in_cache)
    source = tmp_path / "a.bin"
    source.write_bytes(b"x")
    calls: list[str] = []

    def reader(path: str) -> CachedVolume:
        calls.append(path)
        return _reader(path)

    with caplog.at_level(logging.WARNING):
        first = VolumeCache(tmp_path / "cache", reader=reader, fallback=tmp_path / "user")
        assert isinstance(first.get(str(source)).array, ChunkedArray)
        again = VolumeCache(tmp_path / "cache", reader=reader, fallback=tmp_path / "user")
        assert isinstance(again.get(str(source), contiguous=True).array, np.ndarray)
    assert len(calls) == 1  # decoded once: the second cache found the fallback's entry
    assert not list((tmp_path / "cache").glob("*-*"))  # nothing written unlocked
    assert sorted(p.suffix for p in (tmp_path / "user").glob("*-*")) == [".b2nd", ".npy"]
    assert not caplog.records  # a usable fallback is no reason to warn


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=60)


@contextlib.contextmanager
def _read_only_view(folder: Path, mountpoint: Path) -> Iterator[Path]:
    """``folder`` bind-mounted read-only at ``mountpoint`` (root only; skipped elsewhere)."""
    mountpoint.mkdir()
    reason = None
    if os.geteuid() != 0:
        reason = "a read-only bind mount needs root"
    elif (done := _run("mount", "--bind", str(folder), str(mountpoint))).returncode != 0:
        reason = f"bind mount refused: {done.stderr.strip()}"
    elif (done := _run("mount", "-o", "remount,bind,ro", str(mountpoint))).returncode != 0:
        _run("umount", str(mountpoint))
        reason = f"read-only remount refused: {done.stderr.strip()}"
    if reason is not None:
        if os.environ.get(REQUIRE_MOUNTS_ENV) == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        yield mountpoint
    finally:
        if _run("umount", str(mountpoint)).returncode != 0:
            _run("umount", "-l", str(mountpoint))


def test_store_on_a_read_only_mount_caches_in_the_user_folder(
    make_store: MakeStore,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    store = make_store({"a": simple_case(1), "b": simple_case(2)})
    with _read_only_view(store.root, tmp_path / "ro") as root:
        with pytest.raises(OSError, match="Read-only"):
            (root / "probe").write_bytes(b"")
        with caplog.at_level(logging.WARNING):
            ds = VolumeDataset(str(root))
            items = [ds[0], ds[1]]
        assert not [r for r in caplog.records if "without caching" in r.getMessage()]
        user = user_cache_folder(root)
        assert user.is_relative_to(tmp_path / "xdg" / "medstore")
        assert len(list(user.glob("*.b2nd"))) == 4  # 2 images + 2 labels
        again = VolumeDataset(str(root))[1]
        assert torch.equal(again["image"], items[1]["image"])


class _ThreadsPerRead(torch.utils.data.Dataset[int]):
    """Reads an entry and answers how many threads its decompression used there."""

    def __init__(self, array: ChunkedArray) -> None:
        self.array = array

    def __len__(self) -> int:
        return 2

    def __getitem__(self, index: int) -> int:
        self.array[:, index]  # the read itself is what is tested
        return int(self.array._nd.schunk.dparams.nthreads)


@pytest.mark.parametrize("parent_read_first", [False, True], ids=["unread", "read in the parent"])
def test_a_loader_worker_decompresses_on_one_thread(
    tmp_path: Path, parent_read_first: bool
) -> None:
    """Workers are a process per core already: blosc2's pool inside each only competes. An entry
    opened (and read, its pool started) before the workers fork is opened again in the worker
    that reads it: changing or freeing the inherited one there would wait forever on the
    parent's pool threads. The main process keeps blosc2's default."""
    import blosc2

    path = tmp_path / "entry.b2nd"
    path.write_bytes(encode(_ct((8, 40, 40))[None], {}))
    array = ChunkedArray.open(path)
    dataset = _ThreadsPerRead(array)
    if parent_read_first:
        np.asarray(array)  # whole chunk layers: decompressed by blosc2's pool
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=None, num_workers=1, multiprocessing_context="fork", timeout=60
    )
    assert [int(n) for n in loader] == [1, 1]
    assert dataset[0] == blosc2.nthreads
