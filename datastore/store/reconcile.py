"""Reconcile a manifest with one disk scan by set differences.

Examples:
    >>> from medstore.datastore.store.scan import DiskState
    >>> doc = {"objects": {}}
    >>> patches = []
    >>> reconcile(doc, DiskState(images={"a": ".nii"}), patches)
    >>> sorted(doc["objects"]), patches[0]["op"]
    (['a'], 'set_image')
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from .image_versions import VERSION_KEY, new_version
from .manifest_patches import apply_patches
from .scan import DiskState

__all__ = ["reconcile"]


def reconcile(
    doc: dict[str, Any],
    state: DiskState,
    patches: list[dict[str, Any]],
    *,
    remembered: Mapping[str, Mapping[str, Any]] | None = None,
    new_versions: bool = True,
) -> None:
    """Bring ``doc`` in line with ``state``, appending the patches that do it.

    New images and labels get MONAI Label's ``ts`` and ``name`` (a new image also a new version
    id, see :mod:`.image_versions`); entries whose files are gone are
    dropped. A tracked image is never re-pointed at another file (the scan reports such files
    and leaves them out). Existing info is kept.

    Args:
        doc: The manifest dict (patched in place).
        state: What the scan found.
        patches: Receives the patches applied.
        remembered: Trash records of images whose files vanished earlier and are back: a new
            image (and each of its labels found with its old extension) gets its old info back.
        new_versions: Give new images a version id; ``False`` for an index kept only in memory
            (an id it would give could not be found again after the process ends).
    """
    objects: dict[str, Any] = doc["objects"]
    remembered = remembered or {}
    now = int(time.time())
    new: list[dict[str, Any]] = []
    for image_id in objects.keys() - state.images.keys():
        new.append({"op": "remove_image", "image_id": image_id})
    for image_id, ext in state.images.items():
        obj = objects.get(image_id)
        if obj is None or obj["image"]["ext"] != ext:
            old = obj["image"] if obj else remembered.get(image_id, {}).get("entry")
            info = dict(old["info"]) if old else {}
            if not old and new_versions:
                info[VERSION_KEY] = new_version()
            info.update({"ts": info.get("ts", now), "name": image_id + ext})
            new.append(
                {
                    "op": "set_image",
                    "image_id": image_id,
                    "entry": {"ext": ext, "info": info},
                    "keep_labels": True,
                }
            )
    for image_id in state.images.keys() & objects.keys():
        for tag in objects[image_id]["labels"].keys() - _tags_with(state, image_id):
            new.append({"op": "remove_label", "image_id": image_id, "tag": tag})
    for tag, found in state.labels.items():
        for image_id, ext in found.items():
            label = objects.get(image_id, {}).get("labels", {}).get(tag)
            if label is None or label["ext"] != ext:
                old = label or remembered.get(image_id, {}).get("labels", {}).get(tag)
                info = dict(old["info"]) if old and (label or old["ext"] == ext) else {}
                info.update({"ts": info.get("ts", now), "name": image_id + ext})
                new.append(
                    {
                        "op": "set_label",
                        "image_id": image_id,
                        "tag": tag,
                        "entry": {"ext": ext, "info": info},
                    }
                )
    apply_patches(doc, new)
    patches.extend(new)


def _tags_with(state: DiskState, image_id: str) -> set[str]:
    return {tag for tag, found in state.labels.items() if image_id in found}
