"""A volume exists once on its way from the cache to a batch: shared memory, released maps."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import Case, MakeStore

from datasets import VolumeDataset, collate_items
from datasets.worker_memory import float32_tensor, stack_arrays, stack_tensors


def _mapped_bytes(path: Path) -> int | None:
    """Resident bytes of this process's mapping of ``path``, ``None`` when it is not mapped."""
    found: int | None = None
    inside = False
    with open("/proc/self/smaps", encoding="utf-8", errors="replace") as handle:
        for line in handle:
            head = line.split()
            if head and "-" in head[0] and not head[0].endswith(":"):
                inside = len(head) > 5 and head[5] == str(path)
            elif inside and head[0] == "Rss:":
                found = (found or 0) + int(head[1]) * 1024
    return found


def _checking_collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Collate, and record whether the batch kept the first item's storage and is shared."""
    pointer = items[0]["image"].untyped_storage().data_ptr()
    batch = collate_items(items)
    image = batch["image"]
    batch["same_storage"] = image.untyped_storage().data_ptr() == pointer
    batch["built_shared"] = image.is_shared()
    return batch


def test_float32_tensor_outside_workers_is_a_private_copy() -> None:
    source = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
    tensor = float32_tensor(source)
    assert tensor.dtype == torch.float32
    assert not tensor.is_shared()
    np.testing.assert_array_equal(tensor.numpy(), source)
    tensor[0, 0, 0] = 99
    assert source[0, 0, 0] == 0


def test_release_source_converts_exactly_and_unmaps_the_pages(tmp_path: Path) -> None:
    path = tmp_path / "volume.npy"
    source = np.random.default_rng(0).integers(-1000, 1000, size=(1, 40, 256, 256), dtype=np.int16)
    np.save(path, source)
    kept = np.load(path, mmap_mode="r")
    float32_tensor(kept)
    assert _mapped_bytes(path) == pytest.approx(source.nbytes, abs=64 * 1024)
    released = np.load(path, mmap_mode="r")
    tensor = float32_tensor(released, release_source=True)
    np.testing.assert_array_equal(tensor.numpy(), source)
    del kept
    gc.collect()
    assert (_mapped_bytes(path) or 0) < 64 * 1024


def test_stack_outside_workers_copies() -> None:
    item = float32_tensor(np.ones((1, 2, 2), dtype=np.int16))
    batch = stack_tensors([item])
    assert batch.shape == (1, 1, 2, 2)
    assert batch.untyped_storage().data_ptr() != item.untyped_storage().data_ptr()
    assert stack_arrays([np.zeros(3, np.uint8), np.ones(3, np.uint8)]).dtype == torch.uint8


def test_worker_hands_a_single_item_over_without_a_copy(make_store: MakeStore) -> None:
    store = make_store({f"case_{i}": Case(np.full((8, 7, 6), i, dtype=np.int16)) for i in range(3)})
    dataset = VolumeDataset(store, return_segmentations=False)
    loader = dataset.get_dataloader(batch_size=1, num_workers=1, collate_fn=_checking_collate)
    batches = list(loader)
    assert [b["same_storage"] for b in batches] == [True, True, True]
    assert all(b["built_shared"] for b in batches)
    values = sorted(float(b["image"].flatten()[0]) for b in batches)
    assert values == [0.0, 1.0, 2.0]


def test_worker_stacks_several_items_into_shared_memory(make_store: MakeStore) -> None:
    store = make_store({f"case_{i}": Case(np.full((8, 7, 6), i, dtype=np.int16)) for i in range(4)})
    dataset = VolumeDataset(store, return_segmentations=False)
    loader = dataset.get_dataloader(batch_size=2, num_workers=1, collate_fn=_checking_collate)
    batches = list(loader)
    assert [b["image"].shape[0] for b in batches] == [2, 2]
    assert not any(b["same_storage"] for b in batches)
    assert all(b["built_shared"] for b in batches)


def test_whole_volume_items_do_not_keep_cache_maps(make_store: MakeStore) -> None:
    store = make_store({"case_0": Case(np.ones((16, 16, 8), dtype=np.int16))})
    dataset = VolumeDataset(store, return_segmentations=False)
    dataset.prefetch()
    entries = sorted(dataset.cache.folder.glob("*.npy"))
    assert len(entries) == 1
    item = dataset[0]
    gc.collect()
    assert _mapped_bytes(entries[0]) is None
    sliced = dataset.slice("axial")
    first = sliced[0]
    assert _mapped_bytes(entries[0]) is not None  # slices read one after another keep the map
    assert torch.equal(first["image"], item["image"][:, 0])


def test_getitems_outside_workers_matches_getitem(make_store: MakeStore) -> None:
    store = make_store({f"case_{i}": Case(np.full((5, 4, 3), i, dtype=np.int16)) for i in range(3)})
    dataset = VolumeDataset(store, return_segmentations=False)
    batch = dataset.__getitems__([2, 0])
    assert [float(item["image"].max()) for item in batch] == [2.0, 0.0]
    assert not any(item["image"].is_shared() for item in batch)
    assert torch.equal(dataset.__getitems__([1])[0]["image"], dataset[1]["image"])


def test_monai_meta_tensors_are_stacked_as_before(make_store: MakeStore) -> None:
    from monai.data import MetaTensor
    from monai.transforms import EnsureTyped

    store = make_store({f"case_{i}": Case(np.full((5, 4, 3), i, dtype=np.int16)) for i in range(2)})
    dataset = VolumeDataset(
        store, return_segmentations=False, transform=EnsureTyped(keys="image", track_meta=True)
    )
    for batch in dataset.get_dataloader(batch_size=1, num_workers=1):
        assert isinstance(batch["image"], MetaTensor)
        assert tuple(batch["image"].shape) == (1, 1, 3, 4, 5)  # canonical (z, y, x)
