"""What a refresh remembers of images whose files vanished: their entries, kept in the trash.

A refresh drops an image whose file (or series folder) is gone, but never its information: the
image's entry and its labels' entries are written to ``.medstore/trash/<id>/<stamp>/entry.json``
(marked ``"vanished": true``) in the same transaction, and a later refresh that finds a file of the
same id and extension again gives the image and its labels their old info back, unless the
recorded checksum shows it is another image.

Examples:
    >>> import tempfile, pathlib
    >>> from medstore.datastore.store.layout import StoreLayout
    >>> from medstore.datastore.store.scan import DiskState
    >>> session = StoreSession(StoreLayout.at(pathlib.Path(tempfile.mkdtemp())))
    >>> VanishedImages(session).recall(DiskState(images={"a": ".nii"}))
    {}
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from .. import nofollow
from ..errors import InvalidIdError
from ..timestamps import compact_utc, iso_utc
from .image_versions import image_version
from .scan import DiskState
from .session import StoreSession
from .staging import file_checksum
from .transaction import Transaction

__all__ = ["VanishedImages", "latest_record", "trash_records"]

logger = logging.getLogger(__name__)

RECORD_NAME = "entry.json"


def latest_record(
    session: StoreSession, image_id: str, *, version: str | None = None
) -> tuple[Any, dict[str, Any]] | None:
    """The newest trash record of ``image_id`` as ``(path, record)``, or ``None``.

    Args:
        session: The store's session.
        image_id: The id.
        version: Only a record of this image version (see :mod:`.image_versions`).

    Returns:
        The record's path and content; ``None`` when the trash holds nothing of that id.
    """
    for path, record in trash_records(session, image_id):
        if version is None or image_version(image_id, record["entry"]["info"]) == version:
            return path, record
    return None


def trash_records(session: StoreSession, image_id: str) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Every trash record of ``image_id`` as ``(path, record)``, newest first."""
    try:
        folder = session.layout.trash_dir(image_id)
    except InvalidIdError:
        return
    try:  # walked without following links: a trash folder planted as a link is refused
        stamps = sorted(nofollow.listdir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return
    for stamp in reversed(stamps):
        path = folder / stamp / RECORD_NAME
        try:
            raw = nofollow.read_bytes(path)
        except (FileNotFoundError, NotADirectoryError):
            continue
        yield path, orjson.loads(raw)


class VanishedImages:
    """Keep and recall the entries of images whose files vanished from the disk.

    Args:
        session: The store's session.
    """

    def __init__(self, session: StoreSession) -> None:
        self._session = session

    def keep(self, txn: Transaction, state: DiskState) -> None:
        """Write a trash record for every tracked image the scan no longer found.

        Args:
            txn: The refresh's transaction (the records land with its manifest write).
            state: What the scan found.
        """
        session = self._session
        objects: dict[str, Any] = session.doc["objects"]
        for image_id in sorted(objects.keys() - state.images.keys()):
            try:
                folder = session.layout.trash_dir(image_id) / compact_utc()
            except InvalidIdError:
                logger.warning("image %r vanished; its id cannot name a trash folder", image_id)
                continue
            obj = objects[image_id]
            record = {
                "format_version": 1,
                "image_id": image_id,
                "entry": obj["image"],
                "labels": obj["labels"],
                "label_versions": {},
                "vanished": True,
                "removed_at": iso_utc(),
            }
            staged = session.staging.write_bytes(orjson.dumps(record), ".json")
            txn.replace(staged, folder / RECORD_NAME, None, session.layout.root)
            logger.warning(
                "image %s%s is gone from the disk; its info is kept in %s",
                image_id,
                obj["image"]["ext"],
                session.layout.relative(folder),
            )

    def recall(self, state: DiskState) -> dict[str, dict[str, Any]]:
        """The remembered entries of untracked images found again with their old extension.

        Args:
            state: What the scan found.

        Returns:
            ``{image_id: record}`` for the images to give their old info back.
        """
        objects = self._session.doc["objects"]
        try:
            kept = set(nofollow.listdir(self._session.layout.trash_root))
        except OSError:
            return {}
        out: dict[str, dict[str, Any]] = {}
        for image_id, ext in state.images.items():
            if image_id in objects or image_id not in kept:
                continue
            for _, record in trash_records(self._session, image_id):
                if not record.get("vanished") or record["entry"]["ext"] != ext:
                    break  # removed or replaced since: the file found is a new image
                if self._same_content(image_id, ext, record["entry"]["info"]):
                    out[image_id] = record  # the newest vanished entry of this very file
                    break
        return out

    def _same_content(self, image_id: str, ext: str, info: dict[str, Any]) -> bool:
        """False when the recorded checksum shows the file found under the id is another image.

        Another image gets nothing of the vanished one (its info, image version, annotations);
        the vanished one's record stays in the trash.
        """
        recorded = info.get("checksum")
        if not isinstance(recorded, str) or not recorded.startswith("SHA256:"):
            return True  # nothing to compare (a linked or indexed image): same id, same image
        try:
            return file_checksum(self._session.layout.image_path(image_id, ext)) == recorded
        except OSError:
            return True
