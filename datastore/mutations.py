"""The writing half of ``LocalDatastore``: every mutator, each one transaction (DESIGN §3, §10).

Examples:
    >>> import tempfile, pathlib, numpy as np, nibabel as nib
    >>> from datastore import LocalDatastore
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> nib.save(nib.Nifti1Image(np.zeros((4, 4, 4), np.int16), np.eye(4)), tmp / "ct.nii.gz")
    >>> store = LocalDatastore(tmp / "store")
    >>> store.add_image("case", str(tmp / "ct.nii.gz"), {"patient_id": "P1"})
    'case'
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from datastore.errors import (
    ImageNotFoundError,
    ImageReadError,
    InvalidIdError,
    LabelGeometryError,
    LabelNotFoundError,
    UnsupportedFormatError,
)
from datastore.history import LabelHistory, utc_now_iso
from datastore.ids import derive_id, validate_id, validate_tag
from datastore.imaging import check_label_geometry, label_nifti_bytes, probe_image
from datastore.imaging_hooks import header_facts, wants_dicom
from datastore.transaction import Transaction

if TYPE_CHECKING:
    from datastore.layout import StoreLayout
    from datastore.staging import StagingArea

__all__ = ["MutationsMixin"]


def _split_name(filename: str | os.PathLike[str], patterns: Sequence[str]) -> tuple[str, str]:
    path = Path(filename)
    if path.is_dir():
        return path.name, ""
    derived = derive_id(path.name, patterns)
    if derived is None:
        raise UnsupportedFormatError(
            f"{path.name!r} matches none of the store's patterns {list(patterns)}"
        )
    return derived


def _check_tags(tags: Iterable[str]) -> list[str]:
    out = []
    for tag in tags:
        if not isinstance(tag, str) or not tag or any(ord(c) < 32 for c in tag):
            raise InvalidIdError(f"image tag {tag!r} must be a non-empty printable string")
        out.append(tag)
    return out


class MutationsMixin:
    """Mutators of :class:`datastore.local.LocalDatastore` (which supplies the plumbing)."""

    _doc: dict[str, Any]
    _layout: StoreLayout
    _staging: StagingArea
    _history: LabelHistory
    _extensions: tuple[str, ...]
    _txn: Transaction | None

    if TYPE_CHECKING:
        from contextlib import AbstractContextManager

        def _mutation(self) -> AbstractContextManager[Transaction]: ...
        def _patch(self, txn: Transaction, op: str, **args: Any) -> None: ...
        def _object(self, image_id: str) -> dict[str, Any]: ...
        def _label(self, image_id: str, tag: str) -> dict[str, Any]: ...

    # -------------------------------------------------------------- metadata
    def set_name(self, name: str) -> None:
        """Set the store's name."""
        with self._mutation() as txn:
            self._patch(txn, "set_name", name=str(name))

    def set_description(self, description: str) -> None:
        """Set the store's description."""
        with self._mutation() as txn:
            self._patch(txn, "set_description", description=str(description))

    def update_image_info(self, image_id: str, info: Mapping[str, Any]) -> None:
        """Merge ``info`` into the image's info (the caller's dict is not kept or mutated).

        Raises:
            ImageNotFoundError: Unknown id.
        """
        with self._mutation() as txn:
            self._object(image_id)
            self._patch(txn, "update_image_info", image_id=image_id, info=copy.deepcopy(dict(info)))

    def update_label_info(self, label_id: str, label_tag: str, info: Mapping[str, Any]) -> None:
        """Merge ``info`` into a label's info.

        Raises:
            LabelNotFoundError: No such label.
        """
        with self._mutation() as txn:
            self._label(label_id, label_tag)
            self._patch(
                txn,
                "update_label_info",
                image_id=label_id,
                tag=label_tag,
                info=copy.deepcopy(dict(info)),
            )

    def add_tags(self, image_id: str, tags: Iterable[str]) -> list[str]:
        """Add image tags (``info["tags"]``), keeping order and uniqueness; returns them all."""
        new = _check_tags(tags)
        with self._mutation() as txn:
            current = list(self._object(image_id)["image"]["info"].get("tags", []))
            merged = current + [t for t in dict.fromkeys(new) if t not in current]
            self._patch(txn, "update_image_info", image_id=image_id, info={"tags": merged})
        return merged

    def remove_tags(self, image_id: str, tags: Iterable[str]) -> list[str]:
        """Remove image tags; returns the remaining ones."""
        drop = set(_check_tags(tags))
        with self._mutation() as txn:
            current = list(self._object(image_id)["image"]["info"].get("tags", []))
            kept = [t for t in current if t not in drop]
            self._patch(txn, "update_image_info", image_id=image_id, info={"tags": kept})
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
        with self._mutation() as txn:
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
        with self._mutation() as txn:
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
        derived_id, ext = _split_name(source, patterns)
        image_id = validate_id(image_id or derived_id)
        dest = self._layout.image_path(image_id, ext, for_write=True)
        info = copy.deepcopy(dict(image_info or {}))
        if link:
            staged, checksum = self._staging.link(source, ext), None
            info["source_path"] = str(source.absolute())
        else:
            staged, checksum = self._staging.copy_file(source, ext)
        old = self._doc["objects"].get(image_id)
        if old is not None and old["image"]["ext"] != ext:
            self._retire_image_file(txn, image_id, old)
        keep = self._trash_path(image_id, ext) if old is not None else None
        txn.replace(staged, dest, keep, self._layout.root)
        info.update(header_facts(staged, shown=source.name))
        info.update({"ts": int(time.time()), "name": image_id + ext})
        if checksum:
            info["checksum"] = checksum
        entry = {"ext": ext, "info": info}
        self._patch(txn, "set_image", image_id=image_id, entry=entry, keep_labels=True)
        return image_id

    def _trash_path(self, image_id: str, ext: str) -> Path:
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
        return self._layout.trash_dir(image_id) / stamp / f"{image_id}{ext}"

    def _retire_image_file(self, txn: Transaction, image_id: str, obj: dict[str, Any]) -> Path:
        path = self._layout.image_path(image_id, obj["image"]["ext"])
        if obj["image"]["info"].get("source_path") or path.is_symlink():
            txn.unlink(path, self._layout.root)
            return path
        keep = self._trash_path(image_id, obj["image"]["ext"])
        txn.retire(path, keep, self._layout.root)
        return keep

    def remove_image(self, image_id: str) -> None:
        """Remove an image and its labels; files go to trash and history, restorable.

        A linked image loses only its link. Raises ImageNotFoundError for an unknown id.
        """
        with self._mutation() as txn:
            obj = self._object(image_id)
            tags = list(obj["labels"])
            versions = {tag: self._retire_label(txn, image_id, tag, "removed") for tag in tags}
            keep = self._retire_image_file(txn, image_id, obj)
            record = {
                "format_version": 1,
                "image_id": image_id,
                "entry": obj["image"],
                "label_versions": versions,
                "removed_at": utc_now_iso(),
            }
            staged = self._staging.write_bytes(orjson.dumps(record), ".json")
            txn.replace(staged, keep.parent / "entry.json", None, self._layout.root)
            self._patch(txn, "remove_image", image_id=image_id)

    def restore_image(self, image_id: str) -> None:
        """Bring back the most recently removed image with its labels.

        Raises:
            ImageNotFoundError: Nothing of that id is in the trash.
        """
        with self._mutation() as txn:
            folder = self._layout.trash_dir(image_id)
            stamps = sorted(p for p in folder.glob("*/entry.json")) if folder.exists() else []
            if not stamps or image_id in self._doc["objects"]:
                raise ImageNotFoundError(f"no removed image {image_id!r} to restore")
            record = orjson.loads(stamps[-1].read_bytes())
            entry = record["entry"]
            src = stamps[-1].parent / f"{image_id}{entry['ext']}"
            staged, _ = self._staging.copy_file(src, entry["ext"])
            dest = self._layout.image_path(image_id, entry["ext"], for_write=True)
            txn.replace(staged, dest, None, self._layout.root)
            self._patch(txn, "set_image", image_id=image_id, entry=entry, keep_labels=False)
            for tag, version in record["label_versions"].items():
                self._restore_label(txn, image_id, tag, version)

    # -------------------------------------------------------------- labels
    def save_label(
        self,
        image_id: str,
        label_filename: str | os.PathLike[str] | np.ndarray,
        label_tag: str,
        label_info: Mapping[str, Any] | None = None,
        *,
        force: bool = False,
    ) -> str:
        """Save (or replace) the label of ``image_id`` under ``label_tag``.

        The replaced version (file and info) is kept in the label history. The label must fit
        its image (same canonical shape, affine within 1e-3 mm, integer dtype) unless ``force``.

        Args:
            image_id: The image.
            label_filename: The label file, or a numpy array in the canonical layout of
                ``datastore.imaging.read_image`` (``(D, H, W)``), written as NIfTI in the image
                file's own orientation and affine.
            label_tag: The tag (annotator, model, ``final``...).
            label_info: Extra info (e.g. ``label_info`` class names); copied, never mutated.
            force: Skip the geometry check.

        Returns:
            The label id (the image id, as in MONAI Label).

        Raises:
            ImageNotFoundError: Unknown image. InvalidIdError: bad tag.
            UnsupportedFormatError: The file matches no pattern.
            LabelGeometryError: The label does not fit its image.
        """
        validate_tag(label_tag)
        with self._mutation() as txn:
            obj = self._object(image_id)
            image_path = txn.source_of(self._layout.image_path(image_id, obj["image"]["ext"]))
            if isinstance(label_filename, np.ndarray):
                staged, checksum, ext = self._stage_array(label_filename, image_path)
                shown = "array"
            else:
                _, ext = _split_name(label_filename, self._extensions)
                staged, checksum = self._staging.copy_file(label_filename, ext)
                shown = Path(label_filename).name
            if not force:
                try:
                    check_label_geometry(staged, image_path)
                except (LabelGeometryError, ImageReadError) as err:
                    txn.discard_one(staged)
                    reason = str(err).replace(str(staged), shown)
                    raise type(err)(f"label {label_tag!r} of image {image_id!r}: {reason}") from err
            info = copy.deepcopy(dict(label_info or {}))
            self._put_label(txn, image_id, label_tag, staged, ext, info, checksum)
        return image_id

    def _stage_array(self, array: np.ndarray, image_path: Path) -> tuple[Path, str, str]:
        data = label_nifti_bytes(array, probe_image(image_path))
        staged = self._staging.write_bytes(data, ".nii.gz")
        return staged, f"SHA256:{hashlib.sha256(data).hexdigest()}", ".nii.gz"

    def _put_label(
        self,
        txn: Transaction,
        image_id: str,
        tag: str,
        staged: Path,
        ext: str,
        info: dict[str, Any],
        checksum: str,
    ) -> None:
        txn.staged[staged] = None  # so a failure below (e.g. staging the history record) drops it
        old = self._doc["objects"][image_id]["labels"].get(tag)
        keep = None
        if old is not None and old["ext"] != ext:
            self._retire_label(txn, image_id, tag, "replaced")
        elif old is not None:
            keep = self._keep_version(txn, image_id, tag, old, "replaced")[1]
        dest = self._layout.label_path(tag, image_id, ext, for_write=True)
        txn.replace(staged, dest, keep, self._layout.root)
        info.update(
            {
                "ts": int(time.time()),
                "saved_at": utc_now_iso(),
                "checksum": checksum,
                "name": image_id + ext,
            }
        )
        self._patch(txn, "set_label", image_id=image_id, tag=tag, entry={"ext": ext, "info": info})

    def _keep_version(
        self, txn: Transaction, image_id: str, tag: str, entry: dict[str, Any], reason: str
    ) -> tuple[int, Path]:
        reserved = txn.reserved.setdefault((tag, image_id), 0)
        version, file_path, _ = self._history.next_paths(tag, image_id, entry["ext"])
        version += reserved
        txn.reserved[(tag, image_id)] = reserved + 1
        folder = file_path.parent
        file_path = folder / f"v{version:04d}{entry['ext']}"
        record = self._history.make_record(version, entry, reason)
        txn.replace(
            self._staging.write_bytes(record, ".json"),
            folder / f"v{version:04d}.json",
            None,
            self._layout.root,
        )
        return version, file_path

    def _retire_label(self, txn: Transaction, image_id: str, tag: str, reason: str) -> int:
        entry = self._doc["objects"][image_id]["labels"][tag]
        version, keep = self._keep_version(txn, image_id, tag, entry, reason)
        txn.retire(self._layout.label_path(tag, image_id, entry["ext"]), keep, self._layout.root)
        self._patch(txn, "remove_label", image_id=image_id, tag=tag)
        return version

    def remove_label(self, label_id: str, label_tag: str) -> None:
        """Remove a label; its file and info go to the label history (restorable).

        Raises:
            LabelNotFoundError: No such label.
        """
        with self._mutation() as txn:
            self._label(label_id, label_tag)
            self._retire_label(txn, label_id, label_tag, "removed")

    def restore_label(self, image_id: str, tag: str, version: int) -> None:
        """Make a kept version current again; the replaced one is kept in turn.

        Raises:
            LabelNotFoundError: No such version.
        """
        with self._mutation() as txn:
            self._object(image_id)
            self._restore_label(txn, image_id, tag, version)

    def _restore_label(self, txn: Transaction, image_id: str, tag: str, version: int) -> None:
        try:
            path, record = self._history.version_file(tag, image_id, version)
        except FileNotFoundError as err:
            raise LabelNotFoundError(
                f"label {tag!r} of image {image_id!r} has no version {version}"
            ) from err
        staged, checksum = self._staging.copy_file(path, record["ext"])
        info = dict(record["info"], restored_from=version)
        self._put_label(txn, image_id, tag, staged, record["ext"], info, checksum)

    def promote_label(
        self, image_id: str, from_tag: str, to_tag: str = "final", approved_by: str | None = None
    ) -> None:
        """Copy an annotator's label to the reference tag, recording who approved it when.

        Raises:
            LabelNotFoundError: ``from_tag`` has no label for the image.
        """
        validate_tag(to_tag)
        with self._mutation() as txn:
            label = self._label(image_id, from_tag)
            src = self._layout.label_path(from_tag, image_id, label["ext"])
            staged, checksum = self._staging.copy_file(src, label["ext"])
            info = copy.deepcopy(label["info"])
            info.update(
                {
                    "approved_by": approved_by,
                    "approved_at": utc_now_iso(),
                    "promoted_from": from_tag,
                }
            )
            self._put_label(txn, image_id, to_tag, staged, label["ext"], info, checksum)
