"""Dataset splits: local seeded ratios, an append-only assignment log in the store, legacy tags."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import secrets
import uuid
import warnings
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from medstore.datastore.durable import fsync_dir
from medstore.datastore.errors import ReadOnlyError

if TYPE_CHECKING:
    from .base import StoreDataset

__all__ = ["SPLITS_LOG", "SplitResult", "parse_timestamp", "read_assignments", "split_dataset"]

_LOG = logging.getLogger(__name__)
SPLITS_LOG = "splits.jsonl"
_FORMAT_VERSION = 1
D = TypeVar("D", bound="StoreDataset")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_timestamp(value: str) -> datetime:
    """Parse an ISO-8601 timestamp (``...Z`` or with offset; naive means UTC).

    Args:
        value: E.g. ``"2026-11-21T10:00:00.000000Z"``.

    Returns:
        An aware UTC datetime.

    Raises:
        ValueError: Not ISO-8601.

    Example:
        >>> parse_timestamp("2026-11-21T10:00:00Z").isoformat()
        '2026-11-21T10:00:00+00:00'
    """
    try:
        parsed = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    except ValueError as err:
        raise ValueError(f"as_of_timestamp {value!r} is not an ISO-8601 UTC timestamp") from err
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _log_path(store: Any) -> Path:
    side = getattr(store, "side_path", None)
    if callable(side):
        return Path(side(SPLITS_LOG))
    return Path(store.root) / ".medstore" / SPLITS_LOG


def _events(path: Path) -> Iterator[dict[str, Any]]:
    """Parsed log lines; a torn final line (crash mid-append) is skipped."""
    try:
        lines = path.read_bytes().splitlines()
    except FileNotFoundError:
        return
    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            event = json.loads(raw)
        except ValueError:
            _LOG.warning("%s line %d is not valid JSON; skipped", path, number)
            continue
        if not isinstance(event, dict) or event.get("format_version", 0) > _FORMAT_VERSION:
            _LOG.warning("%s line %d has an unknown format; skipped", path, number)
            continue
        yield event


def read_assignments(store: Any, as_of: str | None = None) -> dict[str, tuple[str, str]]:
    """Replay the split log: ``{image_id: (split name, record id)}`` as it stood at ``as_of``.

    Args:
        store: The store whose ``.medstore/splits.jsonl`` is read.
        as_of: ISO-8601 UTC time; events after it are ignored (``None``: all).

    Returns:
        The live assignment of every assigned image.

    Raises:
        ValueError: ``as_of`` is not ISO-8601.
    """
    limit = parse_timestamp(as_of) if as_of is not None else None
    live: dict[str, tuple[str, str]] = {}
    for event in sorted(_events(_log_path(store)), key=lambda e: str(e.get("at", ""))):
        try:
            at = parse_timestamp(str(event["at"]))
        except (KeyError, ValueError):
            continue
        if limit is not None and at > limit:
            continue
        image_id, record_id = str(event.get("image_id")), str(event.get("record_id"))
        if event.get("event") == "assign":
            live[image_id] = (str(event.get("split")), record_id)
        elif event.get("event") == "delete" and live.get(image_id, ("", ""))[1] == record_id:
            del live[image_id]
    return live


class SplitResult(Mapping[str, D], Generic[D]):
    """The parts of a split: a read-only mapping of name → dataset, savable to the store.

    Attributes:
        source: ``"local"``, ``"store"`` or ``"tags"``.
        as_of_timestamp: The replay time of a store split, else ``None``.

    Example:
        >>> parts = ds.split(train=0.8, val=0.2, seed=1)             # doctest: +SKIP
        >>> parts.save()                                              # doctest: +SKIP
        10
    """

    def __init__(
        self, parts: dict[str, D], *, source: str, as_of_timestamp: str | None, store: Any
    ) -> None:
        self._parts = dict(parts)
        self.source = source
        self.as_of_timestamp = as_of_timestamp
        self._store = store

    def __getitem__(self, name: str) -> D:
        return self._parts[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._parts)

    def __len__(self) -> int:
        return len(self._parts)

    def __repr__(self) -> str:
        sizes = ", ".join(f"{k}={len(v)}" for k, v in self._parts.items())
        return f"SplitResult({sizes}; source={self.source!r})"

    def assignments(self) -> dict[str, str]:
        """``{image_id: part name}`` of this result.

        Returns:
            The mapping.

        Raises:
            ValueError: An image is in two parts (e.g. two ``split:`` tags).
        """
        out: dict[str, str] = {}
        for name, part in self._parts.items():
            for i in part._record_ids():
                image_id = part._records[i].image_id
                if out.setdefault(image_id, name) != name:
                    raise ValueError(
                        f"image {image_id!r} is in parts {out[image_id]!r} and {name!r}"
                    )
        return out

    def save(self, *, force: bool = False) -> int:
        """Append these assignments to the store's split log (``.medstore/splits.jsonl``).

        Images already assigned to the same part are left alone. An image assigned to another
        part is an error unless ``force``, which soft-deletes the old record (a ``delete``
        event) and appends the new one, so older states stay replayable by timestamp. The
        append happens under the store lock and is fsynced before returning.

        Args:
            force: Re-assign images that already belong to another part.

        Returns:
            The number of new assignments written.

        Raises:
            ReadOnlyError: The store is read-only.
            ValueError: A conflicting assignment exists and ``force`` is false.
        """
        store = self._store
        if getattr(store, "read_only", False):
            raise ReadOnlyError("cannot save splits: the store is read-only")
        wanted = self.assignments()
        path = _log_path(store)
        with store.locked():
            current = read_assignments(store)
            conflicts = sorted(i for i, n in wanted.items() if i in current and current[i][0] != n)
            if conflicts and not force:
                shown = ", ".join(f"{i!r}: {current[i][0]}→{wanted[i]}" for i in conflicts[:5])
                raise ValueError(
                    f"{len(conflicts)} image(s) already assigned to another split ({shown}); "
                    "use save(force=True) to re-assign"
                )
            lines, written = [], 0
            for image_id, name in sorted(wanted.items()):
                old = current.get(image_id)
                if old is not None and old[0] == name:
                    continue
                now = _now()
                if old is not None:
                    lines.append(
                        {
                            "format_version": _FORMAT_VERSION,
                            "event": "delete",
                            "record_id": old[1],
                            "image_id": image_id,
                            "at": now,
                        }
                    )
                lines.append(
                    {
                        "format_version": _FORMAT_VERSION,
                        "event": "assign",
                        "record_id": uuid.uuid4().hex,
                        "image_id": image_id,
                        "split": name,
                        "source": self.source,
                        "at": now,
                    }
                )
                written += 1
            if lines:
                _append(path, lines)
        return written


def _append(path: Path, events: list[dict[str, Any]]) -> None:
    """Append JSON lines in one write, then fsync (and fsync the folder for a new file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    existed = path.exists()
    data = b"".join(json.dumps(e, sort_keys=True).encode() + b"\n" for e in events)
    with open(path, "ab") as handle:
        if handle.tell() and not _ends_with_newline(path):
            data = b"\n" + data  # a torn previous line must not swallow ours
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    if not existed:
        fsync_dir(path.parent)


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as handle:
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) == b"\n"


def _check_ratios(ratios: Mapping[str, float]) -> None:
    if not ratios:
        raise ValueError("give split ratios, e.g. split(train=0.8, val=0.2)")
    for name, ratio in ratios.items():
        if not isinstance(ratio, (int, float)) or not math.isfinite(ratio) or ratio <= 0:
            raise ValueError(f"split ratio {name}={ratio!r} must be a positive number")
    total = sum(ratios.values())
    if abs(total - 1.0) > 0.01:
        raise ValueError(f"split ratios must sum to 1 (±0.01), got {total:.4f}")


def _stable_key(seed: int, key: str) -> bytes:
    return hashlib.sha256(f"{seed}\x00{key}".encode("utf-8", "surrogatepass")).digest()


def _local_parts(
    ds: StoreDataset, ratios: Mapping[str, float], seed: int | None, by_patient: bool
) -> dict[str, set[int]]:
    """Assign whole groups (images or patients) to parts in a seeded, hash-defined order."""
    groups: dict[str, list[int]] = {}
    for i in ds._record_ids():
        record = ds._records[i]
        patient = record.info.get("patient_id") if by_patient else None
        key = f"patient:{patient}" if patient not in (None, "") else f"image:{record.image_id}"
        groups.setdefault(key, []).append(i)
    effective_seed = secrets.randbits(63) if seed is None else int(seed)
    order = sorted(groups, key=lambda k: _stable_key(effective_seed, k))
    total_images = sum(len(g) for g in groups.values())
    total_ratio = sum(ratios.values())
    names = list(ratios)
    bounds, acc = [], 0.0
    for name in names:
        acc += ratios[name] / total_ratio
        bounds.append(acc * total_images)
    parts: dict[str, set[int]] = {name: set() for name in names}
    start = 0
    for key in order:
        size = len(groups[key])
        center = start + size / 2
        j = next((n for n, b in enumerate(bounds) if center < b), len(names) - 1)
        parts[names[j]].update(groups[key])
        start += size
    return parts


def split_dataset(
    ds: D,
    *,
    seed: int | None,
    use_project_splits: bool | None,
    use_server_splits: bool | None,
    as_of_timestamp: str | None,
    by_patient: bool,
    ratios: Mapping[str, float],
) -> SplitResult[D]:
    """Split ``ds`` (see :meth:`StoreDataset.split`).

    Modes: local ratios (``seed``, ``by_patient``); persisted store assignments
    (``use_project_splits``, replayable with ``as_of_timestamp``); legacy ``split:<name>`` image
    tags (``use_server_splits``, deprecated). With no explicit mode: ratios → local; else
    persisted assignments if the log has any (or ``as_of_timestamp`` is given); else tags.

    Args:
        ds: The dataset.
        seed: Local-split seed (``None``: random).
        use_project_splits: Force/forbid the store mode.
        use_server_splits: Force/forbid the tag mode (deprecated).
        as_of_timestamp: ISO-8601 UTC replay time (store mode only).
        by_patient: Group by ``info["patient_id"]`` (local mode only).
        ratios: Part name → fraction.

    Returns:
        The parts, each carrying ``split_name``, ``split_source``, ``split_as_of_timestamp``.

    Raises:
        ValueError: Invalid ratios, conflicting modes, or no assignments found.
    """
    if use_project_splits and use_server_splits:
        raise ValueError("use_project_splits and use_server_splits are exclusive")
    if ratios and (use_project_splits or use_server_splits):
        raise ValueError("split ratios cannot be combined with persisted or tag splits")
    if as_of_timestamp is not None and (ratios or use_server_splits):
        raise ValueError("as_of_timestamp applies to persisted (project) splits only")
    if by_patient and not ratios:
        raise ValueError("by_patient applies to local ratio splits only")
    if use_server_splits:
        warnings.warn(
            "use_server_splits (split:* tags) is deprecated; persist splits with "
            "SplitResult.save() and use use_project_splits",
            DeprecationWarning,
            stacklevel=3,
        )
    if ratios:
        mode = "local"
    elif use_project_splits or (
        use_project_splits is None
        and not use_server_splits
        and (as_of_timestamp is not None or read_assignments(ds.store))
    ):
        mode = "store"
    else:
        mode = "tags"

    as_of: str | None = None
    if mode == "local":
        _check_ratios(ratios)
        parts = _local_parts(ds, ratios, seed, by_patient)
    elif mode == "store":
        as_of = as_of_timestamp or _now()
        live = read_assignments(ds.store, as_of)
        if not live:
            raise ValueError(f"no split assignments in {_log_path(ds.store)} as of {as_of}")
        parts = {}
        for i in ds._record_ids():
            hit = live.get(ds._records[i].image_id)
            if hit is not None:
                parts.setdefault(hit[0], set()).add(i)
        parts = dict(sorted(parts.items()))
    else:
        parts = {}
        for i in ds._record_ids():
            for tag in ds._records[i].tags:
                if tag.startswith("split:") and len(tag) > 6:
                    parts.setdefault(tag[6:], set()).add(i)
        if not parts:
            raise ValueError("no image has a 'split:<name>' tag; give ratios to split locally")
        parts = dict(sorted(parts.items()))

    ds._label_space()  # one class list shared by every part
    result: dict[str, D] = {}
    for name, keep in parts.items():
        part = ds._keep_records(keep)
        part.split_name, part.split_source, part.split_as_of_timestamp = name, mode, as_of
        result[name] = part
    return SplitResult(result, source=mode, as_of_timestamp=as_of, store=ds.store)
