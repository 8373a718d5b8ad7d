"""Issue 15: every annotation kind reaches the items, in the item's own coordinates."""

from __future__ import annotations

import albumentations as A  # noqa: N812 (the users' idiom)
import numpy as np
import torch
from medstore.datasets import ImageDataset, SlicedVolumeDataset, VolumeDataset
from medstore.datastore.annotations import (
    BoxAnnotation,
    CategoryAnnotation,
    ImageSegmentation,
    LineAnnotation,
    PointAnnotation,
)
from support.stores import MakeStore, simple_case


def _xr(make_store: MakeStore):  # type: ignore[no-untyped-def]
    case = simple_case(3, shape=(6, 5, 1))  # canonical (1, 5, 6): a 2-D image (H 5, W 6)
    case.labels = {}
    return make_store({"xr_3": case})


def test_2d_segmentation_entity_reaches_image_items(make_store: MakeStore) -> None:
    store = _xr(make_store)
    mask = np.zeros((5, 6), np.uint8)
    mask[1:3, 2:5] = 1
    store.annotations.add(
        "xr_3", ImageSegmentation.from_mask(mask, identifier="nodule", created_by="r1")
    )
    ds = ImageDataset(store)
    item = ds[0]
    assert ds.segmentation_labels_set == ["nodule"]
    assert torch.equal(item["segmentations"]["r1"], torch.from_numpy(mask)[None])
    assert item["seg_labels"]["r1"].tolist() == [1]
    semantic = ImageDataset(store, return_as_semantic_segmentation=True)[0]["segmentations"]
    assert semantic["r1"].shape == (2, 5, 6) and int(semantic["r1"][1].sum()) == 6


def test_frame_segmentation_entity_merges_with_the_label_file(make_store: MakeStore) -> None:
    store = make_store({"ct": simple_case(1)})  # canonical (4, 5, 6), final: liver, tumor
    mask = np.zeros((5, 6), np.uint8)
    mask[0, 0] = 1
    seg = ImageSegmentation.from_mask(
        mask, identifier="nodule", scope="frame", frame_index=2, created_by="final"
    )
    store.annotations.add("ct", seg)
    volumes = VolumeDataset(store)
    assert volumes.segmentation_labels_set == ["liver", "nodule", "tumor"]
    item = volumes[0]
    assert item["seg_labels"]["final"].tolist() == [1, 3, 2]
    assert int(item["segmentations"]["final"][2, 2, 0, 0]) == 1
    assert int(item["segmentations"]["final"][2].sum()) == 1
    sliced = volumes.slice("axial")
    assert sliced[2]["seg_labels"]["final"].tolist()[-1] == 2
    assert 2 not in sliced[1]["seg_labels"]["final"].tolist()


def test_geometric_annotations_and_boxes_follow_slicing(make_store: MakeStore) -> None:
    store = make_store({"ct": simple_case(1)})  # canonical (D 4, H 5, W 6)
    store.annotations.add_many(
        "ct",
        [
            BoxAnnotation.from_points((1, 1), (3, 2), identifier="mass", frame_index=2),
            LineAnnotation(identifier="axis", points=[(0, 0, 1), (4, 3, 1)]),
            PointAnnotation(identifier="dot", points=[(5, 4, 3)]),
        ],
    )
    volume = VolumeDataset(store, return_boxes=True)[0]
    assert sorted(a["identifier"] for a in volume["annotations"]) == ["axis", "dot", "mass"]
    assert volume["boxes"].tolist() == [[1, 1, 2, 3, 2, 2]]
    sliced = SlicedVolumeDataset(store, return_boxes=True)
    assert sliced.box_labels_set == ["mass"]
    assert sliced[2]["boxes"].tolist() == [[1, 1, 3, 2]] and sliced[2]["box_labels"].tolist() == [0]
    assert sliced[1]["boxes"].shape == (0, 4)
    assert [a["identifier"] for a in sliced[1]["annotations"]] == ["axis"]
    assert sliced[1]["annotations"][0]["points"].tolist() == [[0, 0], [4, 3]]
    coronal = SlicedVolumeDataset(store, slice_axis="coronal", return_boxes=True)
    row_2 = coronal[2]  # H index 2: the box spans rows 1..2, at slice 2 -> (x, z)
    assert row_2["boxes"].tolist() == [[1, 2, 3, 2]]


def test_boxes_follow_albumentations(make_store: MakeStore) -> None:
    store = make_store({"ct": simple_case(1)})
    store.annotations.add(
        "ct", BoxAnnotation.from_points((1, 1), (3, 2), identifier="mass", frame_index=2)
    )
    flip = A.HorizontalFlip(p=1.0)
    item = SlicedVolumeDataset(store, return_boxes=True, alb_transform=flip)[2]
    # W = 6: pascal_voc x -> 6 - x
    assert item["boxes"].tolist() == [[3, 1, 5, 2]]


def test_frame_categories_reach_volume_and_slice_items(make_store: MakeStore) -> None:
    store = make_store({"ct": simple_case(1)})  # D = 4
    store.annotations.add_many(
        "ct",
        [
            CategoryAnnotation(
                identifier="phase", value="art", scope="frame", frame_index=3, created_by="r1"
            ),
            CategoryAnnotation(
                identifier="phase", value="ven", scope="frame", frame_index=1, created_by="r1"
            ),
        ],
    )
    volumes = VolumeDataset(store)
    assert volumes.frame_categories_set == [("phase", "art"), ("phase", "ven")]
    assert volumes[0]["frame_categories"]["r1"].tolist() == [-1, 1, -1, 0]
    sliced = volumes.slice("axial")
    assert int(sliced[3]["frame_categories"]["r1"]) == 0
    assert int(sliced[0]["frame_categories"]["r1"]) == -1


def test_boxes_follow_albumentations_on_every_item(make_store: MakeStore) -> None:
    store = make_store({"ct": simple_case(1)})
    store.annotations.add(
        "ct", BoxAnnotation.from_points((1, 1), (3, 2), identifier="mass", frame_index=2)
    )
    ds = SlicedVolumeDataset(store, return_boxes=True, alb_transform=A.HorizontalFlip(p=1.0))
    for _ in range(2):  # the same transform object, item after item (empty ones included)
        assert [ds[i]["boxes"].tolist() for i in range(4)] == [[], [], [[3, 1, 5, 2]], []]
