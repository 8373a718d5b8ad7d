"""Issue 15, point 3: dataset bugs found by a Datamint user, each seen failing first."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from medstore.datasets import VolumeDataset
from medstore.datastore import AnnotationError
from medstore.datastore.annotations import CategoryAnnotation
from support.stores import MakeStore, simple_case


def test_annotator_filter_drops_images_without_that_annotator(make_store: MakeStore) -> None:
    bare = simple_case(2)
    bare.labels = {}
    store = make_store({"a": simple_case(1), "b": bare})
    ds = VolumeDataset(store, include_annotators=["final"])
    assert [r.image_id for r in ds.resources] == ["a"]
    batch = next(iter(ds.get_dataloader(batch_size=2)))
    assert set(batch["segmentations"]) == {"final"}


def test_differently_shaped_volumes_name_both_shapes(make_store: MakeStore) -> None:
    store = make_store({"a": simple_case(1), "b": simple_case(2, shape=(7, 5, 4))})
    loader = VolumeDataset(store).get_dataloader(batch_size=2)
    with pytest.raises(ValueError, match=r"\(1, 4, 5, 6\).*\(1, 4, 5, 7\)"):
        next(iter(loader))


def test_unnamed_label_values_are_reported(make_store: MakeStore) -> None:
    case = simple_case(1)
    label, _ = case.labels["final"]
    label[0, 0, 0] = 7  # not in label_info
    store = make_store({"a": case})
    with pytest.warns(UserWarning, match=r"values \[7\] .*not named in its label_info"):
        VolumeDataset(store)[0]


def test_sum_keeps_each_sides_filters(make_store: MakeStore) -> None:
    store = make_store({"a": simple_case(1), "b": simple_case(2)})
    left = VolumeDataset(store, include_segmentation_names=["liver"], resources=["a"])
    right = VolumeDataset(store, resources=["b"])
    both = left + right
    assert both.segmentation_labels_set == ["liver", "tumor"]
    assert both[0]["seg_labels"]["final"].tolist() == [1]  # liver only, as in left
    assert both[1]["seg_labels"]["final"].tolist() == [1, 2]
    assert torch.equal(both[0]["segmentations"]["final"], left[0]["segmentations"]["final"])
    assert np.asarray(both[1]["segmentations"]["final"]).shape[0] == 2


def test_frame_index_outside_the_volume_is_refused_at_add(make_store: MakeStore) -> None:
    store = make_store({"ct": simple_case(1, shape=(6, 5, 32))})  # canonical D = 32
    frame_32 = CategoryAnnotation(identifier="phase", value="art", scope="frame", frame_index=32)
    with pytest.raises(AnnotationError, match="frame_index 32 is outside image 'ct' \\(32 frames"):
        store.annotations.add("ct", frame_32)
    frame_31 = CategoryAnnotation(identifier="phase", value="art", scope="frame", frame_index=31)
    assert store.annotations.add("ct", frame_31)


def test_automatic_split_reports_images_added_after_save(make_store: MakeStore) -> None:
    store = make_store({f"c{n}": simple_case(n) for n in range(4)})
    VolumeDataset(store).split(train=0.5, val=0.5, seed=1).save()
    store.add_image("new", str(_nifti(store.root.parent / "new.nii.gz")))
    with pytest.warns(UserWarning, match=r"1 image.* no persisted split.*'new'"):
        parts = VolumeDataset(store).split()
    assert sum(len(p) for p in parts.values()) == 4
    with pytest.raises(ValueError, match=r"none of the dataset's 1 image"):
        VolumeDataset(store, resources=["new"]).split()


def _nifti(path):  # type: ignore[no-untyped-def]
    from support.nifti import make_nifti

    make_nifti(path, np.zeros((6, 5, 4), np.int16))
    return path


def test_2d_label_saved_from_an_array_fits_its_2d_image(make_store: MakeStore) -> None:
    from medstore.datasets import ImageDataset
    from PIL import Image

    store = make_store(extensions=["*.png", "*.nii.gz"])
    png = store.root.parent / "xr.png"
    Image.fromarray(np.zeros((48, 40), np.uint8)).save(png)
    store.add_image("xr", str(png))
    mask = np.zeros((48, 40), np.uint8)
    mask[3:6, 4:9] = 1
    store.save_label("xr", mask, "final", label_info={"label_info": [{"name": "n", "idx": 1}]})
    item = ImageDataset(store)[0]
    assert item["image"].shape == (1, 48, 40)
    assert torch.equal(item["segmentations"]["final"][0], torch.from_numpy(mask))
