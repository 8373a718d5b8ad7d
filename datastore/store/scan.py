"""One directory scan per folder: which images and labels are on disk.

Examples:
    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> (root / "a.nii.gz").write_bytes(b"")
    0
    >>> scan_disk(StoreLayout(root), ("*.nii.gz",)).images
    {'a': '.nii.gz'}
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InvalidIdError
from ..ids import derive_id, is_hidden, is_inside, validate_tag
from .layout import StoreLayout

__all__ = ["DiskState", "scan_disk"]

logger = logging.getLogger(__name__)

SeriesSniffer = Callable[[Path], bool]


@dataclass
class DiskState:
    """What one scan found: ``images`` id → ext, ``labels`` tag → (id → ext), and problems."""

    images: dict[str, str] = field(default_factory=dict)
    labels: dict[str, dict[str, str]] = field(default_factory=dict)
    orphans: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def _scan_images(
    layout: StoreLayout,
    patterns: Sequence[str],
    *,
    linked: Collection[str],
    is_series: SeriesSniffer | None,
    state: DiskState,
) -> None:
    excluded = {os.path.realpath(layout.labels), os.path.realpath(layout.side)}
    try:
        entries = sorted(os.scandir(layout.images), key=lambda e: e.name)
    except FileNotFoundError:
        return
    for entry in entries:
        if is_hidden(entry.name):
            continue
        try:
            is_dir = entry.is_dir()
        except OSError:
            continue
        if is_dir:
            if is_series is None or os.path.realpath(entry.path) in excluded:
                continue
            series = is_series(Path(entry.path))
            found: tuple[str, str] | None = (entry.name, "") if series else None
        else:
            found = derive_id(entry.name, patterns)
        if found is None:
            continue
        image_id, ext = found
        if entry.is_symlink() and not is_inside(layout.root, entry.path) and image_id not in linked:
            logger.warning("not indexing %s: it links outside the store", entry.name)
            state.skipped.append(entry.name)
            continue
        if image_id in state.images:
            logger.warning("not indexing %s: id %r is taken by another file", entry.name, image_id)
            state.skipped.append(entry.name)
            continue
        state.images[image_id] = ext


def _scan_labels(layout: StoreLayout, patterns: Sequence[str], state: DiskState) -> None:
    try:
        tag_dirs = sorted(os.scandir(layout.labels), key=lambda e: e.name)
    except FileNotFoundError:
        return
    for tag_dir in tag_dirs:
        if is_hidden(tag_dir.name) or not tag_dir.is_dir():
            continue
        try:
            validate_tag(tag_dir.name)
        except InvalidIdError:
            logger.warning("ignoring label folder %r: not a valid tag", tag_dir.name)
            continue
        if tag_dir.is_symlink() and not is_inside(layout.root, tag_dir.path):
            logger.warning("ignoring label folder %r: it links outside the store", tag_dir.name)
            state.skipped.append(f"{layout.labels_dir}/{tag_dir.name}")
            continue
        found: dict[str, str] = {}
        for entry in sorted(os.scandir(tag_dir.path), key=lambda e: e.name):
            derived = derive_id(entry.name, patterns)
            if derived is None or not entry.is_file():
                continue
            if entry.is_symlink() and not is_inside(layout.root, entry.path):
                state.skipped.append(f"{layout.labels_dir}/{tag_dir.name}/{entry.name}")
                continue
            label_id, ext = derived
            if label_id not in state.images:
                state.orphans.append(f"{layout.labels_dir}/{tag_dir.name}/{entry.name}")
                continue
            found.setdefault(label_id, ext)
        state.labels[tag_dir.name] = found


def scan_disk(
    layout: StoreLayout,
    patterns: Sequence[str],
    *,
    linked: Collection[str] = (),
    is_series: SeriesSniffer | None = None,
) -> DiskState:
    """Scan the images folder and every tag folder once.

    Args:
        layout: The store's paths.
        patterns: File-name patterns (MONAI Label's ``extensions``).
        linked: Ids imported with ``--link``, whose symlinks may point outside the root.
        is_series: Tells whether a sub-folder of the images folder is one DICOM series image.

    Returns:
        The images and labels on disk; label files without an image are listed as orphans
        (reported, never deleted); links leading outside the root are skipped.
    """
    state = DiskState()
    _scan_images(layout, patterns, linked=linked, is_series=is_series, state=state)
    _scan_labels(layout, patterns, state)
    return state
