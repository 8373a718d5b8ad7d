"""The one store factory of the tests: stores built from cases through LocalDatastore's own API.

``tests/conftest.py`` hands it out as the ``make_store`` fixture, which closes every store it made
when the test ends.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from medstore.datastore.store.local import LocalDatastore

from support.nifti import make_nifti

__all__ = ["Case", "MakeStore", "StoreFactory", "link_out_of_store", "simple_case"]

MakeStore = Callable[..., LocalDatastore]


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


class StoreFactory:
    """Builds stores in fresh folders ``store0``, ``store1``... (or ``name``) under ``folder``.

    ``defaults`` are :class:`LocalDatastore` options every store gets unless the call overrides
    them (the contract suite's write path passes its options here).
    """

    def __init__(self, folder: Path, *, defaults: Mapping[str, Any] | None = None) -> None:
        self.folder = folder
        self.defaults = dict(defaults or {})
        self.stores: list[LocalDatastore] = []

    def __call__(
        self, cases: Mapping[str, Case] | None = None, *, name: str | None = None, **options: Any
    ) -> LocalDatastore:
        """A store holding ``cases`` (NIfTI files with identity affines; empty if none).

        Images and labels are written into the folder before the store first opens it; info and
        ``label_info`` then go through ``update_image_info``/``update_label_info`` in one batch.
        ``options`` go to :class:`LocalDatastore` (``lock_timeout`` defaults to 5 s).
        """
        root = self.folder / (name or f"store{len(self.stores)}")
        cases = cases or {}
        for image_id, case in cases.items():
            make_nifti(root / f"{image_id}.nii.gz", case.image)
            for tag, (array, _) in case.labels.items():
                make_nifti(root / "labels" / tag / f"{image_id}.nii.gz", array)
        options = {**self.defaults, **options}
        options.setdefault("lock_timeout", 5.0)
        store = LocalDatastore(root, **options)
        self.stores.append(store)
        if cases:
            with store.batch():
                for image_id, case in cases.items():
                    if case.info:
                        store.update_image_info(image_id, case.info)
                    for tag, (_, label_info) in case.labels.items():
                        if label_info is not None:
                            store.update_label_info(image_id, tag, {"label_info": label_info})
        return store

    def close_all(self) -> None:
        """Close every store this factory made (stops their watchers)."""
        for store in self.stores:
            store.close()


def link_out_of_store(path: Path, outside: Path) -> None:
    """Swap a store's file or folder for a link to an exact copy of it at ``outside``.

    The copy is exact, so a read that followed the planted link would go unnoticed.
    """
    if path.is_dir():
        shutil.copytree(path, outside)
        shutil.rmtree(path)
    else:
        shutil.copyfile(path, outside)
        path.unlink()
    path.symlink_to(outside, target_is_directory=outside.is_dir())
