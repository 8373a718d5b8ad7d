"""Put back medstore's acknowledged entries that another program overwrote with a stale copy.

MONAI Label's own ``LocalDatastore`` keeps the whole manifest in memory and rewrites
``datastore_v2.json`` from that copy at each of its saves (truncate, then write). When medstore
changed the store in between, that copy is stale: the rewrite silently drops or reverts entries
medstore had acknowledged (an image's info and tags, a label's entry and info).

Every medstore change is therefore also appended to ``.medstore/acknowledged.log`` once it is
committed and before the caller is answered (one JSON line per transaction, made durable with
``fdatasync``; only committed changes are ever recorded, and a failed append is logged without
failing the committed save): for each changed part of an object (an image entry, or one label
entry by tag) the value it had before and the value medstore wrote. Whenever medstore next takes
the store lock after the manifest changed on disk (or first takes it in a process),
:meth:`AckLog.repair` compares each recorded part with the manifest as it now is, by this rule:

- the part equals medstore's value: nothing to do;
- the part equals a value medstore itself replaced (the stale copy brought it back) and the
  files agree with medstore's value (its image file exists, its label file exists with the
  checksum medstore recorded; for a removal, the file is gone):
  medstore's value is written again;
- anything else is a deliberate later change by another program (MONAI Label saved a new label,
  updated info, or deleted the label and its file through its API): it is kept, and medstore's
  claim on that part is forgotten.

The log keeps the last :attr:`AckLog.capacity` parts (a stale copy older than that many later
changes can no longer be told apart, and is kept as it is).

Examples:
    >>> import tempfile, pathlib
    >>> from medstore.datastore.store.layout import StoreLayout
    >>> layout = StoreLayout(pathlib.Path(tempfile.mkdtemp()))
    >>> log = AckLog(layout)
    >>> before = {"a": None}
    >>> doc = {"objects": {"a": {"image": {"ext": ".nii.gz", "info": {"x": 1}}, "labels": {}}}}
    >>> _ = (layout.root / "a.nii.gz").write_bytes(b"img")
    >>> log.append(before, doc)
    >>> stale = {"objects": {}}          # a program wrote the manifest it held before the add
    >>> log.repair(stale)
    ['a']
    >>> stale["objects"]["a"]["image"]["info"]
    {'x': 1}
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from typing import Any

from .. import nofollow
from ..durable import atomic_write_bytes, fsync_dir
from ..errors import DatastoreError
from .json_values import dump_json, load_json
from .layout import StoreLayout
from .staging import file_checksum

__all__ = ["LOG_NAME", "AckLog"]

logger = logging.getLogger(__name__)

LOG_NAME = "acknowledged.log"
# A part's key: ("i", image_id, None) for the image entry, ("l", image_id, tag) for a label.
_Key = tuple[str, str, "str | None"]
# How many values a part had before medstore's latest one are remembered as "stale".
_SUPERSEDED = 8


class _Claim:
    """What medstore last wrote to one part, and the values it replaced there."""

    __slots__ = ("after", "superseded")

    def __init__(self, after: Any) -> None:
        self.after: Any = after
        self.superseded: list[Any] = []

    def wrote(self, before: Any, after: Any) -> None:
        kept = [v for v in (*self.superseded, before, self.after) if v != after]
        unique: list[Any] = []
        for value in kept:
            if value not in unique:
                unique.append(value)
        self.superseded = unique[-_SUPERSEDED:]
        self.after = after


def _parts(obj: dict[str, Any] | None) -> dict[_Key, Any]:
    """Not keyed by id: ``("i", "", None)`` for the image, ``("l", "", tag)`` per label."""
    if obj is None:
        return {}
    parts: dict[_Key, Any] = {("i", "", None): obj.get("image")}
    for tag, label in (obj.get("labels") or {}).items():
        parts[("l", "", tag)] = label
    return parts


def _sync(fd: int) -> None:
    """Make an appended line durable: its data and the file's new size (``fdatasync``).

    This runs after the change itself is committed and acknowledged: a failure here is logged
    and never turns a committed save into a reported error (the save keeps its durability; only
    its protection against a later stale copy is missing).
    """
    sync = getattr(os, "fdatasync", None) or os.fsync  # macOS has no fdatasync
    sync(fd)


def _current(doc: dict[str, Any], key: _Key) -> Any:
    obj = doc["objects"].get(key[1])
    if obj is None:
        return None
    if key[0] == "i":
        return obj.get("image")
    return (obj.get("labels") or {}).get(key[2])


class AckLog:
    """The log of medstore's acknowledged entry values, and the repair it allows.

    Every method must be called with the store lock held.

    Args:
        layout: The store's paths.
        capacity: How many parts (image or label entries) are remembered.
    """

    def __init__(self, layout: StoreLayout, *, capacity: int = 4096) -> None:
        self.layout = layout
        self.path = layout.side_path(LOG_NAME)
        self.capacity = capacity
        self._claims: OrderedDict[_Key, _Claim] = OrderedDict()
        self._inode: int | None = None
        self._offset = 0
        self._lines = 0

    # ------------------------------------------------------------------ reading
    def _catch_up(self) -> None:
        """Fold the lines written since this process last looked (by any medstore process)."""
        try:
            fd = nofollow.open_fd(self.path, os.O_RDONLY)
        except FileNotFoundError:
            self._claims.clear()
            self._inode, self._offset, self._lines = None, 0, 0
            return
        try:
            st = os.fstat(fd)
            if st.st_ino != self._inode or st.st_size < self._offset:
                self._claims.clear()
                self._inode, self._offset, self._lines = st.st_ino, 0, 0
            if st.st_size == self._offset:
                return
            data = os.pread(fd, st.st_size - self._offset, self._offset)
        finally:
            os.close(fd)
        end = data.rfind(b"\n") + 1  # a line without its newline is still being written, or torn
        for line in data[:end].split(b"\n"):
            if line.strip():
                self._fold(line)
        self._offset += end

    def _fold(self, line: bytes) -> None:
        self._lines += 1
        try:
            record = load_json(line)
            for kind, image_id, tag, before, after in record.get("wrote", []):
                key = (kind, image_id, tag)
                claim = self._claims.pop(key, None) or _Claim(before)
                claim.wrote(before, after)
                self._claims[key] = claim
            for kind, image_id, tag in record.get("forget", []):
                self._claims.pop((kind, image_id, tag), None)
        except (ValueError, TypeError, AttributeError):  # a line torn by a crash: never answered
            logger.debug("ignoring an unreadable line of %s", self.path)
        while len(self._claims) > self.capacity:
            self._claims.popitem(last=False)

    # ------------------------------------------------------------------ writing
    def append(self, before: dict[str, dict[str, Any] | None], doc: dict[str, Any]) -> None:
        """Record the parts of the objects in ``before`` that ``doc`` now holds differently.

        Args:
            before: Each changed image id's whole object before the change (``None``: absent).
            doc: The manifest as just committed.
        """
        wrote: list[list[Any]] = []
        for image_id, old in before.items():
            old_parts = _parts(old)
            new_parts = _parts(doc["objects"].get(image_id))
            for kind, _, tag in old_parts.keys() | new_parts.keys():
                was, now = old_parts.get((kind, "", tag)), new_parts.get((kind, "", tag))
                if was != now:
                    wrote.append([kind, image_id, tag, was, now])
        if wrote:
            wrote.sort(key=lambda w: (w[0] != "i", w[1], w[2] or ""))
            self._write_line({"wrote": wrote[-self.capacity :]})

    def _write_line(self, record: dict[str, Any]) -> None:
        """Append one line durably (a best effort: the change itself is already committed)."""
        line = dump_json(record) + b"\n"
        try:
            self._catch_up()
            if self._lines >= 2 * self.capacity:
                self._compact()
            created = not nofollow.lexists(self.path)
            nofollow.makedirs(self.path.parent)
            fd = nofollow.open_fd(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                size = os.fstat(fd).st_size
                if size > self._offset:  # a torn last line: start on a line of our own
                    line = b"\n" + line
                os.write(fd, line)
                _sync(fd)
                inode = os.fstat(fd).st_ino
            finally:
                os.close(fd)
            if created:
                fsync_dir(self.path.parent)
        except (OSError, DatastoreError) as err:
            logger.warning("could not record an acknowledged change in %s: %s", self.path, err)
            return
        if self._inode in (None, inode):
            self._inode = inode
            self._offset = size + len(line)
            self._fold(line.strip())

    def _compact(self) -> None:
        """Rewrite the log as one line per remembered part (its superseded values, then now)."""
        wrote: list[list[Any]] = []
        for (kind, image_id, tag), claim in self._claims.items():
            for old in claim.superseded:
                wrote.append([kind, image_id, tag, old, claim.after])
        data = dump_json({"wrote": wrote}) + b"\n" if wrote else b""
        atomic_write_bytes(self.path, data, mode=0o600, point="acklog")
        self._claims.clear()
        self._inode, self._offset, self._lines = None, 0, 0
        self._catch_up()

    # ------------------------------------------------------------------ repairing
    def repair(self, doc: dict[str, Any], *, record: bool = True) -> list[str]:
        """Write medstore's values back where ``doc`` holds a stale copy of them (in place).

        Args:
            doc: The manifest as just read from disk.
            record: Note in the log which claims the other program overrode on purpose, and
                warn (a writer, about to write ``doc``); ``False``: only fix ``doc`` in memory
                (a reader: what the next writer will write).

        Returns:
            The image ids whose entries were put back (sorted); empty when nothing was stale.
        """
        self._catch_up()
        if not self._claims:
            return []
        repaired: set[str] = set()
        forget: list[list[Any]] = []
        objects: dict[str, Any] = doc["objects"]
        ordered = sorted(self._claims.items(), key=lambda item: item[0][0] != "i")
        for key, claim in ordered:
            now = _current(doc, key)
            if now == claim.after:
                continue
            if now not in claim.superseded or not self._files_agree(key, claim.after, now):
                forget.append(list(key))  # changed on purpose since: the other program's wins
                continue
            kind, image_id, tag = key
            if kind == "i":
                if claim.after is None:
                    objects.pop(image_id, None)
                elif image_id in objects:
                    objects[image_id]["image"] = load_json(dump_json(claim.after))
                else:
                    objects[image_id] = {"image": load_json(dump_json(claim.after)), "labels": {}}
            else:
                obj = objects.get(image_id)
                if obj is None:
                    continue
                labels = obj.setdefault("labels", {})
                if claim.after is None:
                    labels.pop(tag, None)
                else:
                    labels[tag] = load_json(dump_json(claim.after))
            repaired.add(image_id)
        if not record:
            return sorted(repaired)
        if forget:
            self._write_line({"forget": forget})
        if repaired:
            logger.warning(
                "another program overwrote the manifest with a stale copy: medstore's entries "
                "of %d image(s) written again",
                len(repaired),
            )
        return sorted(repaired)

    def _files_agree(self, key: _Key, after: dict[str, Any] | None, now: Any) -> bool:
        """Whether the files fit ``after``: its file exists (a label with the checksum medstore
        recorded), or (a removal) ``now``'s file is gone."""
        kind, image_id, tag = key
        entry = after if after is not None else now
        try:
            ext = str(entry.get("ext", ""))
            if kind == "i":
                path = self.layout.image_path(image_id, ext)
            else:
                assert tag is not None
                path = self.layout.label_path(tag, image_id, ext)
            if after is None or not nofollow.lexists(path):
                return after is None and not nofollow.lexists(path)
            checksum = after.get("info", {}).get("checksum")
            return kind == "i" or not isinstance(checksum, str) or file_checksum(path) == checksum
        except (DatastoreError, OSError, AttributeError):
            return False
