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
import stat
from collections.abc import Callable, Collection, Mapping, Sequence
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
    """What one scan found: ``images`` id → ext, ``labels`` tag → (id → ext), and problems.

    ``misfits`` lists labels a watcher's refresh indexed although they do not fit their image.
    """

    images: dict[str, str] = field(default_factory=dict)
    labels: dict[str, dict[str, str]] = field(default_factory=dict)
    orphans: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    misfits: list[str] = field(default_factory=list)


def _is_regular(entry: os.DirEntry[str]) -> bool:
    """Whether ``entry`` is (or links to) a regular file: never a FIFO, device or socket."""
    try:
        return entry.is_file()
    except OSError:
        return False


def _skip(state: DiskState, name: str, why: str) -> None:
    logger.warning("not indexing %s: %s", name, why)
    state.skipped.append(name)


def _scan_images(
    layout: StoreLayout,
    patterns: Sequence[str],
    *,
    linked: Collection[str],
    tracked: Mapping[str, str],
    is_series: SeriesSniffer | None,
    state: DiskState,
) -> None:
    from ..imaging.dicom_io import annotation_kind  # SEG/RTSTRUCT are never images
    from ..imaging.nrrd_files import data_names_in

    excluded = {os.path.realpath(layout.labels), os.path.realpath(layout.side)}
    try:
        entries = sorted(os.scandir(layout.images), key=lambda e: e.name)
    except FileNotFoundError:
        return
    data_files = data_names_in(layout.images, [e.name for e in entries], patterns)  # of a .nhdr
    for entry in entries:
        if is_hidden(entry.name) or entry.name in data_files:
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
            if found is not None and not _is_regular(entry):
                _skip(state, entry.name, "not a regular file (a FIFO, device or socket)")
                continue
        if found is None:
            continue
        image_id, ext = found
        if image_id not in tracked and not is_dir and (kind := annotation_kind(entry.path)):
            _skip(state, entry.name, f"a DICOM {kind} is not an image (see 'medstore import-seg')")
            continue
        if entry.is_symlink() and not is_inside(layout.root, entry.path) and image_id not in linked:
            _skip(state, entry.name, "it links outside the store")
            continue
        known = tracked.get(image_id)
        if known is not None and known != ext:
            _skip(state, entry.name, f"id {image_id!r} is tracked as {image_id + known}")
            continue
        if image_id in state.images:
            _skip(state, entry.name, f"id {image_id!r} is taken by another file")
            continue
        state.images[image_id] = ext
    _keep_tracked_images(layout, tracked, state)


def _keep_tracked_images(layout: StoreLayout, tracked: Mapping[str, str], state: DiskState) -> None:
    """Keep tracked images whose file (or series folder) is still there, matched or not."""
    for image_id, ext in tracked.items():
        if image_id in state.images:
            continue
        try:
            mode = os.stat(layout.image_path(image_id, ext)).st_mode
        except (OSError, ValueError):
            continue
        if stat.S_ISREG(mode) or (stat.S_ISDIR(mode) and ext == ""):
            state.images[image_id] = ext


def _scan_labels(
    layout: StoreLayout,
    patterns: Sequence[str],
    tracked: Mapping[str, Mapping[str, str]],
    state: DiskState,
) -> None:
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
        known = tracked.get(tag_dir.name, {})
        by_name = {label_id + ext: (label_id, ext) for label_id, ext in known.items()}
        for entry in sorted(os.scandir(tag_dir.path), key=lambda e: e.name):
            derived = derive_id(entry.name, patterns) or by_name.get(entry.name)
            if derived is None or entry.is_dir():
                continue
            shown = f"{layout.labels_dir}/{tag_dir.name}/{entry.name}"
            if not _is_regular(entry):
                _skip(state, shown, "not a regular file (a FIFO, device or socket)")
                continue
            if entry.is_symlink() and not is_inside(layout.root, entry.path):
                state.skipped.append(shown)
                continue
            label_id, ext = derived
            if known.get(label_id, ext) != ext:
                _skip(
                    state, shown, f"label {label_id!r} is tracked as {label_id + known[label_id]}"
                )
                continue
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
    tracked: Mapping[str, str] | None = None,
    tracked_labels: Mapping[str, Mapping[str, str]] | None = None,
) -> DiskState:
    """Scan the images folder and every tag folder once.

    Args:
        layout: The store's paths.
        patterns: File-name patterns (MONAI Label's ``extensions``).
        linked: Ids imported with ``--link``, whose symlinks may point outside the root.
        is_series: Tells whether a sub-folder of the images folder is one DICOM series image.
        tracked: The manifest's images (id → ext). A tracked image is never re-pointed at another
            file of its id, and is kept while its file is there even if no pattern matches it.
        tracked_labels: The manifest's labels (tag → (id → ext)), kept the same way.

    Returns:
        The images and labels on disk; label files without an image are listed as orphans
        (reported, never deleted); links leading outside the root, entries that are not
        regular files (FIFOs, devices, sockets) and newcomers whose id is tracked with another
        extension are skipped (listed in ``skipped``, with a warning).
    """
    state = DiskState()
    _scan_images(
        layout, patterns, linked=linked, tracked=tracked or {}, is_series=is_series, state=state
    )
    _scan_labels(layout, patterns, tracked_labels or {}, state)
    return state
