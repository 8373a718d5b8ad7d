"""A refresh's fast path: prove the disk holds exactly the store's files, without a full scan.

A full scan derives an id from every file name against every pattern, and the refresh then
reconciles, records vanished entries and recalls them: about 33 s at a million images, nearly
all of it spent finding that nothing changed. This module answers one question instead: does
each folder list exactly the files the state names (images as regular files or series folders,
labels per tag), plus names a scan would ignore anyway? One listing per folder and set
comparisons, no pattern matching for the tracked names. When the answer is yes, a scan would find
the state itself and the refresh changes nothing; anything else (a new, missing or replaced
file, a link, a sub-folder the scan would have to look into, a folder the scan warns about) says
no, and the full scan runs.

Examples:
    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> (root / "a.nii.gz").write_bytes(b"")
    0
    >>> doc = {"objects": {"a": {"image": {"ext": ".nii.gz", "info": {}}, "labels": {}}}}
    >>> match_disk(StoreLayout(root), ("*.nii.gz",), doc).state.images
    {'a': '.nii.gz'}
    >>> (root / "b.nii.gz").write_bytes(b"")  # a new file: the full scan must run
    0
    >>> match_disk(StoreLayout(root), ("*.nii.gz",), doc) is None
    True
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, NamedTuple

from ..errors import InvalidIdError
from ..ids import derive_id, is_hidden, validate_tag
from .layout import StoreLayout
from .manifest import gc_paused
from .scan import DiskState

__all__ = ["DiskMatch", "match_disk"]


class DiskMatch(NamedTuple):
    """A disk that holds exactly the state's files.

    Attributes:
        state: What a full scan would find.
        root_extras: The root folder's files the state does not name (temp files and the like,
            all names a scan ignores), when the root was listed (it holds the images); else
            ``None``.
    """

    state: DiskState
    root_extras: frozenset[str] | None


class _DiskDiffersError(Exception):
    """The disk is not exactly the state: the full scan decides."""


@dataclass
class _Folder:
    """One folder's names by kind (links are never followed: they count as ``other``)."""

    files: set[str] = field(default_factory=set)
    folders: set[str] = field(default_factory=set)
    other: set[str] = field(default_factory=set)

    @classmethod
    def listed(cls, path: Path) -> _Folder:
        try:
            with os.scandir(path) as listing:
                entries = list(listing)
        except FileNotFoundError:
            return cls()
        except OSError as err:
            raise _DiskDiffersError from err
        files = {e.name for e in entries if e.is_file(follow_symlinks=False)}
        rest = [e for e in entries if not e.is_file(follow_symlinks=False)]  # no name hashed
        folders = {e.name for e in rest if e.is_dir(follow_symlinks=False)}
        return cls(files, folders, {e.name for e in rest} - folders)  # links, FIFOs, devices


@dataclass
class _Expected:
    """The names the state puts in each folder, and the scan result they stand for."""

    image_files: set[str] = field(default_factory=set)
    series: set[str] = field(default_factory=set)
    images: dict[str, str] = field(default_factory=dict)
    label_files: dict[str, set[str]] = field(default_factory=dict)
    labels: dict[str, dict[str, str]] = field(default_factory=dict)

    @classmethod
    def of(cls, objects: Mapping[str, Any]) -> _Expected:
        """One pass over the state (a linked image is a link on disk: the check refuses it)."""
        expected = cls()
        images, image_files, series = expected.images, expected.image_files, expected.series
        label_files, labels = expected.label_files, expected.labels
        for image_id, obj in objects.items():
            ext = images[image_id] = obj["image"]["ext"]
            (image_files if ext else series).add(image_id + ext)
            for tag, label in obj["labels"].items():
                if tag not in labels:
                    labels[tag], label_files[tag] = {}, set()
                ext = labels[tag][image_id] = label["ext"]
                label_files[tag].add(image_id + ext)
        return expected


def _check(
    folder: _Folder,
    files: set[str],
    series: set[str],
    *,
    patterns: Sequence[str],
    allowed: frozenset[str],
    sub_folders_ignored: bool,
) -> frozenset[str]:
    """The folder holds ``files`` and ``series`` as such, and otherwise only what a scan ignores.

    Returns:
        Its files that are not in ``files`` (names a scan ignores).
    """
    if not (files <= folder.files and series <= folder.folders):
        raise _DiskDiffersError  # missing, or a file that became a folder, link or FIFO
    if any(not is_hidden(name) for name in folder.other):
        raise _DiskDiffersError  # a link (the scan checks where it leads) or a FIFO
    if not sub_folders_ignored:
        for name in folder.folders - series:
            if not (is_hidden(name) or name in allowed):
                raise _DiskDiffersError  # a folder the scan would look into (a new series)
    extras = frozenset(folder.files - files)
    for name in extras:
        if not (is_hidden(name) or name in allowed) and derive_id(name, patterns) is not None:
            raise _DiskDiffersError  # a new image or label, or one the scan reports
    return extras


def match_disk(
    layout: StoreLayout, patterns: Sequence[str], doc: Mapping[str, Any]
) -> DiskMatch | None:
    """What a full scan would find, when the disk holds exactly the state's files.

    Args:
        layout: The store's paths.
        patterns: File-name patterns (MONAI Label's ``extensions``).
        doc: The state (the manifest with the journal applied).

    Returns:
        The scan's result (the state's images and labels, no orphans, nothing skipped) and the
        root's other files, or ``None``: something differs, and only a full scan can tell what.
    """
    in_root = {layout.manifest_name, PurePosixPath(layout.labels_dir).parts[0]}
    allowed = frozenset(in_root if layout.images == layout.root else ())
    with gc_paused():
        try:
            expected = _Expected.of(doc["objects"])
            images = _Folder.listed(layout.images)
            extras = _check(
                images,
                expected.image_files,
                expected.series,
                patterns=patterns,
                allowed=allowed,
                sub_folders_ignored=False,
            )
            empty_tags = _check_tag_folders(layout, expected)
            for tag, names in expected.label_files.items():
                _check(
                    _Folder.listed(layout.labels / tag),
                    names,
                    set(),
                    patterns=patterns,
                    allowed=frozenset(),
                    sub_folders_ignored=True,
                )
        except _DiskDiffersError:
            return None
    labels = expected.labels
    for tag in empty_tags:
        labels[tag] = {}
    state = DiskState(images=expected.images, labels=labels)
    return DiskMatch(state, extras if layout.images == layout.root else None)


def _check_tag_folders(layout: StoreLayout, expected: _Expected) -> list[str]:
    """Every tag of the state has its folder; the others are empty, valid tags (returned)."""
    tags = _Folder.listed(layout.labels)
    if not expected.labels.keys() <= tags.folders:
        raise _DiskDiffersError  # a tag folder gone, or replaced by a link
    empty = []
    for name in tags.folders - expected.labels.keys():
        if not is_hidden(name):
            if not _empty_tag_folder(layout.labels / name):
                raise _DiskDiffersError  # a new tag with files, or a name the scan refuses
            empty.append(name)
    for name in tags.other:
        if not is_hidden(name) and (layout.labels / name).is_dir():
            raise _DiskDiffersError  # a linked tag folder: the scan checks where it leads
    return empty


def _empty_tag_folder(folder: Path) -> bool:
    """A folder of a valid tag that holds nothing but hidden names (a scan finds nothing)."""
    try:
        validate_tag(folder.name)
    except InvalidIdError:
        return False  # the scan warns about it
    listed = _Folder.listed(folder)
    return all(is_hidden(name) for name in listed.files | listed.folders | listed.other)
