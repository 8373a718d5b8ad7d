"""Three-way merge of the manifest MONAI Label wrote with the changes medstore journalled.

When a store keeps recent changes in its journal, ``datastore_v2.json`` on disk is the journal's
*base* until the next compaction. If another program (MONAI Label) rewrites the manifest in
between, both sides changed the same base: its copy holds *their* changes, base plus journal holds
*ours*. The merge keeps both, per image and per label:

- an image only one side changed takes that side's object;
- when both changed it, it is merged key by key, down through the image entry, each label and
  their ``info``: each key takes the side that changed it (ours when both did);
- where one side deleted what the other changed, the changed version is kept (a deletion
  never discards somebody's new work);
- the store's ``name``/``description`` take ours when we changed them.

Examples:
    >>> base = {"a": {"image": {"ext": ".nii"}, "labels": {}}}
    >>> theirs = {"a": base["a"], "b": {"image": {"ext": ".nii"}, "labels": {}}}
    >>> ours = {"a": None}
    >>> sorted(merge_objects(base, theirs, ours))
    ['b']
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["merge_document", "merge_objects"]


_ABSENT: Any = object()


def _merge_dicts(
    base: Mapping[str, Any], theirs: dict[str, Any], mine: Mapping[str, Any]
) -> dict[str, Any]:
    """Merge two changed copies of one dict key by key (nested dicts likewise).

    A key our side did not change keeps their value; one we changed takes ours, unless we
    deleted it while they changed it (a deletion never discards somebody's new work).
    """
    out = dict(theirs)
    for key in {*mine, *base}:
        was, now_mine = base.get(key, _ABSENT), mine.get(key, _ABSENT)
        if now_mine == was:
            continue
        now_theirs = theirs.get(key, _ABSENT)
        if now_mine is _ABSENT:
            if now_theirs == was:
                out.pop(key, None)
        elif isinstance(now_mine, dict) and isinstance(now_theirs, dict):
            out[key] = _merge_dicts(was if isinstance(was, dict) else {}, now_theirs, now_mine)
        else:
            out[key] = now_mine
    return out


def _merge_object(
    base: dict[str, Any] | None, theirs: dict[str, Any] | None, mine: dict[str, Any] | None
) -> dict[str, Any] | None:
    """One image changed on both sides (differently): merge it part by part."""
    if mine is None:
        return theirs  # we deleted, they changed: keep their work
    if theirs is None:
        return mine  # they deleted, we changed: keep ours
    return _merge_dicts(base or {}, theirs, mine)


def merge_objects(
    base: Mapping[str, Any],
    theirs: dict[str, Any],
    ours: Mapping[str, dict[str, Any] | None],
) -> dict[str, Any]:
    """Fold our changed objects into theirs (in place), keeping what each side changed.

    Args:
        base: The objects both sides started from (the journal's base manifest).
        theirs: The objects of the manifest on disk; changed in place and returned.
        ours: Each image id the journal touched, with its object now (``None``: removed).

    Returns:
        ``theirs``, merged.
    """
    for image_id, mine in ours.items():
        was = base.get(image_id)
        if mine == was:
            continue  # the journal's changes to this image cancel out
        now = theirs.get(image_id)
        if now == was:
            merged = mine
        elif now == mine:
            continue
        else:
            merged = _merge_object(was, now, mine)
        if merged is None:
            theirs.pop(image_id, None)
        else:
            theirs[image_id] = merged
    return theirs


def merge_document(
    base: Mapping[str, Any], theirs: dict[str, Any], ours: Mapping[str, Any]
) -> dict[str, Any]:
    """Merge the store-level fields (``name``, ``description``) and the objects.

    Args:
        base: The base manifest dict.
        theirs: The manifest dict on disk (changed in place and returned).
        ours: ``{"objects": {id: object or None}, "name": ..., "description": ...}``: what the
            journal holds now.

    Returns:
        ``theirs``, merged.
    """
    for key in ("name", "description"):
        if key in ours and ours[key] != base.get(key):
            theirs[key] = ours[key]
    merge_objects(base["objects"], theirs["objects"], ours["objects"])
    return theirs
