"""Merge and conversion rules (property tests), pickling, and the video classes."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from medstore.datasets import SlicedVideoDataset, VideoDataset, VolumeDataset
from medstore.datasets.item.label_space import (
    instance_masks,
    merge_categories,
    merge_masks,
    semantic_masks,
    to_codes,
    value_lut,
)
from support.stores import MakeStore, simple_case

codes_maps = st.integers(1, 4).flatmap(
    lambda a: arrays(np.uint8, (a, 3, 5), elements=st.integers(0, 3))
)


@settings(max_examples=60, deadline=None)
@given(codes_maps)
def test_merges_are_ordered_and_background_is_recomputed(stack: np.ndarray) -> None:
    semantic = [semantic_masks(c, 3) for c in stack]
    merged = {s: merge_masks(semantic, s, (4, 3, 5)) for s in ("union", "intersection", "mode")}
    for out in merged.values():
        assert out.dtype == np.uint8 and out.shape == (4, 3, 5)
        assert np.array_equal(out[0], 1 - out[1:].max(axis=0))
    assert (merged["intersection"][1:] <= merged["mode"][1:]).all()
    assert (merged["mode"][1:] <= merged["union"][1:]).all()
    if len(stack) == 1:
        assert all(np.array_equal(m, semantic[0]) for m in merged.values())


@settings(max_examples=60, deadline=None)
@given(arrays(np.int16, (4, 4), elements=st.integers(-3, 300)))
def test_instance_masks_partition_the_foreground(labelmap: np.ndarray) -> None:
    lut = value_lut({1: "a", 2: "b", 250: "c"}, {"a": 1, "b": 2, "c": 3})
    codes = to_codes(labelmap, lut)
    masks, present = instance_masks(codes)
    assert set(present.tolist()) == set(np.unique(codes).tolist()) - {0}
    assert np.array_equal(
        masks.sum(axis=0), (codes > 0).astype(np.uint8) if len(masks) else np.zeros_like(codes)
    )
    assert np.array_equal(codes == 3, labelmap == 250)


def test_category_merges() -> None:
    assert int(merge_categories([1, 1, 0], 3, "mode")) == 1
    assert int(merge_categories([2, 0], 3, "mode")) == 0  # tie → lowest
    assert merge_categories([2, 0], 3, "union").tolist() == [1, 0, 1]
    assert merge_categories([2, 0], 3, "intersection").tolist() == [0, 0, 0]
    with pytest.raises(ValueError, match="unknown merge strategy"):
        merge_categories([0], 1, "vote")


def test_dataset_pickles_without_the_store(make_store: MakeStore) -> None:
    ds = VolumeDataset(make_store({"a": simple_case(1)}))
    clone = pickle.loads(pickle.dumps(ds))
    assert clone._store is None and clone.segmentation_labels_set == ["liver", "tumor"]
    assert clone[0]["seg_labels"]["final"].tolist() == [1, 2]
    assert clone.store.list_images() == ["a"]


def test_video_classes_treat_d_as_frames(make_store: MakeStore) -> None:
    videos = VideoDataset(make_store({"clip": simple_case(1)}))
    assert videos[0]["image"].shape == (1, 4, 5, 6)
    frames = videos.frame_by_frame()
    assert type(frames) is SlicedVideoDataset and len(frames) == 4
    meta = frames[2]["metainfo"]
    assert meta["slice_axis"] == "frame" and meta["slice_index"] == 2
    assert frames[2]["image"].shape == (1, 5, 6)
    with pytest.raises(ValueError, match="frame by frame"):
        SlicedVideoDataset.from_dataset(videos, axis=1)
