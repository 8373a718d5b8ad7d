"""Annotation records by image version: an image sees only the annotations made for it.

Each stored record carries the ``image_version`` of the image it was made for (see
:mod:`medstore.datastore.store.image_versions`; records written before versions existed, or for
an image without one, carry none). When an id is reused after ``remove_image``, the new image's
annotation file still holds the earlier image's records: they are kept on disk, never shown on
the new image, and shown again when the earlier image is restored.

Examples:
    >>> items = [{"id": "a", "image_version": "v1"}, {"id": "b", "image_version": "v2"}]
    >>> records = select_version(items, "case", {"medstore.image_version": "v2"})
    >>> list(records), [r["id"] for r in records.to_write()]
    (['b'], ['a', 'b'])
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..store.image_versions import LEGACY_PREFIX, belongs, image_version, version_stamp

__all__ = ["VERSION_FIELD", "VersionedRecords", "select_version"]

VERSION_FIELD = "image_version"
"""The key of a stored annotation record that names its image version."""


class VersionedRecords(dict[str, dict[str, Any]]):
    """``{annotation id: record}`` of one image version; other versions' records kept aside.

    Args:
        records: The selected version's records (without :data:`VERSION_FIELD`).
        others: The other versions' stored records, written back unchanged.
        stamp: The version recorded with the selected records (``None``: none).
    """

    def __init__(
        self,
        records: Mapping[str, dict[str, Any]],
        *,
        others: list[dict[str, Any]],
        stamp: str | None,
    ) -> None:
        super().__init__(records)
        self.others = others
        self.stamp = stamp

    def to_write(self) -> list[dict[str, Any]]:
        """Every record to store: the other versions' first, then these, each with its version."""
        mine = [dict(r, **{VERSION_FIELD: self.stamp}) if self.stamp else r for r in self.values()]
        return [*self.others, *mine]


def select_version(
    items: list[dict[str, Any]],
    image_id: str,
    info: Mapping[str, Any] | None,
    wanted: str | None = None,
) -> VersionedRecords:
    """The records of the image version an annotation call works on.

    Args:
        items: Every record of the image's annotation file, in file order.
        image_id: The image id.
        info: The current image's info (``None``: the id is not in the store; the version
            written last is used).
        wanted: An explicit image version instead of the current image's.

    Returns:
        The selected records, keyed by annotation id.
    """
    matches: Callable[[Any], bool]
    if wanted is not None:
        stamp = None if wanted.startswith(LEGACY_PREFIX) else wanted
        matches = lambda recorded: belongs(recorded, wanted)  # noqa: E731
    elif info is not None:
        current, stamp = image_version(image_id, info), version_stamp(info)
        matches = lambda recorded: belongs(recorded, current)  # noqa: E731
    else:
        stamp = items[-1].get(VERSION_FIELD) if items else None
        matches = lambda recorded: recorded == stamp  # noqa: E731
    mine, others = {}, []
    for item in items:
        if matches(item.get(VERSION_FIELD)):
            mine[str(item["id"])] = {k: v for k, v in item.items() if k != VERSION_FIELD}
        else:
            others.append(item)
    return VersionedRecords(mine, others=others, stamp=stamp)
