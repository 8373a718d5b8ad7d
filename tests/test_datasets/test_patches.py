"""Patch items: identical crops, geometry, padding, foreground oversampling, seeding, sharding."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import medstore.datasets.item.class_locations as locations_module
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from medstore.datasets import VolumeDataset
from medstore.datasets.loading.chunked import ChunkedArray
from medstore.datasets.loading.collate import collate_items
from medstore.datasets.patches import PatchDataset, crop
from medstore.datastore.store.local import LocalDatastore
from support.nifti import make_nifti
from support.stores import Case, MakeStore

INFO = [{"name": "organ", "idx": 1}, {"name": "lesion", "idx": 2}]
SHAPE = (40, 36, 34)


def _case(seed: int, lesion_at: tuple[int, int, int] = (35, 30, 28)) -> Case:
    rng = np.random.default_rng(seed)
    image = rng.integers(-1000, 1000, size=SHAPE, dtype=np.int16)
    label = np.zeros(SHAPE, dtype=np.uint8)
    label[5:20, 6:18, 4:16] = 1
    label[lesion_at] = 2  # one voxel, far from the centre
    return Case(image=image, labels={"final": (label, INFO)})


def _store(make_store: MakeStore, n: int = 3) -> LocalDatastore:
    return make_store({f"c{i}": _case(i) for i in range(n)})


def _origins(ds: PatchDataset) -> list[tuple[int, ...]]:
    return [ds.patch_origin(i)[0] for i in range(len(ds))]


def test_image_and_segmentations_are_cropped_identically(make_store: MakeStore) -> None:
    volumes = VolumeDataset(_store(make_store), return_as_semantic_segmentation=True)
    patches = volumes.patches((16, 12, 20), per_volume=4, foreground=0.5, seed=3)
    assert len(patches) == 12
    for index in range(len(patches)):
        item = patches[index]
        whole = volumes[index // 4]
        d, h, w = (int(v) for v in item["metainfo"]["patch_origin"])
        region = (slice(None), slice(d, d + 16), slice(h, h + 12), slice(w, w + 20))
        assert item["image"].shape == (1, 16, 12, 20) and item["image"].dtype == torch.float32
        assert torch.equal(item["image"], whole["image"][region])
        for tag, masks in item["segmentations"].items():
            assert torch.equal(masks, whole["segmentations"][tag][region])


def test_metainfo_carries_origin_and_the_patch_affine(make_store: MakeStore) -> None:
    item = VolumeDataset(_store(make_store, 1)).patches((8, 8, 8), seed=1)[0]
    meta = item["metainfo"]
    origin = meta["patch_origin"].to(torch.float64)
    volume_affine, affine = meta["volume_affine"], meta["affine"]
    assert torch.allclose(affine[:3, 3], volume_affine[:3, :3] @ origin + volume_affine[:3, 3])
    assert torch.equal(affine[:3, :3], volume_affine[:3, :3])
    assert meta["patch_size"].tolist() == [8, 8, 8] and meta["volume_shape"].tolist() == [
        34,
        36,
        40,
    ]


def test_borders_are_padded(make_store: MakeStore) -> None:
    store = make_store({"small": _case(0)})
    volumes = VolumeDataset(store, return_as_semantic_segmentation=True)
    patches = volumes.patches((48, 40, 40), per_volume=3, pad_value=-1024.0)
    whole = volumes[0]
    for item in patches:
        d, h, w = (int(v) for v in item["metainfo"]["patch_origin"])
        assert item["image"].shape == (1, 48, 40, 40)
        inside = (slice(None), slice(-d, -d + 34), slice(-h, -h + 36), slice(-w, -w + 40))
        assert torch.equal(item["image"][inside], whole["image"])
        assert int((item["image"] == -1024).sum()) == 48 * 40 * 40 - 34 * 36 * 40
        background = item["segmentations"]["final"][0]
        assert int(background.sum()) - int(whole["segmentations"]["final"][0].sum()) == int(
            (item["image"] == -1024).sum()
        )


@settings(max_examples=40, deadline=None)
@given(
    origin=st.tuples(*(st.integers(-6, 10) for _ in range(3))),
    size=st.tuples(*(st.integers(1, 9) for _ in range(3))),
)
def test_crop_matches_a_padded_numpy_slice(
    origin: tuple[int, int, int], size: tuple[int, int, int]
) -> None:
    data = np.arange(5 * 6 * 7, dtype=np.int16).reshape(1, 5, 6, 7)
    padded = np.pad(data, [(0, 0)] + [(10, 20)] * 3, constant_values=-7)
    start = [o + 10 for o in origin]
    expected = padded[(slice(None), *(slice(s, s + n) for s, n in zip(start, size, strict=True)))]
    assert np.array_equal(crop(data, origin, size, pad_value=-7), expected)


def test_foreground_patches_hold_the_requested_class(make_store: MakeStore) -> None:
    volumes = VolumeDataset(_store(make_store), return_as_semantic_segmentation=True)
    always = volumes.patches((8, 8, 8), per_volume=10, foreground=1.0, classes=["lesion"])
    never = volumes.patches((8, 8, 8), per_volume=10, foreground=0.0, classes=["lesion"])
    lesion = volumes.segmentation_labels_set.index("lesion") + 1
    hits = [int(item["segmentations"]["final"][lesion].sum()) for item in always]
    assert all(hits) and all(item["metainfo"]["patch_foreground"] for item in always)
    misses = [int(item["segmentations"]["final"][lesion].sum()) for item in never]
    assert sum(1 for m in misses if m) < len(misses) // 3  # one voxel in 34*36*40
    with pytest.raises(ValueError, match="unknown segmentation classes"):
        volumes.patches((8, 8, 8), classes=["spleen"])


def test_class_locations_are_computed_once_per_label_version(
    make_store: MakeStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[Any] = []
    real = locations_module.locate

    def spy(array: Any) -> Any:
        calls.append(array)
        return real(array)

    monkeypatch.setattr(locations_module, "locate", spy)
    monkeypatch.setattr(locations_module, "_MEMORY", {})
    store = _store(make_store, 2)
    patches = VolumeDataset(store).patches((8, 8, 8), per_volume=5, foreground=1.0)
    assert patches.prefetch(progress=False) == 4 and len(calls) == 2
    for item in patches:
        assert item["metainfo"]["patch_foreground"]
    assert len(calls) == 2  # one per label
    monkeypatch.setattr(locations_module, "_MEMORY", {})  # a new process: read from the file
    list(VolumeDataset(store).patches((8, 8, 8), per_volume=5, foreground=1.0))
    assert len(calls) == 2
    assert len(list(VolumeDataset(store).cache.folder.glob("*-classes.npz"))) == 2
    label = np.zeros(SHAPE, dtype=np.uint8)
    label[0, 0, 0] = 2
    make_nifti(Path(store.get_label_uri("c0", "final")), label)
    rewritten = VolumeDataset(LocalDatastore(store.root)).patches(
        (8, 8, 8), per_volume=3, foreground=1.0, classes="lesion"
    )
    origins = {
        tuple(item["metainfo"]["patch_origin"].tolist()) for item in rewritten.subset([0, 1, 2])
    }
    assert len(origins) == 1  # the new label's one lesion voxel, clamped into the volume
    assert len(calls) == 3


def test_positions_are_seeded_per_epoch_and_equal_in_workers(make_store: MakeStore) -> None:
    volumes = VolumeDataset(_store(make_store), return_segmentations=False)
    patches = volumes.patches((8, 8, 8), per_volume=4, seed=5)
    first = _origins(patches)
    assert _origins(volumes.patches((8, 8, 8), per_volume=4, seed=5)) == first
    assert _origins(volumes.patches((8, 8, 8), per_volume=4, seed=6)) != first
    loader = patches.get_dataloader(batch_size=3, num_workers=2, persistent_workers=True)
    seen = [tuple(o) for b in loader for o in b["metainfo"]["patch_origin"].tolist()]
    assert seen == first
    patches.set_epoch(1)
    second = _origins(patches)
    assert second != first
    seen = [tuple(o) for b in loader for o in b["metainfo"]["patch_origin"].tolist()]
    assert seen == second  # the persistent workers saw set_epoch


def _patch_collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Collate in the worker and record whether the batch is the items' own shared storage."""
    pointer = items[0]["image"].untyped_storage().data_ptr()
    masks_shared = all(m.is_shared() for item in items for m in item["segmentations"].values())
    batch = collate_items(items)
    batch["same_storage"] = batch["image"].untyped_storage().data_ptr() == pointer
    batch["masks_shared"] = masks_shared
    return batch


def test_worker_batches_of_patches_are_built_in_place_and_equal_the_items(
    make_store: MakeStore,
) -> None:
    patches = VolumeDataset(_store(make_store)).patches((16, 12, 20), per_volume=4, seed=3)
    loader = patches.get_dataloader(batch_size=3, num_workers=2, collate_fn=_patch_collate)
    batches = list(loader)
    assert [b["image"].shape[0] for b in batches] == [3, 3, 3, 3]
    assert all(b["same_storage"] and b["masks_shared"] for b in batches)
    for start, batch in zip(range(0, 12, 3), batches, strict=True):
        for k in range(3):
            item = patches[start + k]
            assert torch.equal(batch["image"][k], item["image"])
            assert torch.equal(batch["segmentations"]["final"][k], item["segmentations"]["final"])
            assert torch.equal(batch["seg_labels"]["final"][k], item["seg_labels"]["final"])


def test_distributed_sampler_shards_every_patch_once(make_store: MakeStore) -> None:
    patches = VolumeDataset(_store(make_store, 4), return_segmentations=False).patches(
        (8, 8, 8), per_volume=3, seed=2
    )
    patches.set_epoch(3)
    expected = {(patches.get_image_id(i), patches.patch_origin(i)[0]) for i in range(len(patches))}
    shards = []
    for rank in range(2):
        loader = patches.get_dataloader(
            batch_size=2, num_workers=1, distributed=True, num_replicas=2, rank=rank, seed=9
        )
        shards.append(
            {
                (image_id, tuple(origin))
                for batch in loader
                for image_id, origin in zip(
                    batch["metainfo"]["id"], batch["metainfo"]["patch_origin"].tolist(), strict=True
                )
            }
        )
    assert not shards[0] & shards[1]
    assert shards[0] | shards[1] == expected and len(expected) == 12


def test_a_patch_reads_only_its_region(
    make_store: MakeStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys: list[tuple[slice, ...]] = []
    real = ChunkedArray.__getitem__

    def spy(self: ChunkedArray, key: Any) -> np.ndarray:
        keys.append(key)
        return real(self, key)

    volumes = VolumeDataset(_store(make_store, 1))
    volumes.prefetch(progress=False)
    monkeypatch.setattr(ChunkedArray, "__getitem__", spy)
    item = volumes.patches((8, 8, 8), foreground=0.0)[0]
    d, h, w = (int(v) for v in item["metainfo"]["patch_origin"])
    region = (slice(None), slice(d, d + 8), slice(h, h + 8), slice(w, w + 8))
    assert keys == [region, region]  # the image, then the label: nothing else is read


def test_a_monai_training_step_learns_from_patches(make_store: MakeStore) -> None:
    from medstore.datasets.demo.patch_training import PatchTrainConfig, train_on_patches

    volumes = VolumeDataset(
        _store(make_store, 2),
        return_as_semantic_segmentation=True,
        semantic_seg_merge_strategy="union",
    )
    lines: list[str] = []
    config = PatchTrainConfig(epochs=2, patch=(8, 16, 16), per_volume=2, workers=1, channels=(4, 8))
    history = train_on_patches(volumes, config, report=lines.append)
    assert [h.patches for h in history] == [4, 4] and [h.steps for h in history] == [2, 2]
    assert all(np.isfinite(h.loss) for h in history)
    assert len(lines) == 2 and "patches/s" in lines[0]


@pytest.mark.slow
def test_demo_trains_on_patches(capsys: pytest.CaptureFixture[str]) -> None:
    from medstore.datasets.demo.command import sample_store_path
    from medstore.datastore.cli.main import main

    if not (sample_store_path() / "datastore_v2.json").is_file():
        pytest.skip("sample_store/ is not present")
    code = main(["demo", "--patches", "--epochs", "1", "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "random 16x32x32 patches" in out
    (line,) = [x for x in out.splitlines() if x.startswith("patch epoch")]
    assert "1/1" in line and "patches/s" in line
