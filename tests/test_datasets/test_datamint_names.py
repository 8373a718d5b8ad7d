"""Issue 15 reproductions: Datamint's constructor names, albumentations, resources, status."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import albumentations as A  # noqa: N812 (the users' idiom)
import numpy as np
import pytest
import torch
from medstore.datasets import ImageDataset, SlicedVolumeDataset, VolumeDataset
from medstore.datastore.annotations import LabelAnnotation
from support.nifti import make_nifti
from support.stores import MakeStore, simple_case


def _store(make_store: MakeStore):  # type: ignore[no-untyped-def]
    return make_store({"a": simple_case(1), "b": simple_case(2)})


def test_project_keyword_and_positional(make_store: MakeStore) -> None:
    store = _store(make_store)
    assert len(VolumeDataset(project=store)) == 2
    assert len(VolumeDataset(project=str(store.root))) == 2
    assert len(VolumeDataset(store)) == 2
    assert [r.image_id for r in VolumeDataset(store, resources=["b"]).resources] == ["b"]


def test_server_only_arguments_name_the_offline_alternative(make_store: MakeStore) -> None:
    store = _store(make_store)
    with pytest.raises(NotImplementedError, match="point project= at a store"):
        VolumeDataset(project=store, api_key="k")
    with pytest.raises(ValueError, match="give project="):
        VolumeDataset(resources=["a"])


def test_slice_axis_and_parent_dataset(make_store: MakeStore) -> None:
    store = _store(make_store)
    coronal = SlicedVolumeDataset(store, slice_axis="coronal")
    assert coronal.frame_axis_name == "coronal" and len(coronal) == 2 * 5
    volumes = VolumeDataset(project=store)
    sliced = SlicedVolumeDataset.from_dataset(parent_dataset=volumes, slice_axis="sagittal")
    assert sliced.frame_axis_name == "sagittal" and len(sliced) == 2 * 6


def test_alb_transform_flips_image_and_masks_together(make_store: MakeStore) -> None:
    store = _store(make_store)
    plain = VolumeDataset(store).slice("axial")[1]
    flip = A.Compose([A.HorizontalFlip(p=1.0)])
    for ds in (
        VolumeDataset(store, alb_transform=flip).slice("axial"),
        SlicedVolumeDataset(store, transform=flip),
    ):
        item = ds[1]
        assert torch.equal(item["image"], plain["image"].flip(-1))
        assert torch.equal(item["segmentations"]["final"], plain["segmentations"]["final"].flip(-1))


def test_add_and_set_transform(make_store: MakeStore) -> None:
    ds = SlicedVolumeDataset(_store(make_store))
    plain = ds[1]["image"]
    ds.add_transform(A.HorizontalFlip(p=1.0))
    ds.add_transform(A.VerticalFlip(p=1.0))
    assert torch.equal(ds[1]["image"], plain.flip(-1).flip(-2))
    ds.set_transform(None)
    assert torch.equal(ds[1]["image"], plain)
    ds.set_transform(A.HorizontalFlip(p=1.0))
    out = ds.apply_alb_transform(plain.numpy(), {"boxes": torch.tensor([[0.0, 0.0, 2.0, 1.0]])})
    assert torch.equal(out["image"], plain.flip(-1))


def test_volume_alb_transform_uses_volume_targets(make_store: MakeStore) -> None:
    store = _store(make_store)
    plain = VolumeDataset(store)[0]
    item = VolumeDataset(store, alb_transform=A.Compose([A.HorizontalFlip(p=1.0)]))[0]
    assert torch.equal(item["image"], plain["image"].flip(-1))
    assert torch.equal(item["segmentations"]["final"], plain["segmentations"]["final"].flip(-1))


def test_resources_annotations_get_resource_and_two_argument_filter(
    make_store: MakeStore,
) -> None:
    store = _store(make_store)
    store.annotations.add("b", LabelAnnotation(identifier="edema", created_by="r1"))
    ds = VolumeDataset(store)
    assert [r.image_id for r in ds.resources] == ["a", "b"]
    assert ds.get_resource(1).image_id == "b"
    assert [[a.identifier for a in anns] for anns in ds.resource_annotations] == [[], ["edema"]]
    kept = ds.filter(custom_fn=lambda resource, annotations: len(annotations) > 0)
    assert [r.image_id for r in kept.resources] == ["b"]


def test_status_and_worklists_select_entity_annotations(make_store: MakeStore) -> None:
    store = _store(make_store)
    store.annotations.add_many(
        "a",
        [
            LabelAnnotation(identifier="done", status="approved", worklist_id="w1"),
            LabelAnnotation(identifier="draft", status="new", worklist_id="w1"),
            LabelAnnotation(identifier="other", worklist_id="w2"),
        ],
    )
    assert VolumeDataset(store).image_labels_set == ["done", "other"]
    assert VolumeDataset(store, all_annotations=True).image_labels_set == ["done", "draft", "other"]
    assert VolumeDataset(store, worklists=["w2"]).image_labels_set == ["other"]
    # label files count as approved: the worklist filter leaves them alone
    assert "final" in VolumeDataset(store, worklists=["w2"])[0]["segmentations"]


def test_auto_update_sees_a_dropped_file(make_store: MakeStore, tmp_path: Path) -> None:
    store = _store(make_store)
    root = tmp_path / "copy"
    shutil.copytree(store.root, root)
    make_nifti(root / "c.nii.gz", np.zeros((6, 5, 4), np.int16))
    assert VolumeDataset(root).get_image_id(2) == "c"
    assert len(VolumeDataset(root, auto_update=False)) == 2


def test_prefetch_include_annotations(make_store: MakeStore) -> None:
    ds = VolumeDataset(_store(make_store))
    assert ds.prefetch(include_annotations=True, progress=False) == 4  # 2 images + 2 labels


def test_image_dataset_alb_keyword(make_store: MakeStore) -> None:
    store = make_store({"xr": simple_case(3, shape=(6, 5, 1))})
    plain = ImageDataset(store)[0]["image"]
    flipped = ImageDataset(store, alb_transform=A.HorizontalFlip(p=1.0))[0]["image"]
    assert torch.equal(flipped, plain.flip(-1))


def test_missing_albumentations_names_the_extra(
    make_store: MakeStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = _store(make_store)
    flip = A.HorizontalFlip(p=1.0)
    monkeypatch.setitem(sys.modules, "albumentations", None)  # import fails as if missing
    with pytest.raises(
        ImportError,
        match=r"^albumentations is not installed: pip install 'medstore\[albumentations\]'$",
    ):
        VolumeDataset(store, alb_transform=flip)
