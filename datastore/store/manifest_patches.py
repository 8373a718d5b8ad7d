"""Manifest patches: the changes a transaction makes to the manifest, applied to the state.

Examples:
    >>> doc = {"objects": {"a": {"image": {"ext": ".nii", "info": {"x": 1}}, "labels": {}}}}
    >>> info = doc["objects"]["a"]["image"]["info"]
    >>> apply_patches(doc, [{"op": "update_image_info", "image_id": "a", "info": {"y": 2}}])
    >>> doc["objects"]["a"]["image"]["info"], info
    ({'x': 1, 'y': 2}, {'x': 1})
"""

from __future__ import annotations

from typing import Any

__all__ = ["apply_patches"]


def apply_patches(doc: dict[str, Any], patches: list[dict[str, Any]]) -> None:
    """Apply manifest patches to ``doc`` in place; each patch is idempotent.

    An info dict already in ``doc`` is never changed: an update puts a new dict in its place, so
    bulk reads (:meth:`~.catalog.Catalog.image_entries`) may hand out the state's own info values
    without copying them.

    Ops: ``set_image`` (image_id, entry, keep_labels), ``remove_image`` (image_id),
    ``set_label`` (image_id, tag, entry), ``remove_label`` (image_id, tag), ``update_image_info``
    / ``update_label_info`` (info merged), ``set_name``, ``set_description``.

    Args:
        doc: The manifest dict.
        patches: The patches.
    """
    objects: dict[str, Any] = doc["objects"]
    for p in patches:
        op = p["op"]
        obj = objects.get(p.get("image_id", ""))
        if op == "set_image":
            labels = obj.get("labels", {}) if (obj and p.get("keep_labels", True)) else {}
            objects[p["image_id"]] = {"image": p["entry"], "labels": labels}
        elif op == "remove_image":
            objects.pop(p["image_id"], None)
        elif op == "set_label" and obj is not None:
            obj.setdefault("labels", {})[p["tag"]] = p["entry"]
        elif op == "remove_label" and obj is not None:
            obj.get("labels", {}).pop(p["tag"], None)
        elif op == "update_image_info" and obj is not None:
            image = obj["image"]
            image["info"] = {**image.get("info", {}), **p["info"]}
        elif op == "update_label_info" and obj is not None and p["tag"] in obj.get("labels", {}):
            label = obj["labels"][p["tag"]]
            label["info"] = {**label.get("info", {}), **p["info"]}
        elif op in ("set_name", "set_description"):
            doc[op.removeprefix("set_")] = p[op.removeprefix("set_")]
