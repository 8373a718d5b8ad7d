"""A volume exists once on its way from the cache to a batch: shared memory, released maps."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import medstore.datasets.item.assembly
import numpy as np
import pytest
import torch
from medstore.datasets import VolumeDataset, collate_items
from medstore.datasets.loading.worker_memory import float32_tensor, stack_arrays, stack_tensors
from support.stores import Case, MakeStore

needs_proc_smaps = pytest.mark.skipif(
    not Path("/proc/self/smaps").exists(), reason="needs Linux /proc/<pid>/smaps"
)


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


def _random_cases(n: int, shape: tuple[int, int, int] = (8, 7, 6)) -> dict[str, Case]:
    rng = np.random.default_rng(7)
    return {
        f"case_{i}": Case(rng.integers(-500, 500, size=shape, dtype=np.int16)) for i in range(n)
    }


def _checking_collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Collate, and record whether the batch kept the first item's storage and is shared."""
    pointer = items[0]["image"].untyped_storage().data_ptr()
    batch = collate_items(items)
    image = batch["image"]
    batch["same_storage"] = image.untyped_storage().data_ptr() == pointer
    batch["built_shared"] = image.is_shared()
    return batch


def _hand_over_cases(_items: list[Any]) -> dict[str, bool]:
    """Run in a DataLoader worker: which tensors stack_tensors hands over without a copy."""

    def handed(tensor: torch.Tensor) -> bool:
        batch = stack_tensors([tensor])
        same = batch.untyped_storage().data_ptr() == tensor.untyped_storage().data_ptr()
        assert torch.equal(batch[0], tensor) and batch.is_shared()
        return same

    source = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
    owned = float32_tensor(source, shared=True)
    private = float32_tensor(source)
    transposed = float32_tensor(source, shared=True).transpose_(0, 2)  # same object, in place
    part = float32_tensor(source, shared=True).resize_(1, 3, 4)  # in place: half its storage
    shifted = float32_tensor(source, shared=True)
    shifted.set_(shifted.untyped_storage(), 12, (1, 3, 4))  # in place: the second half
    return {
        "owned": handed(owned),
        "owned, second time": handed(owned),
        "private": handed(private),
        "not owned but shared": handed(torch.zeros(2, 3).share_memory_()),
        "transposed": handed(transposed),
        "part of a storage": handed(part),
        "offset into a storage": handed(shifted),
        "several stacked into shared memory": stack_tensors([private, private]).is_shared(),
        "arrays stacked into shared memory": stack_arrays([source, source]).is_shared(),
    }


def test_float32_tensor_outside_workers_is_a_private_copy() -> None:
    source = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
    tensor = float32_tensor(source)
    assert tensor.dtype == torch.float32
    assert not tensor.is_shared()
    np.testing.assert_array_equal(tensor.numpy(), source)
    tensor[0, 0, 0] = 99
    assert source[0, 0, 0] == 0


def test_shared_float32_tensor_is_exact_and_contiguous() -> None:
    source = np.random.default_rng(1).integers(-9, 9, size=(2, 5, 3), dtype=np.int16)
    tensor = float32_tensor(source.transpose(2, 0, 1), shared=True)
    assert tensor.is_shared() and tensor.is_contiguous()
    np.testing.assert_array_equal(tensor.numpy(), source.transpose(2, 0, 1))


@needs_proc_smaps
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
    item = float32_tensor(np.ones((1, 2, 2), dtype=np.int16), shared=True)
    batch = stack_tensors([item])
    assert batch.shape == (1, 1, 2, 2)
    assert batch.untyped_storage().data_ptr() != item.untyped_storage().data_ptr()
    assert stack_arrays([np.zeros(3, np.uint8), np.ones(3, np.uint8)]).dtype == torch.uint8


def test_in_a_worker_only_a_whole_owned_tensor_is_handed_over_once() -> None:
    loader = torch.utils.data.DataLoader(
        [0], batch_size=1, num_workers=1, collate_fn=_hand_over_cases
    )
    (cases,) = list(loader)
    assert cases == {
        "owned": True,
        "owned, second time": False,
        "private": False,
        "not owned but shared": False,
        "transposed": False,
        "part of a storage": False,
        "offset into a storage": False,
        "several stacked into shared memory": True,
        "arrays stacked into shared memory": True,
    }


def test_worker_batches_of_one_equal_the_items_without_a_copy(make_store: MakeStore) -> None:
    dataset = VolumeDataset(make_store(_random_cases(3)), return_segmentations=False)
    loader = dataset.get_dataloader(batch_size=1, num_workers=1, collate_fn=_checking_collate)
    batches = list(loader)
    assert [b["same_storage"] for b in batches] == [True, True, True]
    assert all(b["built_shared"] and b["image"].is_contiguous() for b in batches)
    for index, batch in enumerate(batches):
        assert torch.equal(batch["image"][0], dataset[index]["image"])


def test_worker_batches_of_several_are_stacked_into_shared_memory(make_store: MakeStore) -> None:
    dataset = VolumeDataset(make_store(_random_cases(4)), return_segmentations=False)
    loader = dataset.get_dataloader(batch_size=2, num_workers=1, collate_fn=_checking_collate)
    batches = list(loader)
    assert [b["image"].shape[0] for b in batches] == [2, 2]
    assert not any(b["same_storage"] for b in batches)
    assert all(b["built_shared"] for b in batches)
    for start, batch in zip((0, 2), batches, strict=True):
        expected = torch.stack([dataset[start]["image"], dataset[start + 1]["image"]])
        assert torch.equal(batch["image"], expected)


class _KeepsImages:
    """A transform that keeps every image it sees and reports whether the older ones changed."""

    def __init__(self) -> None:
        self.kept: list[tuple[torch.Tensor, float]] = []

    def __call__(self, item: dict[str, Any]) -> dict[str, Any]:
        item["kept_intact"] = all(float(t.abs().sum()) == total for t, total in self.kept)
        self.kept.append((item["image"], float(item["image"].abs().sum())))
        return item


def test_a_transform_keeping_the_image_never_shares_it_with_the_batch(
    make_store: MakeStore,
) -> None:
    dataset = VolumeDataset(
        make_store(_random_cases(4)), return_segmentations=False, transform=_KeepsImages()
    )
    intact = []
    for batch in dataset.get_dataloader(batch_size=1, num_workers=1):
        intact.extend(batch["kept_intact"])
        batch["image"].zero_()  # a training step normalising in place
    assert intact == [True, True, True, True]


def test_monai_meta_tensors_batch_the_same_with_and_without_workers(make_store: MakeStore) -> None:
    from monai.data import MetaTensor
    from monai.transforms import EnsureTyped

    dataset = VolumeDataset(
        make_store(_random_cases(2)),
        return_segmentations=False,
        transform=EnsureTyped(keys="image", track_meta=True),
    )
    in_main = list(dataset.get_dataloader(batch_size=1))
    in_worker = list(dataset.get_dataloader(batch_size=1, num_workers=1))
    for main_batch, worker_batch in zip(in_main, in_worker, strict=True):
        assert isinstance(worker_batch["image"], MetaTensor)
        assert worker_batch["image"].is_batch == main_batch["image"].is_batch
        assert torch.equal(worker_batch["image"].as_tensor(), main_batch["image"].as_tensor())


def test_whole_volume_items_release_their_source_and_slices_do_not(
    make_store: MakeStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    dataset = VolumeDataset(make_store(_random_cases(1)), return_segmentations=False)
    calls: list[bool] = []
    convert = medstore.datasets.item.assembly.float32_tensor

    def spy(array: np.ndarray, **kwargs: Any) -> torch.Tensor:
        calls.append(kwargs["release_source"])
        return convert(array, **kwargs)

    monkeypatch.setattr(medstore.datasets.item.assembly, "float32_tensor", spy)
    dataset[0]
    dataset.slice("axial")[0]
    assert calls == [True, False]


@needs_proc_smaps
def test_whole_volume_items_do_not_keep_cache_maps(make_store: MakeStore) -> None:
    store = make_store({"case_0": Case(np.ones((16, 16, 8), dtype=np.int16))})
    dataset = VolumeDataset(store, return_segmentations=False)
    dataset.prefetch()
    entries = sorted(dataset.cache.folder.glob("*.b2nd"))
    assert len(entries) == 1
    item = dataset[0]
    gc.collect()
    assert _mapped_bytes(entries[0]) is None
    sliced = dataset.slice("axial")
    first = sliced[0]
    assert _mapped_bytes(entries[0]) is not None  # slices read one after another keep the map
    assert torch.equal(first["image"], item["image"][:, 0])


def test_getitems_outside_workers_matches_getitem(make_store: MakeStore) -> None:
    dataset = VolumeDataset(make_store(_random_cases(3)), return_segmentations=False)
    batch = dataset.__getitems__([2, 0])
    assert torch.equal(batch[0]["image"], dataset[2]["image"])
    assert torch.equal(batch[1]["image"], dataset[0]["image"])
    assert not any(item["image"].is_shared() for item in batch)


def test_sliced_items_through_a_worker_equal_the_items(make_store: MakeStore) -> None:
    sliced = VolumeDataset(make_store(_random_cases(2)), return_segmentations=False).slice(1)
    batches = list(sliced.get_dataloader(batch_size=4, num_workers=1))
    images = torch.cat([batch["image"] for batch in batches])
    assert images.shape[0] == len(sliced)
    for index in range(len(sliced)):
        assert torch.equal(images[index], sliced[index]["image"])
