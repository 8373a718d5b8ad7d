"""Walk the Datamint dataset API checklist (tests/fixtures/datamint_dataset_api.txt) offline.

Every line is checked: parameters are in the constructors, methods, attributes, item keys and
exports exist (N.A. ones do not), server-only ones raise NotImplementedError naming the offline
alternative. Then a Datamint training script runs with two changes (import, ``project=``).
"""

from __future__ import annotations

import inspect
from pathlib import Path

import albumentations as A  # noqa: N812 (the users' idiom)
import medstore.datasets as mds
import pytest
import torch
from medstore.datasets import (
    ImageDataset,
    MultiFrameDataset,
    SlicedVideoDataset,
    SlicedVolumeDataset,
    VideoDataset,
    VolumeDataset,
)
from medstore.datastore.annotations import BoxAnnotation, CategoryAnnotation
from medstore.datastore.store.local import LocalDatastore
from support.stores import MakeStore, simple_case

CHECKLIST = Path(__file__).parent.parent / "fixtures" / "datamint_dataset_api.txt"
CLASSES = [
    ImageDataset,
    VolumeDataset,
    VideoDataset,
    MultiFrameDataset,
    SlicedVolumeDataset,
    SlicedVideoDataset,
]


def _lines() -> list[tuple[str, str, str]]:
    rows = []
    for line in CHECKLIST.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        item, status, why = (part.strip() for part in line.split("|"))
        kind, target = item.split(" ", 1)
        assert status in ("WORKS", "DIFFERS", "N.A."), line
        assert why, line
        rows.append((kind, target, status))
    return rows


def _store(make_store: MakeStore) -> LocalDatastore:
    store = make_store({f"c{n}": simple_case(n) for n in range(5)})
    for n in range(5):
        store.update_image_info(f"c{n}", {"patient_id": f"p{n % 2}"})
    store.annotations.add_many(
        "c0",
        [
            BoxAnnotation.from_points((1, 1), (3, 2), identifier="mass", frame_index=2),
            CategoryAnnotation(identifier="phase", value="art", scope="frame", frame_index=1),
        ],
    )
    return store


def test_checklist_counts() -> None:
    statuses = [status for _, _, status in _lines()]
    assert len(statuses) == 96
    assert statuses.count("WORKS") == 72
    assert statuses.count("DIFFERS") == 17
    assert statuses.count("N.A.") == 7


@pytest.mark.parametrize(("kind", "target", "status"), _lines(), ids=lambda v: str(v))
def test_checklist_item(kind: str, target: str, status: str, make_store: MakeStore) -> None:
    offered = status != "N.A."
    if kind == "param":
        owner, _, name = target.rpartition(".")
        classes = [getattr(mds, owner)] if owner else CLASSES
        for cls in classes:
            assert (name in inspect.signature(cls.__init__).parameters) is offered, cls
        return
    if kind == "export":
        assert hasattr(mds, target) is offered
        return
    if kind == "method":
        owner, _, name = target.rpartition(".")
        assert hasattr(getattr(mds, owner) if owner else VolumeDataset, name) is offered
        return
    store = _store(make_store)
    ds = VolumeDataset(project=store, return_boxes=True)
    if kind == "prop":
        assert hasattr(ds, target) is offered
    elif kind == "key":
        assert (target in ds[0]) is offered
        assert target in ds.slice("axial")[2] or target == "annotations"
    elif kind == "server":
        assert not offered
        with pytest.raises(NotImplementedError, match="point project= at a store"):
            if target == "build_mlflow_dataset":
                ds.build_mlflow_dataset()
            else:
                VolumeDataset(project=store, **{target: "x"})
    else:
        raise AssertionError(f"unknown kind {kind!r}")


def test_documented_behaviour_offline(make_store: MakeStore) -> None:
    store = _store(make_store)
    ds = VolumeDataset(project=store)
    pairs = list(ds.items())
    assert [r.image_id for r, _ in pairs] == ["c0", "c1", "c2", "c3", "c4"]
    assert sorted(a.identifier for a in pairs[0][1]) == ["mass", "phase"]
    assert sorted(ds.group_by_patient()) == ["p0", "p1"]
    assert len(ds.group_by_patient()["p0"]) == 3
    assert type(mds.build_dataset(store)) is VolumeDataset
    boxes = SlicedVolumeDataset(store, return_boxes=True)
    batch = mds.detection_collate_fn([boxes[2], boxes[3]])
    assert batch["image"].shape == (2, 1, 5, 6) and batch["boxes"][0].shape == (1, 4)


def test_a_datamint_training_script_runs_with_two_changes(make_store: MakeStore) -> None:
    store_path = str(_store(make_store).root)
    # --- a Datamint script; changed: the import and project= ---
    from medstore.datasets import VolumeDataset  # was: from datamint.dataset import ...

    transform = A.Compose([A.HorizontalFlip(p=0.5), A.RandomBrightnessContrast(p=0.2)])
    dataset = VolumeDataset(
        project=store_path,  # was: project="my-project"
        return_as_semantic_segmentation=True,
        semantic_seg_merge_strategy="union",
        alb_transform=transform,
    ).slice("axial")
    parts = dataset.split(train=0.8, val=0.2, seed=42)
    model = torch.nn.Conv2d(1, 3, kernel_size=3, padding=1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    loss_fn = torch.nn.CrossEntropyLoss()
    for _epoch in range(1):
        for batch in parts["train"].get_dataloader(batch_size=4, shuffle=True):
            target = batch["segmentations"].argmax(dim=1)
            loss = loss_fn(model(batch["image"]), target)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    # --- end of the script ---
    assert len(parts["train"]) == 16 and len(parts["val"]) == 4 and torch.isfinite(loss)
