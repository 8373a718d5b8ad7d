"""Store upkeep: ``verify`` checksums, ``doctor`` a damaged store, ``gc`` old history.

Examples:
    >>> import tempfile
    >>> from medstore.datastore import LocalDatastore
    >>> verify(LocalDatastore(tempfile.mkdtemp())).ok
    True
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import filelock

from .durable import atomic_copy, fsync_dir
from .errors import ManifestCorruptError, StoreLockedError
from .store.layout import MANIFEST_NAME, StoreLayout
from .store.manifest import ManifestFile, empty_manifest
from .store.staging import file_checksum
from .timestamps import compact_utc

if TYPE_CHECKING:
    from .store.local import LocalDatastore

__all__ = ["DoctorReport", "GcReport", "VerifyReport", "collect_garbage", "doctor", "verify"]


@dataclass
class VerifyReport:
    """Files whose bytes no longer match their recorded checksum, and files missing."""

    checked: int = 0
    unrecorded: int = 0
    mismatched: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether every recorded checksum matched."""
        return not self.mismatched and not self.missing


def verify(store: LocalDatastore) -> VerifyReport:
    """Re-hash every image and label that has a recorded ``checksum``.

    Args:
        store: The store.

    Returns:
        The report (files without a recorded checksum are counted as ``unrecorded``).
    """
    report = VerifyReport()
    doc = store.json()
    for image_id, obj in doc["objects"].items():
        files = [
            (
                f"image {image_id}",
                obj["image"],
                store.layout.image_path(image_id, obj["image"]["ext"]),
            )
        ]
        for tag, label in obj["labels"].items():
            path = store.layout.label_path(tag, image_id, label["ext"])
            files.append((f"label {tag}/{image_id}", label, path))
        for name, entry, path in files:
            recorded = entry["info"].get("checksum")
            if not recorded:
                report.unrecorded += 1
                continue
            if not path.exists():
                report.missing.append(name)
                continue
            report.checked += 1
            if file_checksum(path) != recorded:
                report.mismatched.append(name)
    return report


@dataclass
class DoctorReport:
    """What ``doctor`` did."""

    completed_saves: int = 0
    rebuilt_manifest: bool = False
    corrupt_copy: str | None = None


def doctor(
    root: str | os.PathLike[str],
    *,
    rebuild: bool = False,
    lock_timeout: float = 30.0,
    datastore_config: str = MANIFEST_NAME,
) -> DoctorReport:
    """Complete interrupted saves; with ``rebuild``, replace a corrupt manifest from the files.

    A corrupt manifest is first copied to ``.medstore/corrupt/`` (never deleted), then rebuilt
    from the images and labels on disk (info that lived only in it is lost; label history keeps
    the info of older versions).

    Args:
        root: The store folder.
        rebuild: Rebuild an unreadable manifest.
        lock_timeout: Seconds to wait for the lock.
        datastore_config: Manifest file name.

    Returns:
        The report.

    Raises:
        ManifestCorruptError: The manifest is corrupt and ``rebuild`` is false.
    """
    from .store.local import LocalDatastore

    layout = StoreLayout.at(root, datastore_config)
    report = DoctorReport()
    manifest = ManifestFile(layout.manifest)
    try:
        manifest.read()
    except ManifestCorruptError:
        if not rebuild:
            raise
        try:
            with filelock.FileLock(layout.lock, timeout=lock_timeout):
                keep = layout.corrupt_copy(compact_utc())
                keep.parent.mkdir(parents=True, exist_ok=True)
                atomic_copy(manifest.path, keep)
                manifest.write(empty_manifest(".", "labels"))
                report.rebuilt_manifest, report.corrupt_copy = True, str(keep)
        except filelock.Timeout as err:
            raise StoreLockedError(f"store {root} is locked by another process") from err
    pending = layout.pending
    report.completed_saves = len(list(pending.glob("*.json"))) if pending.exists() else 0
    LocalDatastore(layout.root, datastore_config=datastore_config, lock_timeout=lock_timeout)
    return report


@dataclass
class GcReport:
    """What ``gc`` removed."""

    history_versions: int = 0
    trash_entries: int = 0
    cache_files: int = 0
    bytes_freed: int = 0


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def collect_garbage(
    store: LocalDatastore,
    *,
    keep_versions: int = 10,
    older_than_days: float = 30.0,
    dry_run: bool = False,
) -> GcReport:
    """Prune label history, trash and cache (the retention settings).

    A kept label version is pruned only when it is both beyond the newest ``keep_versions`` of
    its label and older than ``older_than_days``; trash entries and cache files only when older
    than ``older_than_days``. The current labels and images are never touched.

    Args:
        store: A writable store.
        keep_versions: Versions always kept per label.
        older_than_days: Minimum age of anything pruned.
        dry_run: Report without deleting.

    Returns:
        The report.
    """
    report = GcReport()
    cutoff = time.time() - older_than_days * 86400
    layout = store.layout
    with store.locked():
        for label_dir in sorted(layout.history_root.glob("*/*")):
            records = sorted(label_dir.glob("v*.json"))
            for record in records[: max(len(records) - keep_versions, 0)]:
                if record.stat().st_mtime >= cutoff:
                    continue
                for path in label_dir.glob(record.stem + "*"):
                    report.bytes_freed += _size(path)
                    if not dry_run:
                        path.unlink()
                report.history_versions += 1
            if not dry_run:
                fsync_dir(label_dir)
        for entry in sorted(layout.trash_root.glob("*/*")):
            if entry.stat().st_mtime < cutoff:
                report.bytes_freed += _size(entry)
                report.trash_entries += 1
                if not dry_run:
                    shutil.rmtree(entry)
        for cached in sorted(layout.cache.rglob("*")) if layout.cache.exists() else []:
            if cached.is_file() and cached.stat().st_mtime < cutoff:
                report.bytes_freed += cached.stat().st_size
                report.cache_files += 1
                if not dry_run:
                    cached.unlink()
    return report
