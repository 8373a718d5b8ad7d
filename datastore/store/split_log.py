"""The store's persisted split assignments: an append-only log in ``.medstore/splits.jsonl``.

Each line is one JSON event; nothing is ever rewritten, so the assignments as they stood at any
earlier time can be replayed:

- ``{"format_version": 1, "event": "assign", "record_id": "<hex>", "image_id": "img_1",
  "split": "train", "source": "local", "at": "2026-11-21T10:00:00.000000Z",
  "image_version": "<hex>"}`` puts an image in a split; ``image_version`` (absent for an image
  without one, see :mod:`.image_versions`) is the addition of the id it was made for: an
  assignment of an earlier image with a reused id is not applied to the current one;
- ``{"format_version": 1, "event": "delete", "record_id": "<hex>", "image_id": "img_1",
  "at": ...}`` withdraws that assignment (re-assigning an image writes a ``delete``, then a new
  ``assign``).

Times are ISO-8601 UTC (:func:`~medstore.datastore.timestamps.iso_utc`). A line that is not JSON
(a crash mid-append leaves a torn last line) or has a newer ``format_version`` is skipped with a
warning; the next append starts on a fresh line. Appends happen under the store lock; each save
is one durable unit (all its lines fsynced, or the log truncated back as it was), and one unit on
replay: its lines carry its ``"save"`` id and the last one ``"save_end": true``, and a save
whose end never landed (the process was killed mid-append) is not applied. Replay follows the
log's order, never the recorded times (clocks differ between machines).

The module also holds :func:`seeded_order_key`, the one seeded hash every seeded split of medstore
orders its groups by (the datasets' local ``split()`` and the nnU-Net fold export), so that the
same seed gives the same split on every machine and in every process.

Examples:
    >>> import tempfile
    >>> from medstore.datastore import LocalDatastore, SplitLog
    >>> log = SplitLog(LocalDatastore(tempfile.mkdtemp()))
    >>> log.save({"img_1": "train", "img_2": "val"}, source="local")
    2
    >>> sorted((image, a.split) for image, a in log.assignments().items())
    [('img_1', 'train'), ('img_2', 'val')]
    >>> log.save({"img_1": "val"}, source="local", force=True)
    1
    >>> log.assignments()["img_1"].split
    'val'
    >>> seeded_order_key(0, "image:a") == seeded_order_key(0, "image:a")
    True
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import uuid
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from .. import nofollow
from ..durable import fsync_dir
from ..errors import ReadOnlyError
from ..timestamps import iso_utc, parse_utc
from .image_versions import belongs, version_stamp, versions_in
from .layout import StoreLayout

__all__ = [
    "SPLITS_LOG",
    "SPLIT_LOG_FORMAT_VERSION",
    "SplitAssignment",
    "SplitLog",
    "seeded_order_key",
]

_LOG = logging.getLogger(__name__)

SPLITS_LOG = "splits.jsonl"
"""The log's file name under ``.medstore/``."""
SPLIT_LOG_FORMAT_VERSION = 1
"""The ``format_version`` written on every line; lines with a newer one are skipped."""


def seeded_order_key(seed: int, key: str) -> bytes:
    """A seeded, platform-independent sort key: SHA-256 of ``"<seed>\\0<key>"``.

    Sorting groups (``"patient:P1"``, ``"image:img_1"``...) by this key gives an order that
    depends only on the seed and the keys, never on ``PYTHONHASHSEED`` or the machine.

    Args:
        seed: The seed.
        key: The group key.

    Returns:
        32 bytes.

    Examples:
        >>> sorted(["image:a", "image:b", "image:c"], key=lambda k: seeded_order_key(1, k))
        ['image:b', 'image:a', 'image:c']
    """
    return hashlib.sha256(f"{seed}\x00{key}".encode("utf-8", "surrogatepass")).digest()


class SplitAssignment(NamedTuple):
    """One live assignment: the split an image is in and the log record that put it there.

    Attributes:
        split: The split name (``"train"``, ``"fold0"``...).
        record_id: The ``record_id`` of the ``assign`` event.
    """

    split: str
    record_id: str


class SplitLog:
    """The split log of one store: replay it, append assignments to it.

    Args:
        store: A :class:`~medstore.datastore.LocalDatastore` (or an object with ``root``,
            ``read_only``, ``side_path()`` and ``locked()``).

    Example:
        >>> import tempfile
        >>> from medstore.datastore import LocalDatastore
        >>> SplitLog(LocalDatastore(tempfile.mkdtemp())).path.name
        'splits.jsonl'
    """

    def __init__(self, store: Any) -> None:
        self._store = store
        layout = getattr(store, "layout", None)
        if not isinstance(layout, StoreLayout):
            layout = StoreLayout.at(store.root)
        self._path = layout.side_path(SPLITS_LOG)

    @property
    def path(self) -> Path:
        """The log file (it may not exist yet)."""
        return self._path

    def events(self) -> Iterator[dict[str, Any]]:
        """The log's readable events, in file order (torn or unknown lines skipped).

        Yields:
            One parsed event per line.
        """
        try:
            lines = nofollow.read_bytes(self._path).splitlines()  # a planted link is refused
        except (FileNotFoundError, NotADirectoryError):
            return
        for number, raw in enumerate(lines, 1):
            if not raw.strip():
                continue
            try:
                event = json.loads(raw)
            except ValueError:
                _LOG.warning("%s line %d is not valid JSON; skipped", self._path, number)
                continue
            if (
                not isinstance(event, dict)
                or event.get("format_version", 0) > SPLIT_LOG_FORMAT_VERSION
            ):
                _LOG.warning("%s line %d has an unknown format; skipped", self._path, number)
                continue
            yield event

    def assignments(self, as_of: str | dt.datetime | None = None) -> dict[str, SplitAssignment]:
        """Replay the log, in log order: every image's live assignment as it stood at ``as_of``.

        Lines are replayed in the order they were appended, never sorted by their times: a
        writer whose clock is behind cannot reorder saves. ``as_of`` keeps the log up to the
        first line recorded after it (a state the store really was in). An image in the store
        gets only an assignment made for its own image version (an earlier image with the same
        id, removed, keeps its own, which comes back when that image is restored).

        Args:
            as_of: ISO-8601 UTC text or a datetime (``None``: the whole log).

        Returns:
            ``{image_id: SplitAssignment}``.

        Raises:
            ValueError: ``as_of`` is not ISO-8601.
        """
        limit = parse_utc(as_of) if isinstance(as_of, str) else as_of
        if limit is not None and limit.tzinfo is None:
            limit = limit.replace(tzinfo=dt.UTC)
        live: dict[str, dict[str | None, SplitAssignment]] = {}  # per image, per image version
        for event in _whole_saves(self.events()):  # log order: the order saves were made in
            try:
                at = parse_utc(str(event["at"]))
            except (KeyError, ValueError):
                continue
            if limit is not None and at > limit:
                break  # recorded after ``as_of``: so is everything after it in the log
            image_id, record_id = str(event.get("image_id")), str(event.get("record_id"))
            versions = live.setdefault(image_id, {})
            if event.get("event") == "assign":
                version = event.get("image_version")
                version = version if isinstance(version, str) else None
                versions.pop(version, None)  # the latest assignment of a version is last
                versions[version] = SplitAssignment(str(event.get("split")), record_id)
            elif event.get("event") == "delete":
                for version, assignment in list(versions.items()):
                    if assignment.record_id == record_id:
                        del versions[version]
        return _applicable(live, self._image_versions())

    def _image_versions(self) -> dict[str, str] | None:
        """``{image_id: version}`` of the store's images (``None``: the store cannot tell)."""
        read = getattr(self._store, "json", None)
        return versions_in(read()) if callable(read) else None

    def _stamps(self) -> dict[str, str | None]:
        read = getattr(self._store, "json", None)
        if not callable(read):
            return {}
        return {k: version_stamp(v["image"].get("info", {})) for k, v in read()["objects"].items()}

    def save(self, wanted: Mapping[str, str], *, source: str, force: bool = False) -> int:
        """Append assignments ``{image_id: split}`` under the store lock.

        Images already in the wanted split are left alone. An image in another split is an
        error unless ``force``, which withdraws the old assignment (a ``delete`` event) and
        appends the new one, so older states stay replayable.

        Args:
            wanted: ``{image_id: split name}``.
            source: Where the assignments come from (``"local"``, ``"nnunet"``...), recorded.
            force: Re-assign images that are in another split.

        Returns:
            The number of new assignments written.

        Raises:
            ReadOnlyError: The store is read-only.
            ValueError: A conflicting assignment exists and ``force`` is false.
        """
        if getattr(self._store, "read_only", False):
            raise ReadOnlyError("cannot save splits: the store is read-only")
        with self._store.locked():
            current = self.assignments()
            conflicts = sorted(
                i for i, name in wanted.items() if i in current and current[i].split != name
            )
            if conflicts and not force:
                shown = ", ".join(f"{i!r}: {current[i].split}→{wanted[i]}" for i in conflicts[:5])
                raise ValueError(
                    f"{len(conflicts)} image(s) already assigned to another split ({shown}); "
                    "use save(force=True) to re-assign"
                )
            events, written, stamps = [], 0, self._stamps()
            now = iso_utc()  # one time per save: ``as_of`` never cuts a save in two
            for image_id, name in sorted(wanted.items()):
                old = current.get(image_id)
                if old is not None and old.split == name:
                    continue
                if old is not None:
                    events.append(_event("delete", image_id, old.record_id, now))
                extra = {"split": name, "source": source}
                if stamps.get(image_id) is not None:
                    extra["image_version"] = str(stamps[image_id])
                events.append(_event("assign", image_id, uuid.uuid4().hex, now, **extra))
                written += 1
            if events:
                save = uuid.uuid4().hex  # the save's lines replay together or not at all
                for event in events:
                    event["save"] = save
                events[-1]["save_end"] = True
                self._append(events)
        return written

    def _append(self, events: list[dict[str, Any]]) -> None:
        """Append JSON lines as one durable unit: all of them, fsynced, or none.

        A failed write (ENOSPC halfway, an fsync error) truncates the log back to its size
        before the save, so no partial save is ever replayed.
        """
        path = self._path
        nofollow.makedirs(path.parent)  # a link in the way (the log, a folder) is refused
        existed = nofollow.lexists(path)
        data = b"".join(json.dumps(e, sort_keys=True).encode() + b"\n" for e in events)
        fd = nofollow.open_fd(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o666)
        try:
            size = os.fstat(fd).st_size
            if size and not _ends_with_newline(fd, size):
                data = b"\n" + data  # a torn previous line must not swallow ours
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            except BaseException:
                try:
                    os.ftruncate(fd, size)
                    os.fsync(fd)
                except OSError:
                    _LOG.exception("%s: a failed save could not be truncated away", path)
                raise
        finally:
            os.close(fd)
        if not existed:
            fsync_dir(path.parent)


def _whole_saves(events: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """The events of complete saves only, in log order.

    A save's lines carry its ``save`` id and the last one ``save_end``; a process killed while
    appending them leaves a save without its end (a short write), which is never applied. Lines
    without a ``save`` id (written before saves were marked) are applied one by one, as then.
    """
    pending: list[dict[str, Any]] = []
    for event in events:
        save = event.get("save")
        if pending and save != pending[0].get("save"):
            _LOG.warning("a split save interrupted after %d line(s) is not applied", len(pending))
            pending = []
        if not isinstance(save, str):
            yield event
            continue
        pending.append(event)
        if event.get("save_end") is True:
            yield from pending
            pending = []
    if pending:
        _LOG.warning("a split save interrupted after %d line(s) is not applied", len(pending))


def _applicable(
    live: dict[str, dict[str | None, SplitAssignment]], current: dict[str, str] | None
) -> dict[str, SplitAssignment]:
    """Each image's assignment for its current version (the latest one for an absent image)."""
    out: dict[str, SplitAssignment] = {}
    for image_id, versions in live.items():
        if current is None or image_id not in current:
            if versions:
                out[image_id] = list(versions.values())[-1]
            continue
        for version, assignment in versions.items():
            if belongs(version, current[image_id]):
                out[image_id] = assignment
    return out


def _event(kind: str, image_id: str, record_id: str, at: str, **extra: str) -> dict[str, Any]:
    return {
        "format_version": SPLIT_LOG_FORMAT_VERSION,
        "event": kind,
        "record_id": record_id,
        "image_id": image_id,
        "at": at,
        **extra,
    }


def _ends_with_newline(fd: int, size: int) -> bool:
    os.lseek(fd, size - 1, os.SEEK_SET)  # appends still go to the end (O_APPEND)
    return os.read(fd, 1) == b"\n"
