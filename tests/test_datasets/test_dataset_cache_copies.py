"""Uncompressed copies of cache entries: made for whole-volume and slice reads, not patches."""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from medstore.datasets import VolumeCache, VolumeDataset
from medstore.datasets.item.label_space import (
    instance_masks,
    instance_masks_of_values,
    to_codes,
    value_lut,
)
from medstore.datasets.loading.cache import CachedVolume
from medstore.datasets.loading.chunked import ChunkedArray
from medstore.datasets.patches import crop
from support.stores import MakeStore, simple_case


def _reader(path: str) -> CachedVolume:
    data = np.load(path).reshape(1, 3, 4, 5)
    return CachedVolume(data, np.eye(4), (1.0, 1.0, 1.0))


def _source(tmp_path: Path, value: int) -> Path:
    src = tmp_path / "vol.npy"
    np.save(src, np.arange(60, dtype=np.int16) + value)
    return src


def test_contiguous_read_writes_a_copy_beside_the_entry_once(tmp_path: Path) -> None:
    src = _source(tmp_path, 0)
    cache = VolumeCache(tmp_path / "cache", reader=_reader)
    chunked = cache.get(str(src))
    assert isinstance(chunked.array, ChunkedArray)
    assert sorted(p.suffix for p in (tmp_path / "cache").glob("*-*")) == [".b2nd"]
    whole = VolumeCache(tmp_path / "cache", reader=_reader).get(str(src), contiguous=True)
    assert isinstance(whole.array, np.memmap) and not whole.array.flags.writeable
    assert whole.array.dtype == np.int16 and np.array_equal(whole.array, np.asarray(chunked.array))
    assert np.array_equal(whole.affine, chunked.affine) and whole.spacing == chunked.spacing
    (entry,) = (tmp_path / "cache").glob("*.b2nd")
    copy = entry.with_suffix(".npy")
    assert copy.is_file()
    made = copy.stat().st_mtime_ns
    again = VolumeCache(tmp_path / "cache", reader=_reader).get(str(src), contiguous=True)
    assert np.array_equal(again.array, whole.array) and copy.stat().st_mtime_ns == made


def test_a_changed_source_drops_the_old_copy(tmp_path: Path) -> None:
    src = _source(tmp_path, 0)
    cache = VolumeCache(tmp_path / "cache", reader=_reader)
    assert int(cache.get(str(src), contiguous=True).array.sum()) == sum(range(60))
    _source(tmp_path, 1)
    os.utime(src, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert int(cache.get(str(src), contiguous=True).array.sum()) == sum(range(60)) + 60
    assert sorted(p.suffix for p in (tmp_path / "cache").glob("*-*")) == [".b2nd", ".npy"]


def test_later_reads_of_a_copy_skip_the_entry_until_the_copy_goes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = _source(tmp_path, 0)
    cache = VolumeCache(tmp_path / "cache", reader=_reader)
    first = cache.get(str(src), contiguous=True, keep_open=False)
    opened: list[Path] = []
    real_open = ChunkedArray.open

    def counting_open(path: str | Path) -> ChunkedArray:
        opened.append(Path(path))
        return real_open(path)

    monkeypatch.setattr(ChunkedArray, "open", staticmethod(counting_open))
    again = cache.get(str(src), contiguous=True, keep_open=False)
    assert opened == [] and np.array_equal(again.array, first.array)
    assert np.array_equal(again.affine, first.affine) and again.spacing == first.spacing
    (copy,) = (tmp_path / "cache").glob("*.npy")
    copy.unlink()
    third = cache.get(str(src), contiguous=True, keep_open=False)
    assert len(opened) == 1 and isinstance(third.array, np.memmap) and copy.is_file()
    _source(tmp_path, 1)  # a new version: never the old copy
    os.utime(src, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert int(cache.get(str(src), contiguous=True).array.sum()) == sum(range(60)) + 60


def test_a_damaged_copy_is_written_again(tmp_path: Path) -> None:
    src = _source(tmp_path, 0)
    VolumeCache(tmp_path / "cache", reader=_reader).get(str(src), contiguous=True)
    (copy,) = (tmp_path / "cache").glob("*.npy")
    copy.write_bytes(copy.read_bytes()[:100])  # cut short
    whole = VolumeCache(tmp_path / "cache", reader=_reader).get(str(src), contiguous=True)
    assert isinstance(whole.array, np.memmap) and int(whole.array.sum()) == sum(range(60))


def test_an_unwritable_copy_falls_back_to_the_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import medstore.datasets.loading.contiguous as contiguous

    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(contiguous, "atomic_write_chunks", refuse)
    src = _source(tmp_path, 0)
    whole = VolumeCache(tmp_path / "cache", reader=_reader).get(str(src), contiguous=True)
    assert isinstance(whole.array, ChunkedArray) and int(np.asarray(whole.array).sum()) == 1770
    assert not list((tmp_path / "cache").glob("*.npy"))


def _copy_sum(args: tuple[str, str]) -> int:
    folder, src = args
    return int(VolumeCache(folder, reader=_reader).get(src, contiguous=True).array.sum())


def test_concurrent_processes_share_one_copy(tmp_path: Path) -> None:
    src = _source(tmp_path, 0)
    VolumeCache(tmp_path / "cache", reader=_reader).get(str(src))
    with multiprocessing.get_context("fork").Pool(4) as pool:
        sums = pool.map(_copy_sum, [(str(tmp_path / "cache"), str(src))] * 8)
    assert sums == [sum(range(60))] * 8
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 1
    assert not [p for p in (tmp_path / "cache").iterdir() if p.name.startswith(".")]


def test_whole_volumes_and_slices_read_copies_and_patches_do_not(make_store: MakeStore) -> None:
    store = make_store({"a": simple_case(1, shape=(40, 36, 34))})
    ds = VolumeDataset(store)
    patches = ds.patches((16, 16, 16), per_volume=4, foreground=0.5)
    first = [patches[i] for i in range(len(patches))]
    assert len(list(ds.cache.folder.glob("*.b2nd"))) == 2  # image and label
    assert not list(ds.cache.folder.glob("*.npy"))
    whole = ds[0]
    assert len(list(ds.cache.folder.glob("*.npy"))) == 2
    sliced = ds.slice("axial")
    for k in (0, 17, 33):
        assert torch.equal(sliced[k]["image"], whole["image"][:, k])
    for i, item in enumerate(first):  # patches still read the compressed entries, unchanged
        assert torch.equal(patches[i]["image"], item["image"])
        origin = item["metainfo"]["patch_origin"].tolist()
        expected = crop(whole["image"].numpy(), origin, (16, 16, 16))
        assert torch.equal(item["image"], torch.from_numpy(expected))
    assert len(list(ds.cache.folder.glob("*.npy"))) == 2


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.integers(-3, 300), min_size=1, max_size=64),
    dtype=st.sampled_from([np.uint8, np.int16, np.uint16, np.int32, np.bool_]),
    classes=st.sampled_from(
        [
            None,
            {1: "a", 2: "b"},
            {2: "b", 5: "a", 300: "c"},
            {1: "a", 2: "a", 7: "q"},
            {v: f"c{v}" for v in range(1, 12)},  # more classes than compared directly
        ]
    ),
)
def test_instance_masks_of_values_equal_those_of_the_code_map(
    values: list[int], dtype: type, classes: dict[int, str] | None
) -> None:
    array = np.asarray(values).astype(dtype)
    codes_of = {name: i + 1 for i, name in enumerate(["1", "2", "5", "a", "b", "c", "q"])}
    codes_of.update({f"c{v}": 7 + v for v in range(1, 12)})
    lut = value_lut(classes, codes_of, array.dtype)
    masks, present = instance_masks_of_values(array, lut)
    expected_masks, expected_present = instance_masks(to_codes(array, lut))
    assert present.tolist() == expected_present.tolist()
    assert masks.dtype == np.uint8 and np.array_equal(masks, expected_masks)
