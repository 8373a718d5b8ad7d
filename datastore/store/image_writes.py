"""The image writers of ``LocalDatastore``: metadata, tags, images and the image trash.

Each call is one transaction; label writers are in :mod:`medstore.datastore.store.label_writes`.

Examples:
    >>> import tempfile, pathlib, numpy as np, nibabel as nib
    >>> from medstore.datastore import LocalDatastore
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> nib.save(nib.Nifti1Image(np.zeros((4, 4, 4), np.int16), np.eye(4)), tmp / "ct.nii.gz")
    >>> store = LocalDatastore(tmp / "store")
    >>> store.add_image("case", str(tmp / "ct.nii.gz"), {"patient_id": "P1"})
    'case'
"""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import orjson

from ..errors import (
    ImageNotFoundError,
    InvalidIdError,
    UnsupportedFormatError,
)
from ..ids import split_source_name, validate_id
from ..timestamps import compact_utc, iso_utc
from .imaging_hooks import header_facts, wants_dicom
from .label_writes import LabelWriter
from .session import StoreSession
from .transaction import Transaction

__all__ = ["ImageWriter"]


def _check_tags(tags: Iterable[str]) -> list[str]:
    out = []
    for tag in tags:
        if not isinstance(tag, str) or not tag or any(ord(c) < 32 for c in tag):
            raise InvalidIdError(f"image tag {tag!r} must be a non-empty printable string")
        out.append(tag)
    return out


class ImageWriter:
    """The metadata, tag and image writers of :class:`~medstore.datastore.LocalDatastore`.

    Args:
        session: The store's session (lock, document, transactions).
        labels: The label writer (an image's labels are retired and restored with it).
        extensions: The store's file-name patterns.
    """

    def __init__(
        self, session: StoreSession, labels: LabelWriter, extensions: tuple[str, ...]
    ) -> None:
        self._session = session
        self._labels = labels
        self._extensions = extensions

    # -------------------------------------------------------------- metadata
    def set_name(self, name: str) -> None:
        """Set the store's name."""
        with self._session.mutation() as txn:
            self._session.patch(txn, "set_name", name=str(name))

    def set_description(self, description: str) -> None:
        """Set the store's description."""
        with self._session.mutation() as txn:
            self._session.patch(txn, "set_description", description=str(description))

    def update_image_info(self, image_id: str, info: Mapping[str, Any]) -> None:
        """Merge ``info`` into the image's info (the caller's dict is not kept or mutated).

        Raises:
            ImageNotFoundError: Unknown id.
        """
        with self._session.mutation() as txn:
            self._session.image_entry(image_id)
            self._session.patch(
                txn, "update_image_info", image_id=image_id, info=copy.deepcopy(dict(info))
            )

    def update_label_info(self, label_id: str, label_tag: str, info: Mapping[str, Any]) -> None:
        """Merge ``info`` into a label's info.

        Raises:
            LabelNotFoundError: No such label.
        """
        with self._session.mutation() as txn:
            self._session.label_entry(label_id, label_tag)
            self._session.patch(
                txn,
                "update_label_info",
                image_id=label_id,
                tag=label_tag,
                info=copy.deepcopy(dict(info)),
            )

    def add_tags(self, image_id: str, tags: Iterable[str]) -> list[str]:
        """Add image tags (``info["tags"]``), keeping order and uniqueness; returns them all."""
        new = _check_tags(tags)
        with self._session.mutation() as txn:
            current = list(self._session.image_entry(image_id)["image"]["info"].get("tags", []))
            merged = current + [t for t in dict.fromkeys(new) if t not in current]
            self._session.patch(txn, "update_image_info", image_id=image_id, info={"tags": merged})
        return merged

    def remove_tags(self, image_id: str, tags: Iterable[str]) -> list[str]:
        """Remove image tags; returns the remaining ones."""
        drop = set(_check_tags(tags))
        with self._session.mutation() as txn:
            current = list(self._session.image_entry(image_id)["image"]["info"].get("tags", []))
            kept = [t for t in current if t not in drop]
            self._session.patch(txn, "update_image_info", image_id=image_id, info={"tags": kept})
        return kept

    # -------------------------------------------------------------- images
    def add_image(
        self,
        image_id: str,
        image_filename: str | os.PathLike[str],
        image_info: Mapping[str, Any] | None = None,
        *,
        link: bool = False,
    ) -> str:
        """Copy (or with ``link=True`` symlink) an image file or DICOM series folder in.

        Re-adding an existing id replaces the file (the old one goes to the trash) and keeps
        its labels.

        Args:
            image_id: The id, or ``""`` to derive it from the file name.
            image_filename: Source file or series folder.
            image_info: Extra info (copied, never mutated).
            link: Record a symlink to the source instead of copying.

        Returns:
            The image id.

        Raises:
            InvalidIdError: A bad id. UnsupportedFormatError: no pattern matches.
            FileNotFoundError: The source does not exist.
        """
        with self._session.mutation() as txn:
            return self._add_image(txn, image_id, image_filename, image_info, link=link)

    def add_images(
        self,
        sources: Iterable[str | os.PathLike[str] | tuple[str, str | os.PathLike[str]]],
        *,
        info: Mapping[str, Any] | None = None,
        link: bool = False,
    ) -> list[str]:
        """Add many images in one transaction and one manifest write (O(N)).

        Args:
            sources: Paths (id derived) or ``(image_id, path)`` pairs.
            info: Info given to every image.
            link: Symlink instead of copying.

        Returns:
            The ids, in order.
        """
        ids = []
        with self._session.mutation() as txn:
            for source in sources:
                image_id, path = source if isinstance(source, tuple) else ("", source)
                ids.append(self._add_image(txn, image_id, path, info, link=link))
        return ids

    def _add_image(
        self,
        txn: Transaction,
        image_id: str,
        filename: str | os.PathLike[str],
        image_info: Mapping[str, Any] | None,
        *,
        link: bool,
    ) -> str:
        source = Path(filename)
        if not source.exists():
            raise FileNotFoundError(f"image file {source} does not exist")
        patterns = self._extensions
        if source.is_dir() and not wants_dicom(patterns):
            raise UnsupportedFormatError(f"{source.name!r} is a folder; DICOM is not enabled")
        derived_id, ext = split_source_name(source, patterns)
        image_id = validate_id(image_id or derived_id)
        dest = self._session.layout.image_path(image_id, ext, for_write=True)
        info = copy.deepcopy(dict(image_info or {}))
        if link:
            staged, checksum = self._session.staging.link(source, ext), None
            info["source_path"] = str(source.absolute())
        else:
            staged, checksum = self._session.staging.copy_file(source, ext)
        old = self._session.doc["objects"].get(image_id)
        if old is not None and old["image"]["ext"] != ext:
            self._retire_image_file(txn, image_id, old)
        keep = self._trash_path(image_id, ext) if old is not None else None
        txn.replace(staged, dest, keep, self._session.layout.root)
        info.update(header_facts(staged, shown=source.name))
        info.update({"ts": int(time.time()), "name": image_id + ext})
        if checksum:
            info["checksum"] = checksum
        entry = {"ext": ext, "info": info}
        self._session.patch(txn, "set_image", image_id=image_id, entry=entry, keep_labels=True)
        return image_id

    def _trash_path(self, image_id: str, ext: str) -> Path:
        stamp = compact_utc()
        return self._session.layout.trash_dir(image_id) / stamp / f"{image_id}{ext}"

    def _retire_image_file(self, txn: Transaction, image_id: str, obj: dict[str, Any]) -> Path:
        path = self._session.layout.image_path(image_id, obj["image"]["ext"])
        if obj["image"]["info"].get("source_path") or path.is_symlink():
            txn.unlink(path, self._session.layout.root)
            return path
        keep = self._trash_path(image_id, obj["image"]["ext"])
        txn.retire(path, keep, self._session.layout.root)
        return keep

    def remove_image(self, image_id: str) -> None:
        """Remove an image and its labels; files go to trash and history, restorable.

        A linked image loses only its link. Raises ImageNotFoundError for an unknown id.
        """
        with self._session.mutation() as txn:
            obj = self._session.image_entry(image_id)
            tags = list(obj["labels"])
            versions = {tag: self._labels.retire(txn, image_id, tag, "removed") for tag in tags}
            keep = self._retire_image_file(txn, image_id, obj)
            record = {
                "format_version": 1,
                "image_id": image_id,
                "entry": obj["image"],
                "label_versions": versions,
                "removed_at": iso_utc(),
            }
            staged = self._session.staging.write_bytes(orjson.dumps(record), ".json")
            txn.replace(staged, keep.parent / "entry.json", None, self._session.layout.root)
            self._session.patch(txn, "remove_image", image_id=image_id)

    def restore_image(self, image_id: str) -> None:
        """Bring back the most recently removed image with its labels.

        Raises:
            ImageNotFoundError: Nothing of that id is in the trash.
        """
        with self._session.mutation() as txn:
            folder = self._session.layout.trash_dir(image_id)
            stamps = sorted(p for p in folder.glob("*/entry.json")) if folder.exists() else []
            if not stamps or image_id in self._session.doc["objects"]:
                raise ImageNotFoundError(f"no removed image {image_id!r} to restore")
            record = orjson.loads(stamps[-1].read_bytes())
            entry = record["entry"]
            src = stamps[-1].parent / f"{image_id}{entry['ext']}"
            staged, _ = self._session.staging.copy_file(src, entry["ext"])
            dest = self._session.layout.image_path(image_id, entry["ext"], for_write=True)
            txn.replace(staged, dest, None, self._session.layout.root)
            self._session.patch(txn, "set_image", image_id=image_id, entry=entry, keep_labels=False)
            for tag, version in record["label_versions"].items():
                self._labels.restore_version(txn, image_id, tag, version)
