"""Recover what can be trusted from a corrupt manifest before ``doctor --rebuild`` replaces it.

A rebuild starts from the objects of the corrupt copy that still validate one by one (a whole
manifest that parses keeps every valid object; a truncated one keeps every object written out
completely before the cut), so their info, tags and ``label_info`` survive; within a damaged
object, the image entry and each label are kept or dropped on their own (a damaged label never
takes the image's info with it). Entries lost all the same are recovered from the store's side
files where they hold them (trash records, label history: :mod:`.info_recovery`); the scan of
the folders then adds what only the files know.

Examples:
    >>> raw = b'{"name": "n", "description": "", "objects": {'
    >>> raw += b'"a": {"image": {"ext": ".nii"}}, "b": {"ima'
    >>> sorted(salvage_manifest(raw, images_dir=".", labels_dir="labels")["objects"])
    ['a']
"""

from __future__ import annotations

import json
import re
from typing import Any

from ..errors import ManifestCorruptError
from .info_recovery import recover_lost_entries
from .layout import StoreLayout
from .manifest import empty_manifest, parse_manifest

__all__ = ["salvage_manifest"]

_SEPARATOR = re.compile(r"\s*,?\s*")
_COLON = re.compile(r"\s*:\s*")


def _objects_by_scan(text: str) -> dict[str, Any]:
    """The ``objects`` entries that decode completely, in order, up to the first damaged one."""
    start = text.find('"objects"')
    brace = text.find("{", start) if start >= 0 else -1
    if brace < 0:
        return {}
    decoder = json.JSONDecoder()
    objects: dict[str, Any] = {}
    pos = brace + 1
    while True:
        pos = _SEPARATOR.match(text, pos).end()  # type: ignore[union-attr]
        try:
            key, pos = decoder.raw_decode(text, pos)
            colon = _COLON.match(text, pos)
            if not isinstance(key, str) or colon is None or not colon.group().strip():
                break
            value, pos = decoder.raw_decode(text, colon.end())
        except (ValueError, RecursionError):
            break
        objects[key] = value
    return objects


def _whole(raw: bytes) -> dict[str, Any] | None:
    try:
        doc = json.loads(raw.decode("utf-8-sig", errors="replace"))
    except (ValueError, RecursionError):
        return None
    return doc if isinstance(doc, dict) else None


def salvage_manifest(
    raw: bytes, *, images_dir: str, labels_dir: str, layout: StoreLayout | None = None
) -> dict[str, Any]:
    """A valid manifest holding every object (or part of one) of ``raw`` that validates.

    Args:
        raw: The corrupt manifest's bytes.
        images_dir: Images folder to use if ``raw`` names none (or an invalid one).
        labels_dir: Labels folder likewise.
        layout: The store's paths: entries ``raw`` lost are then recovered from its side files
            where they still hold them (see :mod:`.info_recovery`).

    Returns:
        A manifest that :func:`~.manifest.parse_manifest` accepts.
    """
    doc = _whole(raw)
    text = raw.decode("utf-8", errors="replace")
    objects = doc.get("objects") if doc is not None else None
    if not isinstance(objects, dict):
        objects = _objects_by_scan(text)
    result = empty_manifest(images_dir, labels_dir)
    for key in ("name", "description", "images_dir", "labels_dir"):
        candidate = dict(result, objects={})
        if doc is not None and key in doc:
            candidate[key] = doc[key]
        try:
            result[key] = parse_manifest(json.dumps(candidate).encode(), source="salvage")[key]
        except ManifestCorruptError:
            continue
    for image_id, obj in objects.items():
        kept = _salvage_object(result, image_id, obj)
        if kept is not None:
            result["objects"][image_id] = kept
    if layout is not None:
        rebuilt = StoreLayout(
            layout.root, result["images_dir"], result["labels_dir"], layout.manifest_name
        )
        recover_lost_entries(result, rebuilt)
    return result


def _valid(doc: dict[str, Any], image_id: str, obj: Any) -> dict[str, Any] | None:
    """``obj`` as :func:`parse_manifest` reads it alone, or ``None`` if it does not validate."""
    single = dict(doc, objects={image_id: obj})
    try:
        return parse_manifest(json.dumps(single).encode(), source="salvage")["objects"][image_id]
    except (ManifestCorruptError, TypeError, ValueError):
        return None


def _salvage_object(doc: dict[str, Any], image_id: str, obj: Any) -> dict[str, Any] | None:
    """An object, or what validates of it: a damaged label never takes the image with it.

    An image entry whose info is damaged keeps its extension (the labels hang on it); each label
    is kept or dropped on its own.
    """
    whole = _valid(doc, image_id, obj)
    if whole is not None or not isinstance(obj, dict) or not isinstance(obj.get("image"), dict):
        return whole
    image = _valid(doc, image_id, {"image": obj["image"]})
    if image is None:
        image = _valid(doc, image_id, {"image": {"ext": obj["image"].get("ext"), "info": {}}})
    if image is None:
        return None
    found = obj.get("labels")
    labels: dict[str, Any] = found if isinstance(found, dict) else {}
    for tag, label in labels.items():
        one = _valid(doc, image_id, {"image": image["image"], "labels": {tag: label}})
        if one is not None:
            image["labels"][tag] = one["labels"][tag]
    return image
