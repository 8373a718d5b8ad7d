"""Item dicts of the dataset classes: shapes, dtypes, class coding, merges, filters, errors."""

from __future__ import annotations

import os
from typing import Any, cast

import numpy as np
import pytest
import torch
from medstore.datasets import ImageDataset, VolumeDataset
from medstore.datasets.options import MergeStrategy
from medstore.datastore.errors import ImageNotFoundError, LabelGeometryError
from support.stores import Case, MakeStore, simple_case

LIVER_TUMOR = [{"name": "liver", "idx": 1}, {"name": "tumor", "idx": 2}]


def _three_annotators() -> Case:
    """A 4x1x1 (x, y, z) image; annotators disagree voxel by voxel (value 1 = 'a', 2 = 'b')."""
    image = np.arange(4, dtype=np.int16).reshape(4, 1, 1)
    info = [{"name": "a", "idx": 1}, {"name": "b", "idx": 2}]
    maps = {
        "ann1": np.array([1, 1, 0, 2], dtype=np.uint8).reshape(4, 1, 1),
        "ann2": np.array([1, 0, 0, 2], dtype=np.uint8).reshape(4, 1, 1),
        "ann3": np.array([1, 0, 2, 0], dtype=np.uint8).reshape(4, 1, 1),
    }
    return Case(image=image, labels={tag: (arr, info) for tag, arr in maps.items()})


def test_volume_item_matches_design_table(make_store: MakeStore) -> None:
    store = make_store({"case_1": simple_case(1)})
    item = VolumeDataset(store)[0]
    assert item["image"].dtype == torch.float32 and item["image"].shape == (1, 4, 5, 6)
    segs, labels = item["segmentations"], item["seg_labels"]
    assert segs["final"].dtype == torch.uint8 and segs["final"].shape == (2, 4, 5, 6)
    assert labels["final"].dtype == torch.int64 and labels["final"].tolist() == [1, 2]
    assert int(segs["final"][0].sum()) == 8 and int(segs["final"][1].sum()) == 1
    meta = item["metainfo"]
    assert meta["id"] == "case_1" and meta["path"].endswith("case_1.nii.gz")
    assert meta["affine"].shape == (4, 4) and meta["spacing"].shape == (3,)
    assert meta["label_tags"] == ["final"] and "info" in meta and meta["tags"] == []
    assert set(item) == {
        "image",
        "metainfo",
        "segmentations",
        "seg_labels",
        "image_labels",
        "image_categories",
        "frame_labels",
        "frame_categories",  # issue 15
        "annotations",  # the geometric annotations (issue 15; empty here)
    }
    assert item["annotations"] == []


def test_image_voxels_are_the_files_voxels(make_store: MakeStore) -> None:
    case = simple_case(2)
    store = make_store({"c": case})
    image = VolumeDataset(store)[0]["image"][0].numpy()
    assert sorted(image.ravel().tolist()) == sorted(case.image.astype(np.float32).ravel().tolist())


def test_global_class_list_is_sorted_union_over_tags(make_store: MakeStore) -> None:
    a, b = simple_case(1), simple_case(2)
    b.labels["alice"] = (
        b.labels["final"][0],
        [{"name": "aorta", "idx": 2}, {"name": "liver", "idx": 1}],
    )
    store = make_store({"a": a, "b": b})
    ds = VolumeDataset(store)
    assert ds.segmentation_labels_set == ["aorta", "liver", "tumor"]
    item = ds[1]  # image b: alice's value 2 is 'aorta' → code 1; final's 2 is tumor → 3
    assert item["seg_labels"]["alice"].tolist() == [1, 2]
    assert item["seg_labels"]["final"].tolist() == [2, 3]


def test_labels_without_label_info_are_named_by_value(make_store: MakeStore) -> None:
    case = simple_case(3)
    case.labels["final"] = (case.labels["final"][0] * 3, None)  # values 3 and 6
    ds = VolumeDataset(make_store({"x": case}))
    assert ds.segmentation_labels_set == ["3", "6"]
    assert ds[0]["seg_labels"]["final"].tolist() == [1, 2]


def test_semantic_per_annotator_and_background(make_store: MakeStore) -> None:
    ds = VolumeDataset(make_store({"x": _three_annotators()}), return_as_semantic_segmentation=True)
    segs = ds[0]["segmentations"]
    assert set(segs) == {"ann1", "ann2", "ann3"} and "seg_labels" not in ds[0]
    # canonical W runs right→left, so the file's x axis comes out reversed
    assert segs["ann1"][:, 0, 0, :].flip(-1).tolist() == [[0, 0, 1, 0], [1, 1, 0, 0], [0, 0, 0, 1]]


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        ("union", [[0, 0, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1]]),
        ("intersection", [[0, 1, 1, 1], [1, 0, 0, 0], [0, 0, 0, 0]]),
        ("mode", [[0, 1, 1, 0], [1, 0, 0, 0], [0, 0, 0, 1]]),
    ],
)
def test_semantic_merge_recomputes_background(
    make_store: MakeStore, strategy: MergeStrategy, expected: list[list[int]]
) -> None:
    ds = VolumeDataset(
        make_store({"x": _three_annotators()}),
        return_as_semantic_segmentation=True,
        semantic_seg_merge_strategy=strategy,
    )
    merged = ds[0]["segmentations"]
    assert isinstance(merged, torch.Tensor) and merged.shape == (3, 1, 1, 4)
    assert merged[:, 0, 0, :].flip(-1).tolist() == expected


def test_merge_with_no_annotator_is_all_background(make_store: MakeStore) -> None:
    case = simple_case(1)
    case.labels = {}
    ds = VolumeDataset(
        make_store({"x": case, "y": simple_case(2)}),
        return_as_semantic_segmentation=True,
        semantic_seg_merge_strategy="union",
    )
    ids = [ds.get_image_id(i) for i in range(len(ds))]
    merged = ds[ids.index("x")]["segmentations"]
    assert merged.shape == (3, 4, 5, 6) and bool(merged[0].all()) and not merged[1:].any()


def test_annotator_filters(make_store: MakeStore) -> None:
    store = make_store({"x": _three_annotators()})
    assert set(VolumeDataset(store, include_annotators=["ann2"])[0]["segmentations"]) == {"ann2"}
    assert set(VolumeDataset(store, exclude_annotators=["ann2"])[0]["segmentations"]) == {
        "ann1",
        "ann3",
    }
    with pytest.raises(ValueError, match="not both"):
        VolumeDataset(store, include_annotators=["a"], exclude_annotators=["b"])


def test_segmentation_name_filter_drops_class(make_store: MakeStore) -> None:
    ds = VolumeDataset(make_store({"x": simple_case(1)}), exclude_segmentation_names=["liver"])
    assert ds.segmentation_labels_set == ["tumor"]
    assert ds[0]["seg_labels"]["final"].tolist() == [1]


def test_include_unannotated(make_store: MakeStore) -> None:
    bare = simple_case(5)
    bare.labels = {}
    store = make_store({"bare": bare, "done": simple_case(6)})
    assert len(VolumeDataset(store)) == 2
    ds = VolumeDataset(store, include_unannotated=False)
    assert [ds.get_image_id(i) for i in range(len(ds))] == ["done"]


def test_option_conflicts_are_value_errors(make_store: MakeStore) -> None:
    store = make_store({"x": simple_case(1)})
    with pytest.raises(ValueError, match="return_as_semantic_segmentation"):
        VolumeDataset(store, semantic_seg_merge_strategy="union")
    with pytest.raises(ValueError, match="needs return_segmentations"):
        VolumeDataset(store, return_segmentations=False, return_as_semantic_segmentation=True)
    with pytest.raises(ValueError, match="must be one of"):
        VolumeDataset(store, image_labels_merge_strategy=cast(Any, "majority"))


def test_return_flags_and_transform(make_store: MakeStore) -> None:
    store = make_store({"x": simple_case(1)})
    item = VolumeDataset(store, return_metainfo=False, return_segmentations=False)[0]
    assert "metainfo" not in item and "segmentations" not in item
    doubled = VolumeDataset(store, transform=lambda d: {**d, "image": d["image"] * 2})[0]
    plain = VolumeDataset(store)[0]
    assert torch.equal(doubled["image"], plain["image"] * 2)


def test_monai_dict_transform_accepted(make_store: MakeStore) -> None:
    from monai.transforms import Compose, ScaleIntensityd

    ds = VolumeDataset(
        make_store({"x": simple_case(1)}), transform=Compose([ScaleIntensityd(keys="image")])
    )
    image = ds[0]["image"]
    assert float(image.min()) == 0.0 and float(image.max()) == 1.0


def test_label_shape_mismatch_names_image_and_tag(make_store: MakeStore) -> None:
    case = simple_case(1)
    case.labels["bob"] = (np.zeros((3, 3, 3), dtype=np.uint8), LIVER_TUMOR)
    ds = VolumeDataset(make_store({"case_7": case}))
    with pytest.raises(LabelGeometryError, match=r"'bob' of image 'case_7'.*\(3, 3, 3\)"):
        ds[0]


def test_removed_image_raises_image_not_found(make_store: MakeStore) -> None:
    store = make_store({"gone": simple_case(1)})
    ds = VolumeDataset(store, return_segmentations=False)
    os.unlink(store.get_image_uri("gone"))
    with pytest.raises(ImageNotFoundError, match="'gone'"):
        ds[0]


def test_errors_keep_type_through_dataloader_workers(make_store: MakeStore) -> None:
    store = make_store({"gone": simple_case(1)})
    ds = VolumeDataset(store, return_segmentations=False)
    os.unlink(store.get_image_uri("gone"))
    batches = iter(ds.get_dataloader(batch_size=1, num_workers=1))
    caught: tuple[type, str] | None = None
    try:
        next(batches)
    except Exception as err:  # keep no traceback: it would pin the worker pool
        caught = (type(err), str(err))
    del batches
    assert caught is not None and caught[0] is ImageNotFoundError and "'gone'" in caught[1]


def test_image_dataset_is_2d(make_store: MakeStore) -> None:
    case = simple_case(1, shape=(6, 5, 1))
    ds = ImageDataset(make_store({"xr": case}))
    item = ds[0]
    assert item["image"].shape == (1, 5, 6)
    assert item["segmentations"]["final"].shape[1:] == (5, 6)
    assert isinstance(item["frame_labels"], dict)


def test_image_dataset_refuses_volumes(make_store: MakeStore) -> None:
    ds = ImageDataset(make_store({"ct": simple_case(1)}))
    with pytest.raises(ValueError, match="not 2-D"):
        ds[0]
