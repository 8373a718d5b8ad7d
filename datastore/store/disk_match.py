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
    >>> match_disk(StoreLayout(root), ("*.nii.gz",), doc).images
    {'a': '.nii.gz'}
    >>> (root / "b.nii.gz").write_bytes(b"")  # a new file: the full scan must run
    0
    >>> match_disk(StoreLayout(root), ("*.nii.gz",), doc) is None
    True
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import PurePosixPath
from typing import Any

from ..errors import InvalidIdError
from ..ids import derive_id, is_hidden, validate_tag
from .layout import StoreLayout
from .scan import DiskState

__all__ = ["match_disk"]


class _DiskDiffersError(Exception):
    """The disk is not exactly the state: the full scan decides."""


def _listing(folder: str) -> dict[str, os.DirEntry[str]]:
    try:
        with os.scandir(folder) as entries:
            return {entry.name: entry for entry in entries}
    except FileNotFoundError:
        return {}
    except OSError as err:
        raise _DiskDiffersError from err


def _check_tracked(entries: Mapping[str, os.DirEntry[str]], names: Mapping[str, str]) -> None:
    """Every tracked name is there, as what it was (a regular file, or a series folder)."""
    for name, ext in names.items():
        entry = entries.get(name)
        if entry is None:
            raise _DiskDiffersError
        try:
            if entry.is_symlink() or (entry.is_dir() if ext == "" else not entry.is_file()):
                raise _DiskDiffersError  # a link, or a file that became a folder or a FIFO
        except OSError as err:
            raise _DiskDiffersError from err


def _check_extras(
    entries: Mapping[str, os.DirEntry[str]],
    tracked: Mapping[str, str],
    patterns: Sequence[str],
    allowed: frozenset[str],
) -> None:
    """Every other name is one a scan ignores: hidden, known, or matching no pattern."""
    for name in entries.keys() - tracked.keys():
        if is_hidden(name) or name in allowed:
            continue
        entry = entries[name]
        if entry.is_dir() or derive_id(name, patterns) is not None:
            raise _DiskDiffersError  # a new image, a series folder to sniff, a file to report


def _image_names(objects: Mapping[str, Any]) -> dict[str, str]:
    return {
        image_id + obj["image"]["ext"]: obj["image"]["ext"] for image_id, obj in objects.items()
    }


def _label_names(objects: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    by_tag: dict[str, dict[str, str]] = {}
    for image_id, obj in objects.items():
        for tag, label in obj["labels"].items():
            by_tag.setdefault(tag, {})[image_id + label["ext"]] = label["ext"]
    return by_tag


def match_disk(
    layout: StoreLayout, patterns: Sequence[str], doc: Mapping[str, Any]
) -> DiskState | None:
    """What a full scan would find, when the disk holds exactly the state's files.

    Args:
        layout: The store's paths.
        patterns: File-name patterns (MONAI Label's ``extensions``).
        doc: The state (the manifest with the journal applied).

    Returns:
        The scan's result (the state's images and labels, no orphans, nothing skipped), or
        ``None``: something differs, and only a full scan can tell what.
    """
    objects = doc["objects"]
    if any(obj["image"]["info"].get("source_path") for obj in objects.values()):
        return None  # linked images: the scan checks where each link leads
    in_root = {layout.manifest_name, PurePosixPath(layout.labels_dir).parts[0]}
    allowed = frozenset(in_root if layout.images == layout.root else ())
    try:
        images = _image_names(objects)
        listing = _listing(str(layout.images))
        _check_tracked(listing, images)
        _check_extras(listing, images, patterns, allowed)
        labels = _label_names(objects)
        tag_dirs = _listing(str(layout.labels))
        empty_tags: list[str] = []
        for name, entry in tag_dirs.items():
            if is_hidden(name) or not entry.is_dir():
                continue
            if entry.is_symlink():
                raise _DiskDiffersError  # a linked tag folder: the scan checks where it leads
            if name not in labels:
                if not _empty_tag_folder(entry):
                    raise _DiskDiffersError  # a new tag with files, or a name the scan refuses
                empty_tags.append(name)
        for tag, names in labels.items():
            if tag not in tag_dirs:
                raise _DiskDiffersError
            found = _listing(str(layout.labels / tag))
            _check_tracked(found, names)
            _check_extras(found, names, patterns, frozenset())
    except _DiskDiffersError:
        return None
    return DiskState(
        images={image_id: obj["image"]["ext"] for image_id, obj in objects.items()},
        labels={
            tag: {name[: len(name) - len(ext)]: ext for name, ext in names.items()}
            for tag, names in labels.items()
        }
        | {tag: {} for tag in empty_tags},
    )


def _empty_tag_folder(entry: os.DirEntry[str]) -> bool:
    """A folder of a valid tag that holds nothing but hidden names (a scan finds nothing)."""
    try:
        validate_tag(entry.name)
    except InvalidIdError:
        return False  # the scan warns about it
    return all(is_hidden(name) for name in _listing(entry.path))
