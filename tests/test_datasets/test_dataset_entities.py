"""Image labels, image categories and frame labels from the store's entity annotations."""

from __future__ import annotations

import pytest
import torch
from medstore.datasets import VolumeDataset
from medstore.datasets.options import MergeStrategy
from medstore.datastore.annotations import CategoryAnnotation, LabelAnnotation
from medstore.datastore.annotations.storage import AnnotationStore
from medstore.datastore.store.local import LocalDatastore
from support.stores import MakeStore, simple_case


def _annotated(make_store: MakeStore) -> LocalDatastore:
    store = make_store({"a": simple_case(1), "b": simple_case(2)})
    anns = AnnotationStore(store)
    anns.add_many(
        "a",
        [
            LabelAnnotation(identifier="fracture", created_by="ann1"),
            LabelAnnotation(identifier="edema", created_by="ann2"),
            LabelAnnotation(identifier="fracture", created_by="ann2"),
            CategoryAnnotation(identifier="birads", value="3", created_by="ann1"),
            CategoryAnnotation(identifier="birads", value="4", created_by="ann2"),
            CategoryAnnotation(identifier="birads", value="4", created_by="ann3"),
            LabelAnnotation(identifier="motion", scope="frame", frame_index=2, created_by="ann1"),
            LabelAnnotation(identifier="motion", scope="frame", frame_index=3, created_by="ann1"),
            LabelAnnotation(identifier="blur", scope="frame", frame_index=2, created_by="ann2"),
        ],
    )
    anns.add("b", LabelAnnotation(identifier="normal", created_by="ann3"))
    return store


def test_label_sets_are_sorted_unions(make_store: MakeStore) -> None:
    ds = VolumeDataset(_annotated(make_store))
    assert ds.image_labels_set == ["edema", "fracture", "normal"]
    assert ds.image_categories_set == [("birads", "3"), ("birads", "4")]
    assert ds.frame_labels_set == ["blur", "motion"]


def test_per_annotator_entries(make_store: MakeStore) -> None:
    item = VolumeDataset(_annotated(make_store))[0]
    assert item["image_labels"]["ann1"].tolist() == [0, 1, 0]
    assert item["image_labels"]["ann2"].tolist() == [1, 1, 0]
    assert {k: int(v) for k, v in item["image_categories"].items()} == {
        "ann1": 0,
        "ann2": 1,
        "ann3": 1,
    }
    frames = item["frame_labels"]
    assert frames["ann1"].shape == (4, 2)  # D = 4 frames x 2 frame labels
    assert frames["ann1"][:, 1].tolist() == [0, 0, 1, 1] and frames["ann2"][2].tolist() == [1, 0]


@pytest.mark.parametrize(
    ("strategy", "labels", "categories"),
    [
        ("union", [1, 1, 0], [1, 1]),
        ("intersection", [0, 1, 0], [0, 0]),
        ("mode", [0, 1, 0], 1),  # a 1-1 tie on 'edema' is 0; two of three chose birads 4
    ],
)
def test_merged_entries(
    make_store: MakeStore, strategy: MergeStrategy, labels: list[int], categories: object
) -> None:
    ds = VolumeDataset(
        _annotated(make_store),
        image_labels_merge_strategy=strategy,
        image_categories_merge_strategy=strategy,
    )
    item = ds[0]
    assert item["image_labels"].tolist() == labels
    assert item["image_categories"].tolist() == categories


def test_mode_category_without_annotations_is_minus_one(make_store: MakeStore) -> None:
    ds = VolumeDataset(_annotated(make_store), image_categories_merge_strategy="mode")
    assert ds[1]["image_categories"].tolist() == -1


def test_entity_filters(make_store: MakeStore) -> None:
    store = _annotated(make_store)
    ds = VolumeDataset(store, exclude_image_label_names=["edema"], include_annotators=["ann2"])
    assert ds.image_labels_set == ["fracture"]
    assert set(ds[0]["image_labels"]) == {"ann2"}
    ds2 = VolumeDataset(store, include_frame_label_names=["blur"])
    assert ds2.frame_labels_set == ["blur"]


def test_sliced_axial_frame_labels(make_store: MakeStore) -> None:
    sliced = VolumeDataset(_annotated(make_store)).filter(tags=None, has_annotations=True)
    axial = sliced.slice("axial")
    frame2 = next(
        axial[i]
        for i in range(len(axial))
        if axial.get_image_id(i) == "a" and axial[i]["metainfo"]["slice_index"] == 2
    )
    assert frame2["frame_labels"]["ann1"].tolist() == [0, 1]
    coronal = sliced.slice("coronal")
    assert coronal[0]["frame_labels"]["ann1"].tolist() == [0, 0]


def test_distributions(make_store: MakeStore) -> None:
    ds = VolumeDataset(_annotated(make_store))
    assert ds.get_framelabel_distribution() == {"blur": 1.0, "motion": 2.0}
    assert ds.get_framelabel_distribution(normalize=True)["motion"] == pytest.approx(2 / 3)
    assert ds.get_segmentationlabel_distribution() == {"liver": 2.0, "tumor": 2.0}
    assert ds.get_segmentationlabel_distribution(normalize=True) == {"liver": 1.0, "tumor": 1.0}


def test_schema_drops_external_unless_allowed(make_store: MakeStore) -> None:
    from medstore.datastore.annotations import AnnotationSpec

    store = _annotated(make_store)
    AnnotationStore(store).set_schema([AnnotationSpec(identifier="fracture", type="label")])
    assert VolumeDataset(store).image_labels_set == ["fracture"]
    assert VolumeDataset(store, allow_external_annotations=True).image_labels_set == [
        "edema",
        "fracture",
        "normal",
    ]
    assert isinstance(VolumeDataset(store)[0]["image_labels"]["ann1"], torch.Tensor)
