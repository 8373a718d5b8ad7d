"""Store upkeep: ``verify`` checksums, ``doctor`` a damaged store, ``gc`` old history.

Examples:
    >>> import tempfile
    >>> from medstore.datastore import LocalDatastore
    >>> verify(LocalDatastore(tempfile.mkdtemp())).ok
    True
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import nofollow
from .durable import atomic_copy, fsync_dir
from .errors import ManifestCorruptError
from .store.document_storage import read_settled
from .store.layout import MANIFEST_NAME, StoreLayout
from .store.manifest import ManifestFile
from .store.manifest_salvage import salvage_manifest
from .store.staging import file_checksum
from .store.store_lock import StoreLock
from .timestamps import compact_utc

if TYPE_CHECKING:
    from .store.local import LocalDatastore

__all__ = ["DoctorReport", "GcReport", "VerifyReport", "collect_garbage", "doctor", "verify"]


@dataclass
class VerifyReport:
    """Files whose bytes no longer match their recorded checksum, files missing, images that
    cannot be read and labels that do not fit their image (``reasons`` says why, by name)."""

    checked: int = 0
    unrecorded: int = 0
    mismatched: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    misfit: list[str] = field(default_factory=list)
    reasons: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Whether every recorded checksum matched, every image reads and every label fits."""
        return not (self.mismatched or self.missing or self.unreadable or self.misfit)


def verify(store: LocalDatastore) -> VerifyReport:
    """Re-hash every image and label that has a recorded ``checksum``; read every image and
    check that every label fits its image (shape, affine, dtype).

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
        _check_readable(store, image_id, obj, report)
    return report


def _check_readable(
    store: LocalDatastore, image_id: str, obj: dict[str, Any], report: VerifyReport
) -> None:
    """Record whether the image reads and each of its labels fits it."""
    from .store.imaging_hooks import why_misfit, why_unreadable

    image = store.layout.image_path(image_id, obj["image"]["ext"])
    if not os.path.exists(image):
        return
    reason = why_unreadable(image, shown=image.name)
    if reason is not None:
        report.unreadable.append(f"image {image_id}")
        report.reasons[f"image {image_id}"] = reason
        return
    for tag, label in sorted(obj["labels"].items()):
        path = store.layout.label_path(tag, image_id, label["ext"])
        if os.path.exists(path) and (reason := why_misfit(path, image)) is not None:
            report.misfit.append(f"label {tag}/{image_id}")
            report.reasons[f"label {tag}/{image_id}"] = reason


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

    The manifest is judged corrupt only if it still is under the store lock (a read outside it may
    meet MONAI Label's in-place rewrite). A corrupt manifest is first copied to
    ``.medstore/corrupt/`` (never deleted), then rebuilt from every object of that copy that still
    validates (their info, tags and ``label_info`` kept), what the side files still know of the
    entries it lost (trash records, label history), plus the images and labels on disk.

    Args:
        root: The store folder.
        rebuild: Rebuild an unreadable manifest.
        lock_timeout: Seconds to wait for the lock.
        datastore_config: Manifest file name.

    Returns:
        The report.

    Raises:
        ManifestCorruptError: The manifest is corrupt and ``rebuild`` is false.
        StoreLockedError: The store lock could not be taken (``rebuild``).
    """
    from .store.local import LocalDatastore

    layout = StoreLayout.at(root, datastore_config)
    report = DoctorReport()
    manifest = ManifestFile(layout.manifest)
    try:
        read_settled(manifest)
    except ManifestCorruptError:
        if not rebuild:
            raise
        nofollow.confine(layout.root)  # no link below the root is followed by the rebuild
        with StoreLock(layout.lock, timeout=lock_timeout).held():
            try:  # the unlocked read may have met a write in progress: decide under the lock
                read_settled(manifest)
            except ManifestCorruptError:
                keep = layout.corrupt_copy(compact_utc())
                nofollow.makedirs(keep.parent)
                atomic_copy(manifest.path, keep)
                manifest.write(
                    salvage_manifest(
                        keep.read_bytes(), images_dir=".", labels_dir="labels", layout=layout
                    )
                )
                report.rebuilt_manifest, report.corrupt_copy = True, str(keep)
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


# A kept version's record or file: ``v0007.json``, ``v0007.nii.gz``, ``v10000.nii.gz``.
_VERSION_FILE = re.compile(r"^v(\d{4,})\.")


def _version_files(label_dir: Path) -> dict[int, list[Path]]:
    """The files of each kept version of one label (``vNNNN.json``, ``vNNNN<ext>``), by number."""
    files: dict[int, list[Path]] = {}
    for path in label_dir.iterdir():
        match = _VERSION_FILE.match(path.name)
        if match is not None:
            files.setdefault(int(match.group(1)), []).append(path)
    return files


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
            files = _version_files(label_dir)
            versions = sorted(files)  # numbers: v10000 is newer than v9999
            for version in versions[: max(len(versions) - keep_versions, 0)]:
                record = label_dir / f"v{version:04d}.json"
                if not record.exists() or record.stat().st_mtime >= cutoff:
                    continue
                for path in files[version]:
                    report.bytes_freed += _size(path)
                    if not dry_run:
                        nofollow.unlink(path)  # never a file a planted link leads to
                report.history_versions += 1
            if not dry_run:
                fsync_dir(label_dir)
        for entry in sorted(layout.trash_root.glob("*/*")):
            if entry.stat().st_mtime < cutoff:
                report.bytes_freed += _size(entry)
                report.trash_entries += 1
                if not dry_run:
                    nofollow.rmtree(entry)
        for cached in sorted(layout.cache.rglob("*")) if layout.cache.exists() else []:
            if cached.is_file() and cached.stat().st_mtime < cutoff:
                report.bytes_freed += cached.stat().st_size
                report.cache_files += 1
                if not dry_run:
                    nofollow.unlink(cached)
    return report
