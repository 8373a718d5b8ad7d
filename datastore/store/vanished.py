"""What a refresh remembers of images whose files vanished: their entries, kept in the trash.

A refresh drops an image whose file (or series folder) is gone, but never its information: the
image's entry and its labels' entries are written to ``.medstore/trash/<id>/<stamp>/entry.json``
(marked ``"vanished": true``) in the same transaction, and a later refresh that finds a file of the
same id and extension again gives the image and its labels their old info back.

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
import os
from typing import Any

import orjson

from ..errors import InvalidIdError
from ..timestamps import compact_utc, iso_utc
from .image_versions import image_version
from .scan import DiskState
from .session import StoreSession
from .transaction import Transaction

__all__ = ["VanishedImages", "latest_record"]

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
    try:
        folder = session.layout.trash_dir(image_id)
    except InvalidIdError:
        return None
    records = sorted(folder.glob(f"*/{RECORD_NAME}")) if folder.is_dir() else []
    for path in reversed(records):
        record = orjson.loads(path.read_bytes())
        if version is None or image_version(image_id, record["entry"]["info"]) == version:
            return path, record
    return None


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
            kept = set(os.listdir(self._session.layout.trash_root))
        except OSError:
            return {}
        out: dict[str, dict[str, Any]] = {}
        for image_id, ext in state.images.items():
            if image_id in objects or image_id not in kept:
                continue
            found = latest_record(self._session, image_id)
            if found is None:
                continue
            record = found[1]
            if record.get("vanished") and record["entry"]["ext"] == ext:
                out[image_id] = record
        return out
