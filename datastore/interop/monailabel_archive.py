"""MONAI Label 0.8.5's dataset archive: ``image/``, ``label/`` and ``metadata.json`` in a zip.

Examples:
    >>> import tempfile
    >>> from medstore.datastore import LocalDatastore
    >>> path = write_dataset_archive(LocalDatastore(tempfile.mkdtemp()), limit_cases=None)
    >>> path.suffix
    '.zip'
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Protocol

import orjson

from ..ids import is_inside
from ..timestamps import compact_utc

__all__ = ["ArchivedStore", "archive_folder", "write_dataset_archive"]


class ArchivedStore(Protocol):
    """What the archive writer reads of a store (``LocalDatastore`` provides it)."""

    @property
    def root(self) -> Path: ...

    def json(self) -> dict[str, Any]: ...

    def name(self) -> str: ...

    def get_labeled_images(self) -> list[str]: ...

    def get_image_uri(self, image_id: str) -> str: ...

    def get_label_uri(self, label_id: str, label_tag: str) -> str: ...


def archive_folder() -> Path:
    """Where archives go: ``<tempfile.gettempdir()>/medstore-archives``."""
    return Path(tempfile.gettempdir()) / "medstore-archives"


def write_dataset_archive(store: ArchivedStore, *, limit_cases: int | None) -> Path:
    """Zip the store's ``final``-labelled cases.

    Files are taken only from inside the store, or from where an image imported with ``--link``
    points (its recorded ``source_path``); anything else is skipped.

    Args:
        store: The store.
        limit_cases: At most this many cases (``None``: all).

    Returns:
        The zip's path, in :func:`archive_folder`.
    """
    root = Path(os.path.realpath(store.root))
    doc = store.json()
    metadata: dict[str, Any] = {}
    folder = archive_folder()
    folder.mkdir(parents=True, exist_ok=True)
    stamp = compact_utc()
    target = folder / f"{store.name() or 'store'}-{stamp}.zip".replace(os.sep, "_")
    cases = store.get_labeled_images()
    if limit_cases is not None:
        cases = cases[: max(limit_cases, 0)]
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_STORED) as zf:
        for image_id in cases:
            obj = doc["objects"][image_id]
            image = Path(store.get_image_uri(image_id))
            label = Path(store.get_label_uri(image_id, "final"))
            linked = obj["image"]["info"].get("source_path")
            if not image.is_file() or not (is_inside(root, image) or linked):
                continue
            if not label.is_file() or not is_inside(root, label):
                continue
            zf.write(image, f"image/{image_id}{obj['image']['ext']}")
            zf.write(label, f"label/{image_id}{obj['labels']['final']['ext']}")
            final = obj["labels"]["final"]
            metadata[image_id] = {"image": obj["image"], "labels": {"final": final}}
        zf.writestr("metadata.json", orjson.dumps(metadata, option=orjson.OPT_INDENT_2))
    return target
