"""Factory fixtures for the dataset tests: tiny NIfTI stores built through LocalDatastore."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest
from medstore.datastore.store.local import LocalDatastore


def write_nifti(path: Path, array: np.ndarray, affine: np.ndarray | None = None) -> Path:
    """Write ``array`` (x, y, z) as NIfTI with ``affine`` (default identity)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(array, np.eye(4) if affine is None else affine), str(path))
    return path


@dataclass
class Case:
    """One image of a test store: its voxels and labels ``{tag: (array, label_info or None)}``."""

    image: np.ndarray
    labels: dict[str, tuple[np.ndarray, list[dict[str, Any]] | None]] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)


def simple_case(seed: int, shape: tuple[int, int, int] = (6, 5, 4)) -> Case:
    """A random int16 image with a two-class ``final`` label (1 = liver, 2 = tumor)."""
    rng = np.random.default_rng(seed)
    image = rng.integers(-100, 100, size=shape, dtype=np.int16)
    label = np.zeros(shape, dtype=np.uint8)
    label[1:3, 1:3, : min(2, shape[2])] = 1
    label[shape[0] - 1, shape[1] - 1, shape[2] - 1] = 2
    info = [{"name": "liver", "idx": 1}, {"name": "tumor", "idx": 2}]
    return Case(image=image, labels={"final": (label, info)})


MakeStore = Callable[..., LocalDatastore]


@pytest.fixture
def make_store(tmp_path: Path) -> MakeStore:
    """Build a store folder from ``{image_id: Case}`` through LocalDatastore's own API."""
    counter = iter(range(1000))

    def build(cases: dict[str, Case], *, name: str | None = None) -> LocalDatastore:
        root = tmp_path / (name or f"store{next(counter)}")
        for image_id, case in cases.items():
            write_nifti(root / f"{image_id}.nii.gz", case.image)
            for tag, (array, _) in case.labels.items():
                write_nifti(root / "labels" / tag / f"{image_id}.nii.gz", array)
        store = LocalDatastore(root, lock_timeout=5.0)
        with store.batch():
            for image_id, case in cases.items():
                if case.info:
                    store.update_image_info(image_id, case.info)
                for tag, (_, label_info) in case.labels.items():
                    if label_info is not None:
                        store.update_label_info(image_id, tag, {"label_info": label_info})
        return store

    return build
