"""The label writers of ``LocalDatastore``: save, replace, remove, restore, promote.

Every replaced or removed label version is kept in the label history; each call
is one transaction.

Examples:
    >>> import tempfile, pathlib, numpy as np, nibabel as nib
    >>> from medstore.datastore import LocalDatastore
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> nib.save(nib.Nifti1Image(np.zeros((4, 4, 4), np.int16), np.eye(4)), tmp / "ct.nii.gz")
    >>> store = LocalDatastore(tmp / "store")
    >>> store.add_image("case", str(tmp / "ct.nii.gz"))
    'case'
    >>> store.save_label("case", np.ones((4, 4, 4), np.uint8), "alice")
    'case'
    >>> store.promote_label("case", "alice", approved_by="bob")
    >>> sorted(store.get_labels_by_image_id("case"))
    ['alice', 'final']
"""

from __future__ import annotations

import copy
import hashlib
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .. import nofollow
from ..errors import ImageReadError, LabelGeometryError, LabelNotFoundError
from ..ids import split_source_name, validate_tag
from ..imaging import check_label_geometry, label_nifti_bytes, probe_image
from ..imaging.seg_extent import padded_seg_nrrd
from ..imaging.seg_nrrd import (
    Segmentation,
    is_segmentation_name,
    label_info_of,
    segmentation_bytes,
)
from ..timestamps import iso_utc
from .history import LabelHistory
from .image_versions import belongs, image_version, version_stamp
from .json_values import check_values
from .nhdr_data import DetachedData
from .session import StoreSession
from .transaction import Transaction

__all__ = ["LabelWriter"]


class LabelWriter:
    """The label writers of :class:`~medstore.datastore.LocalDatastore`, one transaction each.

    Args:
        session: The store's session (lock, document, transactions).
        history: Where replaced and removed versions are kept.
        extensions: The store's file-name patterns.
    """

    def __init__(
        self, session: StoreSession, history: LabelHistory, extensions: tuple[str, ...]
    ) -> None:
        self._session = session
        self._history = history
        self._extensions = extensions

    def save_label(
        self,
        image_id: str,
        label_filename: str | os.PathLike[str] | np.ndarray | Segmentation,
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
                ``imaging.read_image`` (``(D, H, W)``), written as NIfTI in the image
                file's own orientation and affine, or a ``Segmentation`` (written as a Slicer
                ``.seg.nrrd`` with its segments' names and colours; they become ``label_info``).
            label_tag: The tag (annotator, model, ``final``...).
            label_info: Extra info (e.g. ``label_info`` class names); copied, never mutated.
            force: Skip the geometry check.

        Returns:
            The label id (the image id, as in MONAI Label).

        Raises:
            ImageNotFoundError: Unknown image. InvalidIdError: bad tag.
            UnsupportedFormatError: The file matches no pattern.
            LabelGeometryError: The label does not fit its image.
            InvalidValueError: ``label_info`` holds a NaN, an infinity or too deep a value.
        """
        self._session.check_new_names(tag=validate_tag(label_tag))
        check_values(label_info or {}, where="label info")
        session = self._session
        with session.mutation() as txn:
            obj = session.image_entry(image_id)
            stored = session.layout.image_path(image_id, obj["image"]["ext"])
            with DetachedData(session).readable(txn, stored) as image_path:
                self._stage_checked(
                    txn, image_id, label_filename, label_tag, label_info, image_path, force=force
                )
        return image_id

    def _stage_checked(
        self,
        txn: Transaction,
        image_id: str,
        label_filename: str | os.PathLike[str] | np.ndarray | Segmentation,
        label_tag: str,
        label_info: Mapping[str, Any] | None,
        image_path: Path,
        *,
        force: bool,
    ) -> None:
        """Stage the label, check it fits ``image_path`` (unless ``force``) and record it."""
        if isinstance(label_filename, np.ndarray | Segmentation):
            staged, checksum, ext = self._stage_array(label_filename, image_path)
            shown = "array"
        else:
            _, ext = split_source_name(label_filename, self._extensions)
            staged, checksum = self._session.staging.copy_file(label_filename, ext)
            shown = Path(label_filename).name
            if is_segmentation_name(ext) and not force:  # Slicer saves some cropped: padded
                staged, checksum = self._pad_cropped(txn, staged, checksum, image_path, shown)
        if not force:
            what = f"label {label_tag!r} of image {image_id!r}"
            self._check_fits(txn, staged, image_path, shown=shown, what=what)
        info = copy.deepcopy(dict(label_info or {}))
        if is_segmentation_name(ext) and (names := label_info_of(staged)):
            info.setdefault("label_info", names)  # Slicer's segment names: the class names
        self._put_label(txn, image_id, label_tag, staged, ext, info, checksum)

    def _check_fits(
        self, txn: Transaction, staged: Path, image_path: Path, *, shown: str, what: str
    ) -> None:
        """Refuse (dropping ``staged``) a label that does not fit its image.

        Raises:
            LabelGeometryError: A mismatch (both shapes named). ImageReadError: Unreadable.
        """
        try:
            check_label_geometry(staged, image_path)
        except (LabelGeometryError, ImageReadError) as err:
            txn.discard_one(staged)
            reason = str(err).replace(str(staged), shown)
            raise type(err)(f"{what}: {reason}") from err

    def _pad_cropped(
        self, txn: Transaction, staged: Path, checksum: str, image_path: Path, shown: str
    ) -> tuple[Path, str]:
        """A ``.seg.nrrd`` saved cropped on its image's grid, padded (else kept as it is)."""
        try:
            data = padded_seg_nrrd(staged, image_path, shown=shown)
        except BaseException:
            txn.discard_one(staged)
            raise
        if data is None:
            return staged, checksum
        txn.discard_one(staged)
        padded = self._session.staging.write_bytes(data, ".seg.nrrd")
        return padded, f"SHA256:{hashlib.sha256(data).hexdigest()}"

    def _stage_array(
        self, array: np.ndarray | Segmentation, image_path: Path
    ) -> tuple[Path, str, str]:
        if isinstance(array, Segmentation):
            data, ext = segmentation_bytes(array, probe_image(image_path)), ".seg.nrrd"
        else:
            data, ext = label_nifti_bytes(array, probe_image(image_path)), ".nii.gz"
        staged = self._session.staging.write_bytes(data, ext)
        return staged, f"SHA256:{hashlib.sha256(data).hexdigest()}", ext

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
        old = self._session.doc["objects"][image_id]["labels"].get(tag)
        keep = None
        if old is not None and old["ext"] != ext:
            self.retire(txn, image_id, tag, "replaced")
        elif old is not None:
            keep = self._keep_version(txn, image_id, tag, old, "replaced")[1]
        dest = self._session.layout.label_path(tag, image_id, ext, for_write=True)
        if keep is None and nofollow.lexists(dest):  # a file dropped in, not indexed yet
            untracked = {"ext": ext, "info": {}}
            keep = self._keep_version(txn, image_id, tag, untracked, "replaced")[1]
        txn.replace(staged, dest, keep, self._session.layout.root)
        info.update(
            {
                "ts": int(time.time()),
                "saved_at": iso_utc(),
                "checksum": checksum,
                "name": image_id + ext,
            }
        )
        self._session.patch(
            txn, "set_label", image_id=image_id, tag=tag, entry={"ext": ext, "info": info}
        )

    def _keep_version(
        self, txn: Transaction, image_id: str, tag: str, entry: dict[str, Any], reason: str
    ) -> tuple[int, Path]:
        reserved = txn.reserved.setdefault((tag, image_id), 0)
        version, file_path, _ = self._history.next_paths(tag, image_id, entry["ext"])
        version += reserved
        txn.reserved[(tag, image_id)] = reserved + 1
        folder = file_path.parent
        file_path = folder / f"v{version:04d}{entry['ext']}"
        image_info = self._session.doc["objects"][image_id]["image"]["info"]
        record = self._history.make_record(
            version, entry, reason, image_version=version_stamp(image_info)
        )
        txn.replace(
            self._session.staging.write_bytes(record, ".json"),
            folder / f"v{version:04d}.json",
            None,
            self._session.layout.root,
        )
        return version, file_path

    def retire(self, txn: Transaction, image_id: str, tag: str, reason: str) -> int:
        """In ``txn``: move the current label to the history and drop it from the manifest.

        Args:
            txn: The open transaction.
            image_id: The image.
            tag: The label's tag.
            reason: Kept in the history record (``"removed"``, ``"replaced"``).

        Returns:
            The version number it is kept as.
        """
        entry = self._session.doc["objects"][image_id]["labels"][tag]
        version, keep = self._keep_version(txn, image_id, tag, entry, reason)
        txn.retire(
            self._session.layout.label_path(tag, image_id, entry["ext"]),
            keep,
            self._session.layout.root,
        )
        self._session.patch(txn, "remove_label", image_id=image_id, tag=tag)
        return version

    def remove_label(self, label_id: str, label_tag: str) -> None:
        """Remove a label; its file and info go to the label history (restorable).

        Raises:
            LabelNotFoundError: No such label.
        """
        with self._session.mutation() as txn:
            self._session.label_entry(label_id, label_tag)
            self.retire(txn, label_id, label_tag, "removed")

    def restore_label(self, image_id: str, tag: str, version: int) -> None:
        """Make a kept version current again; the replaced one is kept in turn.

        Only a version kept from the current image is restored: one kept from an earlier image
        with this id (removed, then the id reused) is not this image's. It must also fit the
        image (shape and affine within 1e-3 mm).

        Raises:
            LabelNotFoundError: No such version, or it was kept from an earlier image.
            LabelGeometryError: It does not fit the image (both shapes named).
        """
        with self._session.mutation() as txn:
            obj = self._session.image_entry(image_id)
            current = image_version(image_id, obj["image"]["info"])
            self.restore_version(txn, image_id, tag, version, image_version=current)

    def restore_version(
        self,
        txn: Transaction,
        image_id: str,
        tag: str,
        version: int,
        *,
        image_version: str | None = None,
    ) -> None:
        """In ``txn``: make a kept version of a label current again.

        Args:
            txn: The open transaction.
            image_id: The image.
            tag: The label's tag.
            version: The kept version's number.
            image_version: The current image's version: a kept version of another image is
                refused, and the label must fit the image. ``None`` (restoring an image with
                the labels it was removed with) checks neither.

        Raises:
            LabelNotFoundError: No such version, or it was kept from another image.
            LabelGeometryError: It does not fit the image.
        """
        try:
            path, record = self._history.version_file(tag, image_id, version)
        except FileNotFoundError as err:
            raise LabelNotFoundError(
                f"label {tag!r} of image {image_id!r} has no version {version}"
            ) from err
        kept_from = record.get("image_version")
        if image_version is not None and not belongs(kept_from, image_version):
            raise LabelNotFoundError(
                f"version {version} of label {tag!r} was kept from an earlier image with id "
                f"{image_id!r} (image version {kept_from}), not the current one; "
                "label_history(..., earlier_images=True) lists it with its path, and "
                "save_label with that path attaches it after checking it fits"
            )
        staged, checksum = self._session.staging.copy_file(path, record["ext"])
        if image_version is not None:
            ext = self._session.image_entry(image_id)["image"]["ext"]
            image_path = txn.source_of(self._session.layout.image_path(image_id, ext))
            shown = f"v{version:04d}{record['ext']}"
            what = f"version {version} of label {tag!r} of image {image_id!r}"
            self._check_fits(txn, staged, image_path, shown=shown, what=what)
        info = dict(record["info"], restored_from=version)
        self._put_label(txn, image_id, tag, staged, record["ext"], info, checksum)

    def promote_label(
        self, image_id: str, from_tag: str, to_tag: str = "final", approved_by: str | None = None
    ) -> None:
        """Copy an annotator's label to the reference tag, recording who approved it when.

        Raises:
            LabelNotFoundError: ``from_tag`` has no label for the image.
            InvalidIdError: ``to_tag`` cannot be stored on this filesystem beside the others.
        """
        self._session.check_new_names(tag=validate_tag(to_tag))
        with self._session.mutation() as txn:
            label = self._session.label_entry(image_id, from_tag)
            src = self._session.layout.label_path(from_tag, image_id, label["ext"])
            staged, checksum = self._session.staging.copy_file(src, label["ext"])
            info = copy.deepcopy(label["info"])
            info.update(
                {
                    "approved_by": approved_by,
                    "approved_at": iso_utc(),
                    "promoted_from": from_tag,
                }
            )
            self._put_label(txn, image_id, to_tag, staged, label["ext"], info, checksum)
