"""Recover what can be trusted from a corrupt manifest before ``doctor --rebuild`` replaces it.

A rebuild starts from the objects of the corrupt copy that still validate one by one (a whole
manifest that parses keeps every valid object; a truncated one keeps every object written out
completely before the cut), so their info, tags and ``label_info`` survive; the scan of the
folders then adds what only the files know.

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


def salvage_manifest(raw: bytes, *, images_dir: str, labels_dir: str) -> dict[str, Any]:
    """A valid manifest holding every object of ``raw`` that validates on its own.

    Args:
        raw: The corrupt manifest's bytes.
        images_dir: Images folder to use if ``raw`` names none (or an invalid one).
        labels_dir: Labels folder likewise.

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
        single = dict(result, objects={image_id: obj})
        try:
            result["objects"][image_id] = parse_manifest(
                json.dumps(single).encode(), source="salvage"
            )["objects"][image_id]
        except (ManifestCorruptError, TypeError, ValueError):
            continue
    return result
