"""filter(), subset(), + and get_image_id on volume and sliced datasets."""

from __future__ import annotations

import pytest
from medstore.datasets import SlicedVolumeDataset, VolumeDataset
from support.stores import MakeStore, simple_case


def _store(make_store: MakeStore):  # type: ignore[no-untyped-def]
    bare = simple_case(9)
    bare.labels = {}
    cases = {"ct_1": simple_case(1), "ct_2": simple_case(2), "mr_1": simple_case(3), "mr_2": bare}
    cases["ct_1"].info = {"tags": ["liver", "split:train"]}
    cases["mr_1"].info = {"tags": ["brain"]}
    return make_store(cases)


def _ids(ds: VolumeDataset | SlicedVolumeDataset) -> list[str]:
    return [ds.get_image_id(i) for i in range(len(ds))]


def test_filter_criteria_and_chaining(make_store: MakeStore) -> None:
    ds = VolumeDataset(_store(make_store))
    assert _ids(ds) == ["ct_1", "ct_2", "mr_1", "mr_2"]
    assert _ids(ds.filter(tags=["liver", "brain"])) == ["ct_1", "mr_1"]
    assert _ids(ds.filter(filename_pattern="mr_*.nii.gz")) == ["mr_1", "mr_2"]
    assert _ids(ds.filter(has_annotations=False)) == ["mr_2"]
    assert _ids(ds.filter(annotation_names=["tumor"])) == ["ct_1", "ct_2", "mr_1"]
    assert _ids(ds.filter(custom_fn=lambda r: r.image_id.endswith("2"))) == ["ct_2", "mr_2"]
    chained = ds.filter(filename_pattern="ct_*").filter(tags=["liver"])
    assert type(chained) is VolumeDataset and _ids(chained) == ["ct_1"]
    assert chained[0]["metainfo"]["id"] == "ct_1"


def test_filter_needs_a_criterion(make_store: MakeStore) -> None:
    with pytest.raises(ValueError, match="at least one criterion"):
        VolumeDataset(_store(make_store)).filter()


def test_subset_and_add_keep_the_api(make_store: MakeStore) -> None:
    ds = VolumeDataset(_store(make_store))
    sub = ds.subset([3, 0])
    assert _ids(sub) == ["mr_2", "ct_1"]
    both = sub + ds.subset([1])
    assert type(both) is VolumeDataset and _ids(both) == ["mr_2", "ct_1", "ct_2"]
    assert both.segmentation_labels_set == ["liver", "tumor"]
    assert _ids(both.filter(tags=["liver"])) == ["ct_1"]
    with pytest.raises(IndexError, match="out of range"):
        ds.subset([10])


def test_image_ids_argument(make_store: MakeStore) -> None:
    ds = VolumeDataset(_store(make_store), image_ids=["mr_1", "ct_2"])
    assert _ids(ds) == ["mr_1", "ct_2"]


def test_sliced_dataset_axes_and_selection(make_store: MakeStore) -> None:
    ds = VolumeDataset(_store(make_store)).filter(tags=["liver", "brain"])
    axial, coronal, sagittal = ds.slice("axial"), ds.slice(1), ds.slice("sagittal")
    # file (x, y, z) = (6, 5, 4) → canonical (D, H, W) = (4, 5, 6)
    assert (len(axial), len(coronal), len(sagittal)) == (8, 10, 12)
    assert axial[0]["image"].shape == (1, 5, 6) and coronal[0]["image"].shape == (1, 4, 6)
    assert sagittal[0]["image"].shape == (1, 4, 5)
    item = coronal[3]
    assert item["metainfo"]["slice_axis"] == "coronal" and item["metainfo"]["slice_index"] == 3
    volume = ds[0]["image"]
    assert (item["image"] == volume[:, :, 3]).all()
    assert item["segmentations"]["final"].shape[1:] == (4, 6)
    assert _ids(axial.filter(tags=["brain"])) == ["mr_1"] * 4
    assert len(axial.subset(range(3))) == 3
    assert type(axial + axial) is SlicedVolumeDataset and len(axial + axial) == 16
    with pytest.raises(ValueError, match="different axes"):
        axial + coronal
    with pytest.raises(ValueError, match="axis must be"):
        ds.slice("oblique")  # type: ignore[arg-type]


def test_from_dataset_option_override(make_store: MakeStore) -> None:
    parent = VolumeDataset(_store(make_store))
    sliced = SlicedVolumeDataset.from_dataset(
        parent, axis=0, include_unannotated=False, return_as_semantic_segmentation=True
    )
    assert "mr_2" not in set(_ids(sliced))
    assert sliced[0]["segmentations"]["final"].shape == (3, 5, 6)
    direct = SlicedVolumeDataset(_store(make_store), axis="axial")
    assert len(direct) == 16
