"""MONAI Label's manifest schema, checked: the one validation of ``datastore_v2.json`` content.

Reading the manifest (:func:`~.manifest.parse_manifest`), salvaging a corrupt one and building
MONAI Label's pydantic models (:mod:`.models`) all go through these checks: types as MONAI Label
0.8.5's models declare them, plus what makes a manifest safe to act on (ids and tags follow the
naming rules, folders and extensions stay inside the store). They work on plain dicts in place
(defaults filled in), so a 10 000-image manifest is checked without building 30 000 objects.

Examples:
    >>> doc = validate_manifest({"name": "n", "description": "", "objects": {
    ...     "a": {"image": {"ext": ".nii.gz"}}}}, source="m.json")
    >>> doc["labels_dir"], doc["objects"]["a"]
    ('labels', {'image': {'ext': '.nii.gz', 'info': {}}, 'labels': {}})
    >>> try:
    ...     validate_manifest({"name": "n", "description": "", "images_dir": "../x"}, source="m")
    ... except ManifestCorruptError as err:
    ...     print(err)
    manifest m: images_dir '../x' points outside the store
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ..errors import InvalidIdError, ManifestCorruptError
from ..ids import validate_id, validate_tag

__all__ = ["TOP_DEFAULTS", "validate_entry", "validate_manifest", "validate_object"]

TOP_DEFAULTS: Mapping[str, str | None] = MappingProxyType(
    {"images_dir": "", "labels_dir": "labels", "objects": None}
)
"""Keys a manifest may leave out, with their default (``objects``: a new empty dict each time)."""


_EXT_REFUSED = re.compile(r"[/\\\x00]")

# A store has a handful of distinct tags and extensions over a million entries: each distinct
# valid one is checked once (the ids, all distinct, are each checked).
_valid_tag = functools.lru_cache(maxsize=1024)(validate_tag)
_GOOD_EXTS: set[str] = set()
_GOOD_EXTS_MAX = 1024


def _check_dir(doc: dict[str, Any], key: str, source: str) -> None:
    value = doc[key]
    if not isinstance(value, str):
        raise ManifestCorruptError(f"manifest {source}: {key!r} must be a string")
    parts = Path(value).parts
    if Path(value).is_absolute() or ".." in parts or "\x00" in value:
        raise ManifestCorruptError(f"manifest {source}: {key} {value!r} points outside the store")


def validate_entry(entry: Any, *, where: str, source: str) -> dict[str, Any]:
    """Check one file's entry (``{"ext", "info"}``, MONAI Label's ``DataModel``); fill defaults.

    Raises:
        ManifestCorruptError: Not an object, an ext that could leave its folder, info not an
            object.
    """
    if not isinstance(entry, dict):
        raise ManifestCorruptError(f"manifest {source}: {where} must be an object")
    ext = entry.get("ext", "")
    if not isinstance(ext, str) or any(c in ext for c in "/\\\x00") or ".." in ext:
        raise ManifestCorruptError(f"manifest {source}: {where} has an invalid ext {ext!r}")
    if not isinstance(entry.get("info", {}), dict):
        raise ManifestCorruptError(f"manifest {source}: {where}.info must be an object")
    entry.setdefault("ext", "")
    entry.setdefault("info", {})
    return entry


def validate_object(
    obj: Any, *, image_id: str, source: str, tag_counts: dict[str, int] | None = None
) -> dict[str, Any]:
    """Check one image's object (``{"image", "labels"}``, MONAI Label's ``ImageLabelModel``).

    Args:
        obj: The object (defaults filled in, in place).
        image_id: Its id (for errors).
        source: The path to name in errors.
        tag_counts: When given, each of the object's label tags is counted in it.

    Raises:
        ManifestCorruptError: No image, labels not an object, a bad tag or entry.
    """
    if not isinstance(obj, dict) or "image" not in obj:
        raise ManifestCorruptError(f"manifest {source}: object {image_id!r} has no image")
    if not _plain_entry(obj["image"]):
        validate_entry(obj["image"], where=f"objects[{image_id!r}].image", source=source)
    labels = obj.setdefault("labels", {})
    if not isinstance(labels, dict):
        raise ManifestCorruptError(f"manifest {source}: {image_id!r}.labels must be an object")
    for tag, label in labels.items():
        try:
            _valid_tag(tag)
        except InvalidIdError as err:
            raise ManifestCorruptError(f"manifest {source}: {err}") from err
        if not _plain_entry(label):
            validate_entry(label, where=f"objects[{image_id!r}].labels[{tag!r}]", source=source)
        if tag_counts is not None:
            tag_counts[tag] = tag_counts.get(tag, 0) + 1
    return obj


def _plain_entry(entry: Any) -> bool:
    """Whether ``entry`` is complete and valid as it is: the fast path of :func:`validate_entry`
    (a store opens by checking every entry; the full check names what is wrong)."""
    if type(entry) is not dict or type(entry.get("info")) is not dict:
        return False
    ext = entry.get("ext")
    if type(ext) is not str:
        return False
    if ext in _GOOD_EXTS:
        return True
    good = _EXT_REFUSED.search(ext) is None and ".." not in ext
    if good and len(_GOOD_EXTS) < _GOOD_EXTS_MAX:
        _GOOD_EXTS.add(ext)
    return good


def validate_manifest(
    doc: Any, *, source: str, tag_counts: dict[str, int] | None = None
) -> dict[str, Any]:
    """Check a decoded manifest (MONAI Label's ``LocalDatastoreModel``) and fill its defaults.

    Args:
        doc: The decoded JSON (changed in place: defaults are filled in).
        source: The path to name in errors.
        tag_counts: When given, filled with the number of images per label tag (counted in the
            same pass: a store's ``status()`` is then ready when it opens).

    Returns:
        ``doc``.

    Raises:
        ManifestCorruptError: Any reason the manifest cannot be trusted.
    """
    if not isinstance(doc, dict):
        raise ManifestCorruptError(f"manifest {source} must hold a JSON object")
    for key in ("name", "description"):
        if not isinstance(doc.get(key), str):
            raise ManifestCorruptError(f"manifest {source}: {key!r} is missing or not a string")
    for key, default in TOP_DEFAULTS.items():
        doc.setdefault(key, {} if default is None else default)
    _check_dir(doc, "images_dir", source)
    _check_dir(doc, "labels_dir", source)
    objects = doc["objects"]
    if not isinstance(objects, dict):
        raise ManifestCorruptError(f"manifest {source}: 'objects' must be an object")
    for image_id, obj in objects.items():
        try:
            validate_id(image_id)
        except InvalidIdError as err:
            raise ManifestCorruptError(f"manifest {source}: {err}") from err
        validate_object(obj, image_id=image_id, source=source, tag_counts=tag_counts)
    return doc
