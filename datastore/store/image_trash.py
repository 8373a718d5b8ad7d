"""The image trash: a removed or replaced image (and its labels' versions) kept, and brought back.

A removal moves the image file into ``.medstore/trash/<id>/<time>/`` beside a record of its
entry and the history versions its labels were retired to; a replacement by a later
``add_image`` keeps the replaced file the same way. Restoring puts the latest (or a chosen) image
back with its labels. Each call here runs inside, or opens, one transaction.

Examples:
    >>> import tempfile, pathlib, numpy as np, nibabel as nib
    >>> from medstore.datastore import LocalDatastore
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> nib.save(nib.Nifti1Image(np.zeros((4, 4, 4), np.int16), np.eye(4)), tmp / "ct.nii.gz")
    >>> store = LocalDatastore(tmp / "store")
    >>> store.add_image("case", str(tmp / "ct.nii.gz"), {})
    'case'
    >>> store.remove_image("case"); store.restore_image("case"); store.list_images()
    ['case']
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from ..errors import ImageNotFoundError
from ..timestamps import compact_utc, iso_utc
from .label_writes import LabelWriter
from .nhdr_data import DetachedData
from .session import StoreSession
from .transaction import Transaction
from .vanished import RECORD_NAME, latest_record

__all__ = ["ImageTrash"]


class ImageTrash:
    """Removes images into the trash and restores them.

    Args:
        session: The store's session (lock, document, transactions).
        labels: The label writer (an image's labels are retired and restored with it).
        detached: The detached data files of ``.nhdr`` images (they travel with their header).
    """

    def __init__(self, session: StoreSession, labels: LabelWriter, detached: DetachedData) -> None:
        self._session = session
        self._labels = labels
        self._detached = detached

    def keep_replaced(
        self, txn: Transaction, image_id: str, old: dict[str, Any], *, new_ext: str
    ) -> Path | None:
        """Put the replaced image and its entry in the trash; where ``dest``'s old file goes."""
        folder = self._folder(image_id)
        record = {
            "format_version": 1,
            "image_id": image_id,
            "entry": old["image"],
            "label_versions": {},
            "replaced": True,
            "removed_at": iso_utc(),
        }
        staged = self._session.staging.write_bytes(orjson.dumps(record), ".json")
        txn.replace(staged, folder / RECORD_NAME, None, self._session.layout.root)
        if old["image"]["ext"] != new_ext:
            self._retire_file(txn, image_id, old, folder)
            return None
        self._detached.retire(txn, image_id, old["image"], folder)
        return folder / f"{image_id}{new_ext}"

    def _folder(self, image_id: str) -> Path:
        """A new folder under ``.medstore/trash/<id>/`` (never beside the image: links)."""
        return self._session.layout.trash_dir(image_id) / compact_utc()

    def _retire_file(
        self, txn: Transaction, image_id: str, obj: dict[str, Any], folder: Path
    ) -> None:
        path = self._session.layout.image_path(image_id, obj["image"]["ext"])
        if obj["image"]["info"].get("source_path") or path.is_symlink():
            txn.unlink(path, self._session.layout.root)
            return
        self._detached.retire(txn, image_id, obj["image"], folder)
        txn.retire(path, folder / f"{image_id}{obj['image']['ext']}", self._session.layout.root)

    def remove(self, image_id: str) -> None:
        """Remove an image and its labels; files go to trash and history, restorable.

        A linked image loses only its link. Raises ImageNotFoundError for an unknown id.
        """
        with self._session.mutation() as txn:
            obj = self._session.image_entry(image_id)
            tags = list(obj["labels"])
            versions = {tag: self._labels.retire(txn, image_id, tag, "removed") for tag in tags}
            folder = self._folder(image_id)
            self._retire_file(txn, image_id, obj, folder)
            record = {
                "format_version": 1,
                "image_id": image_id,
                "entry": obj["image"],
                "label_versions": versions,
                "removed_at": iso_utc(),
            }
            staged = self._session.staging.write_bytes(orjson.dumps(record), ".json")
            txn.replace(staged, folder / RECORD_NAME, None, self._session.layout.root)
            self._session.patch(txn, "remove_image", image_id=image_id)

    def restore(self, image_id: str, *, image_version: str | None = None) -> None:
        """Bring back the most recently removed (or replaced) image with its labels.

        An image replaced by a later ``add_image`` of its id comes back in place of the one
        that replaced it (which goes to the trash in turn); its labels stay. ``image_version``
        picks an earlier image of the id (its ``medstore.image_version``) instead of the latest;
        its annotations, label history and splits come back with it.

        Raises:
            ImageNotFoundError: Nothing of that id (and version) is in the trash.
        """
        with self._session.mutation() as txn:
            found = latest_record(self._session, image_id, version=image_version)
            current = self._session.doc["objects"].get(image_id)
            if found is None or (current is not None and not found[1].get("replaced")):
                shown = "" if image_version is None else f" of version {image_version!r}"
                raise ImageNotFoundError(f"no removed image {image_id!r}{shown} to restore")
            path, record = found
            if record.get("vanished"):
                raise ImageNotFoundError(
                    f"image {image_id!r} was not removed: its file is gone from the store; put "
                    "the file back and refresh, and its info comes back with it"
                )
            entry = record["entry"]
            ext = entry["ext"]
            target = entry["info"].get("source_path")
            if target:
                staged = self._session.staging.link(target, ext)
            else:
                staged, _ = self._session.staging.copy_file(path.parent / f"{image_id}{ext}", ext)
            dest = self._session.layout.image_path(image_id, ext, for_write=True)
            keep = None
            if current is not None:
                keep = self.keep_replaced(txn, image_id, current, new_ext=ext)
            txn.replace(staged, dest, keep, self._session.layout.root)
            if not target:
                self._detached.restore(txn, path.parent / f"{image_id}{ext}")
            self._session.patch(
                txn, "set_image", image_id=image_id, entry=entry, keep_labels=current is not None
            )
            for tag, version in record["label_versions"].items():
                self._labels.restore_version(txn, image_id, tag, version)
