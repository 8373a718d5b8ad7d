"""Give a rebuilt manifest back what its side files still know of entries it lost.

``doctor --rebuild`` keeps every object of the corrupt manifest that still validates; an entry cut
off by a truncation or damaged beyond repair would come back from the scan with nothing but its
file name. The store's side files often still hold its information:

- **images**: the trash records of an id (``.medstore/trash/<id>/<stamp>/entry.json``: the image
  was removed and restored, replaced, or its file vanished and came back) hold its whole entry.
  A record whose checksum is that of the file now in the store describes that very file: its
  info (patient id, tags, image version...) comes back, with the labels the record lists whose
  files are still there;
- **labels**: the history of a label (``.medstore/history/<tag>/<id>/vNNNN.json``) holds the info
  of its kept versions. A kept version with the current file's checksum gives its info back
  exactly; otherwise the newest version kept from the same image (never from an earlier image of
  a reused id) gives its info (``label_info``, who drew it...) without its old checksum.

Everything recovered is marked in its info under :data:`RECOVERED_KEY` (where it came from).

Examples:
    >>> import tempfile, pathlib
    >>> from medstore.datastore.store.layout import StoreLayout
    >>> doc = {"objects": {}}
    >>> recover_lost_entries(doc, StoreLayout(pathlib.Path(tempfile.mkdtemp())))
    []
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path
from typing import Any

from .. import nofollow
from ..errors import DatastoreError
from .history import LabelHistory
from .image_versions import belongs, image_version
from .json_values import load_json
from .layout import StoreLayout
from .staging import file_checksum

__all__ = ["RECOVERED_KEY", "recover_lost_entries"]

RECOVERED_KEY = "medstore.recovered_from"
"""The info key naming the side file a recovered entry's info came from."""

_TRASH_RECORD = "entry.json"


def _listdir(folder: Path) -> list[str]:
    try:
        return sorted(nofollow.listdir(folder))  # a folder planted as a link is not read
    except OSError:
        return []


def _is_file_or_series(path: Path, ext: str) -> bool:
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return stat.S_ISREG(mode) or (stat.S_ISDIR(mode) and ext == "")


def _checksum(path: Path) -> str | None:
    try:
        return file_checksum(path)
    except OSError:
        return None


def _recover_image(layout: StoreLayout, image_id: str) -> dict[str, Any] | None:
    """The object of an untracked image whose trash record matches its file's checksum."""
    folder = layout.trash_root / image_id
    current: dict[str, str | None] = {}
    for stamp in reversed(_listdir(folder)):
        try:
            record = load_json(nofollow.read_bytes(folder / stamp / _TRASH_RECORD))
            entry = record["entry"]
            ext, info = entry["ext"], dict(entry["info"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if not isinstance(ext, str) or not isinstance(info.get("checksum"), str):
            continue
        path = layout.images / f"{image_id}{ext}"
        if ext not in current:
            current[ext] = _checksum(path) if _is_file_or_series(path, ext) else None
        if current[ext] != info["checksum"]:
            continue
        info[RECOVERED_KEY] = f"trash {stamp}"
        labels = {}
        for tag, label in (record.get("labels") or {}).items():
            with contextlib.suppress(KeyError, TypeError, ValueError):
                labels[tag] = _recorded_label(layout, tag, image_id, label, f"trash {stamp}")
        return {"image": {"ext": ext, "info": info}, "labels": labels}
    return None


def _recorded_label(
    layout: StoreLayout, tag: str, image_id: str, label: dict[str, Any], source: str
) -> dict[str, Any]:
    """A label entry from a record, for a label file still there (its checksum if it matches).

    Raises:
        KeyError: The file is not there.
    """
    ext, info = label["ext"], dict(label.get("info") or {})
    path = layout.labels / tag / f"{image_id}{ext}"
    if not isinstance(ext, str) or not path.is_file():
        raise KeyError(tag)
    if info.get("checksum") != _checksum(path):
        info.pop("checksum", None)
    info[RECOVERED_KEY] = source
    return {"ext": ext, "info": info}


def _recover_label(
    history: LabelHistory, layout: StoreLayout, tag: str, image_id: str, version: str
) -> dict[str, Any] | None:
    """The entry of an untracked label file, from the versions kept from the same image."""
    try:
        records = history.records(tag, image_id)
    except (OSError, ValueError, DatastoreError):
        return None
    mine = [r for r in records if belongs(r.get("image_version"), version)]
    for newest in reversed(mine):
        ext = newest.get("ext")
        path = layout.labels / tag / f"{image_id}{ext}"
        if not isinstance(ext, str) or not path.is_file():
            continue
        checksum = _checksum(path)
        exact = [r for r in mine if r.get("ext") == ext and r.get("checksum") == checksum]
        record = exact[-1] if exact else newest
        info = dict(record.get("info") or {})
        if not exact:
            info.pop("checksum", None)
        info[RECOVERED_KEY] = f"label history v{record.get('version', 0):04d}"
        info["name"] = f"{image_id}{ext}"
        return {"ext": ext, "info": info}
    return None


def recover_lost_entries(doc: dict[str, Any], layout: StoreLayout) -> list[str]:
    """Add to ``doc`` the image and label entries the side files can give back.

    Only entries ``doc`` lacks are added, and only for files present in the store.

    Args:
        doc: A rebuilt manifest (changed in place).
        layout: The store's paths (with the manifest's images and labels folders).

    Returns:
        What was recovered, e.g. ``["image a", "label final/a"]``.
    """
    objects: dict[str, Any] = doc["objects"]
    done: list[str] = []
    for image_id in _listdir(layout.trash_root):
        if image_id in objects:
            continue
        with contextlib.suppress(DatastoreError):
            layout.trash_dir(image_id)  # a valid id
            obj = _recover_image(layout, image_id)
            if obj is not None:
                objects[image_id] = obj
                done.append(f"image {image_id}")
    history = LabelHistory(layout)
    for tag in _listdir(layout.history_root):
        for image_id in _listdir(layout.history_root / tag):
            obj = objects.get(image_id)
            if obj is None or tag in obj["labels"]:
                continue
            version = image_version(image_id, obj["image"]["info"])
            entry = _recover_label(history, layout, tag, image_id, version)
            if entry is not None:
                obj["labels"][tag] = entry
                done.append(f"label {tag}/{image_id}")
    return done
