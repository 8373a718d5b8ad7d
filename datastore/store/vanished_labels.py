"""What a refresh remembers of labels whose files vanished while their image stayed.

The manifest never names a missing file, so a refresh drops a label whose file is gone, but never
its information: in the same transaction the label's entry (its ``ext`` and ``info``:
``label_info``, who drew it, checksum...) is written to
``.medstore/trash/<image id>/<stamp>/label-<tag>.json``, marked ``"vanished": true`` with the
version of the image it belonged to, and a warning names that record. A later refresh that finds
a label file of the same tag and extension for the same image version gives the label its info
back, when the recorded SHA-256 is that file's (another file copied under the name starts with no
info, and the entry stays in the trash; an entry with no checksum cannot be compared). A label
file found for a newer image of a reused id starts afresh (its info belonged to the old image).

Examples:
    >>> import tempfile, pathlib
    >>> from medstore.datastore.store.layout import StoreLayout
    >>> from medstore.datastore.store.scan import DiskState
    >>> session = StoreSession(StoreLayout.at(pathlib.Path(tempfile.mkdtemp())))
    >>> VanishedLabels(session).recall(DiskState(images={"a": ".nii"}))
    {}
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from .. import nofollow
from ..errors import InvalidIdError
from ..timestamps import compact_utc, iso_utc
from .image_versions import image_version
from .json_values import dump_json, load_json
from .scan import DiskState
from .session import StoreSession
from .staging import file_checksum
from .transaction import Transaction

__all__ = ["VanishedLabels", "record_name"]

logger = logging.getLogger(__name__)


def record_name(tag: str) -> str:
    """The file name of a vanished label's record in its image's trash folder.

    Example:
        >>> record_name("final")
        'label-final.json'
    """
    return f"label-{tag}.json"


class VanishedLabels:
    """Keep and recall the entries of labels whose files vanished from the disk.

    Args:
        session: The store's session.
    """

    def __init__(self, session: StoreSession) -> None:
        self._session = session

    def keep(self, txn: Transaction, state: DiskState) -> None:
        """Write a trash record for every tracked label of a found image the scan did not find.

        Args:
            txn: The refresh's transaction (the records land with its manifest write).
            state: What the scan found.
        """
        session = self._session
        objects: dict[str, Any] = session.doc["objects"]
        for image_id in sorted(state.images.keys() & objects.keys()):
            obj = objects[image_id]
            gone = sorted(t for t in obj["labels"] if image_id not in state.labels.get(t, {}))
            if not gone:
                continue
            try:
                folder = session.layout.trash_dir(image_id) / compact_utc()
            except InvalidIdError:
                logger.warning("labels of %r vanished; the id cannot name a trash folder", image_id)
                continue
            version = image_version(image_id, obj["image"]["info"])
            for tag in gone:
                record = {
                    "format_version": 1,
                    "image_id": image_id,
                    "tag": tag,
                    "image_version": version,
                    "entry": obj["labels"][tag],
                    "vanished": True,
                    "removed_at": iso_utc(),
                }
                staged = session.staging.write_bytes(dump_json(record), ".json")
                txn.replace(staged, folder / record_name(tag), None, session.layout.root)
                logger.warning(
                    "label %s/%s%s is gone from the disk; its info is kept in %s",
                    tag,
                    image_id,
                    obj["labels"][tag]["ext"],
                    session.layout.relative(folder / record_name(tag)),
                )

    def recall(self, state: DiskState) -> dict[str, dict[str, Any]]:
        """The remembered entries of untracked label files found again, for tracked images.

        Args:
            state: What the scan found.

        Returns:
            ``{image_id: {"labels": {tag: entry}}}`` (the shape of an image's trash record) for
            the labels to give their old info back.
        """
        session = self._session
        objects = session.doc["objects"]
        try:
            kept = set(nofollow.listdir(session.layout.trash_root))  # a planted link: none
        except OSError:
            return {}
        out: dict[str, dict[str, Any]] = {}
        for tag, found in state.labels.items():
            for image_id, ext in found.items():
                obj = objects.get(image_id)
                if obj is None or tag in obj["labels"] or image_id not in kept:
                    continue
                version = image_version(image_id, obj["image"]["info"])
                path = session.layout.label_path(tag, image_id, ext)
                fitting = (
                    r["entry"]
                    for r in _records(session.layout.trash_dir(image_id), tag)
                    if r["entry"].get("ext") == ext and r.get("image_version") == version
                )
                entry = _own_entry(fitting, path)
                if entry is not None:
                    out.setdefault(image_id, {"labels": {}})["labels"][tag] = entry
        return out


def _records(folder: Path, tag: str) -> Iterator[dict[str, Any]]:
    """The vanished-label records of ``tag`` in an image's trash folder, newest first."""
    try:
        stamps = sorted(nofollow.listdir(folder), reverse=True)
    except OSError:
        return
    for stamp in stamps:
        try:
            record = load_json(nofollow.read_bytes(folder / stamp / record_name(tag)))
        except (OSError, ValueError):
            continue
        if isinstance(record, dict) and isinstance(record.get("entry"), dict):
            yield record


def _own_entry(entries: Iterable[dict[str, Any]], path: Path) -> dict[str, Any] | None:
    """The entry that belongs to the file at ``path``: the newest whose recorded SHA-256 is the
    file's; else the newest that recorded none (nothing to compare). An entry whose checksum
    differs belonged to another file and is never given to this one."""
    unknown: dict[str, Any] | None = None
    actual: str | None = None
    for entry in entries:
        recorded = entry.get("info", {}).get("checksum")
        if not isinstance(recorded, str) or not recorded.startswith("SHA256:"):
            unknown = unknown or entry
            continue
        if actual is None:
            try:
                actual = file_checksum(path)
            except OSError:
                return None
        if recorded == actual:
            return entry
    return unknown
