"""The image writers of ``LocalDatastore``: metadata, tags and images.

Each call is one transaction; label writers are in :mod:`medstore.datastore.store.label_writes`,
the image trash (removal, restore) in :mod:`medstore.datastore.store.image_trash`.

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
import logging
import os
import stat
import time
from collections.abc import Iterable, Mapping, Sized
from pathlib import Path
from typing import Any

from tqdm import tqdm

from ..errors import (
    ImageReadError,
    InvalidIdError,
    UnsupportedFormatError,
)
from ..ids import split_source_name, validate_id
from .image_trash import ImageTrash
from .image_versions import VERSION_KEY, new_version
from .imaging_hooks import header_facts, wants_dicom, why_misfit
from .json_values import check_values
from .label_writes import LabelWriter
from .nhdr_data import DetachedData
from .session import StoreSession
from .transaction import Transaction

__all__ = ["ImageWriter", "source_kind"]

logger = logging.getLogger(__name__)


def _check_tags(tags: Iterable[str]) -> list[str]:
    out = []
    for tag in tags:
        if not isinstance(tag, str) or not tag or any(ord(c) < 32 for c in tag):
            raise InvalidIdError(f"image tag {tag!r} must be a non-empty printable string")
        out.append(tag)
    return out


def source_kind(source: Path) -> str:
    """``"dir"`` or ``"file"``; anything else (FIFO, device, socket) is refused before opening.

    Raises:
        FileNotFoundError: ``source`` does not exist.
        ImageReadError: ``source`` is neither a regular file nor a folder.
    """
    try:
        mode = os.stat(source).st_mode
    except FileNotFoundError as err:
        raise FileNotFoundError(f"image file {source} does not exist") from err
    if stat.S_ISDIR(mode):
        for current, _, files in os.walk(source):
            for name in files:
                if not os.path.isfile(os.path.join(current, name)):
                    raise ImageReadError(
                        f"{source} holds {name!r}, which is not a regular file (a FIFO, device or "
                        "socket); a series folder is copied whole, so it cannot be added"
                    )
        return "dir"
    if not stat.S_ISREG(mode):
        raise ImageReadError(
            f"{source} is not a regular file (a FIFO, device or socket); only image files and "
            "DICOM series folders can be added"
        )
    return "file"


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
        self._detached = DetachedData(session)  # a .nhdr's data file travels with it
        self._trash = ImageTrash(session, labels, self._detached)

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

        The image's version id (``medstore.image_version``) is the store's: a value given for it
        is ignored.

        Raises:
            ImageNotFoundError: Unknown id. InvalidValueError: a NaN, infinity or too deep a value.
        """
        check_values(info, where="image info")
        merged = {k: copy.deepcopy(v) for k, v in info.items() if k != VERSION_KEY}
        with self._session.mutation() as txn:
            self._session.image_entry(image_id)
            self._session.patch(txn, "update_image_info", image_id=image_id, info=merged)

    def update_label_info(self, label_id: str, label_tag: str, info: Mapping[str, Any]) -> None:
        """Merge ``info`` into a label's info.

        Raises:
            LabelNotFoundError: No such label. InvalidValueError: NaN, infinity, too deep.
        """
        check_values(info, where="label info")
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

        Re-adding an existing id replaces the image (MONAI Label's behaviour): the old file and
        its entry go to the trash, where :meth:`restore_image` finds them; its labels are kept,
        and each one that does not fit the new image is reported (a warning). Every addition
        gets a new image version id (``info["medstore.image_version"]``): annotations, kept
        label versions and splits of an earlier image with this id do not carry over.

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
            InvalidValueError: ``image_info`` holds a NaN, an infinity or too deep a value.
        """
        check_values(image_info or {}, where="image info")
        with self._session.mutation() as txn:
            return self._add_image(txn, image_id, image_filename, image_info, link=link)

    def add_images(
        self,
        sources: Iterable[str | os.PathLike[str] | tuple[str, str | os.PathLike[str]]],
        *,
        info: Mapping[str, Any] | None = None,
        link: bool = False,
        progress: bool = False,
    ) -> list[str]:
        """Add many images in one transaction and one manifest write (O(N)).

        Args:
            sources: Paths (id derived) or ``(image_id, path)`` pairs.
            info: Info given to every image.
            link: Symlink instead of copying.
            progress: Show a progress bar on stderr (``tqdm``: images done, rate, time left).

        Returns:
            The ids, in order.

        Raises:
            InvalidIdError: Two files give one id (``case.nrrd`` and ``case.seg.nrrd``); nothing
                is added.
        """
        check_values(info or {}, where="image info")
        ids: list[str] = []
        derived: dict[str, Path] = {}  # id -> the file it came from, for ids taken from names
        total = len(sources) if isinstance(sources, Sized) else None
        bar = tqdm(sources, total=total, unit="image", desc="add_images", disable=not progress)
        with self._session.mutation() as txn, bar:
            for source in bar:
                image_id, path = source if isinstance(source, tuple) else ("", source)
                ids.append(self._add_image(txn, image_id, path, info, link=link))
                if not image_id and derived.setdefault(ids[-1], Path(path)) != Path(path):
                    raise InvalidIdError(
                        f"{derived[ids[-1]].name} and {Path(path).name} both give image id "
                        f"{ids[-1]!r}; add one of them under another id"
                    )
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
        patterns = self._extensions
        if source_kind(source) == "dir" and not wants_dicom(patterns):
            raise UnsupportedFormatError(f"{source.name!r} is a folder; DICOM is not enabled")
        derived_id, ext = split_source_name(source, patterns)
        image_id = validate_id(image_id or derived_id)
        self._session.check_new_names(image_id=image_id)
        dest = self._session.layout.image_path(image_id, ext, for_write=True)
        self._check_owner(image_id, ext, dest)
        info = copy.deepcopy(dict(image_info or {}))
        staging = self._session.staging
        if link:
            staged, checksum = staging.link(source, ext), None
            info["source_path"] = str(source.absolute())
        else:
            staged, checksum = staging.copy_file(source, ext)
        old = self._session.doc["objects"].get(image_id)
        try:
            data = [] if link else self._detached.stage(source, image_id, ext, old=old)
            info.update(header_facts(source if data else staged, shown=source.name))
        except BaseException:
            staging.discard(staged)
            raise
        keep = None
        if old is not None:
            keep = self._trash.keep_replaced(txn, image_id, old, new_ext=ext)
            self._warn_misfits(image_id, old, staged)
        txn.replace(staged, dest, keep, self._session.layout.root)
        self._detached.place(txn, data)
        info.update({"ts": int(time.time()), "name": image_id + ext, VERSION_KEY: new_version()})
        if checksum:
            info["checksum"] = checksum
        entry = {"ext": ext, "info": info}
        self._session.patch(txn, "set_image", image_id=image_id, entry=entry, keep_labels=True)
        return image_id

    def _check_owner(self, image_id: str, ext: str, dest: Path) -> None:
        """Refuse a destination that is another id's file or series folder.

        Raises:
            InvalidIdError: ``dest`` belongs to another image (e.g. a series folder named
                ``scan.nii.gz`` for id ``scan`` with ``.nii.gz``), is a folder not this id's, the
                manifest, or a file no image owns yet (dropped in, not indexed).
        """
        if not os.path.lexists(dest):
            return
        objects = self._session.doc["objects"]
        own = objects.get(image_id)
        if own is not None and own["image"]["ext"] == ext:
            return
        name = image_id + ext
        for other, obj in objects.items():
            if other != image_id and other + obj["image"]["ext"] == name:
                raise InvalidIdError(
                    f"image id {image_id!r} with {ext or 'a series folder'} would be stored at "
                    f"{name}, which is the image of id {other!r}; choose another id"
                )
        if dest.is_dir() and not dest.is_symlink():
            raise InvalidIdError(
                f"image id {image_id!r} would be stored at {name}, which is a folder in the store"
            )
        if (header := self._detached.owner(name)) is not None:
            raise InvalidIdError(
                f"image id {image_id!r} would be stored at {name}, the data file of image "
                f"{header!r}; choose another id"
            )
        if _same_file(dest, self._session.layout.manifest):
            raise InvalidIdError(f"image id {image_id!r} would be stored at the manifest {name}")
        raise InvalidIdError(  # a file dropped in, not indexed yet: never written over
            f"image id {image_id!r} would be stored at {name}, a file in the store that no "
            "image owns yet; refresh to index it, or choose another id"
        )

    def _warn_misfits(self, image_id: str, old: dict[str, Any], image: Path) -> list[str]:
        """Warn about the labels (kept) that do not fit the image replacing ``old``."""
        misfits = []
        for tag, label in sorted(old["labels"].items()):
            path = self._session.layout.label_path(tag, image_id, label["ext"])
            reason = why_misfit(path, image)
            if reason is not None:
                logger.warning(
                    "label %s/%s no longer fits the image replacing %s: %s",
                    tag,
                    image_id,
                    image_id,
                    reason.replace(str(image), f"{image_id}{old['image']['ext']}"),
                )
                misfits.append(tag)
        return misfits

    def remove_image(self, image_id: str) -> None:
        """Remove an image and its labels (see :meth:`.image_trash.ImageTrash.remove`)."""
        self._trash.remove(image_id)

    def restore_image(self, image_id: str, *, image_version: str | None = None) -> None:
        """Bring back a removed or replaced image (see :meth:`.image_trash.ImageTrash.restore`)."""
        self._trash.restore(image_id, image_version=image_version)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samestat(os.lstat(a), os.lstat(b))
    except OSError:
        return False
