"""How many images a store holds, and how many carry each label tag, kept as the store changes.

``status()`` reports these counts. Counting them walks every image (0.7 s at a million); kept
here, a change costs O(images it touched) and a ``status()`` O(tags). The counts are computed
once from the state when first asked, and then moved along by every change the store makes or
reads from the journal; anything else that changes the state in place drops them (they are
counted again at the next ask).

Examples:
    >>> counts = LabelCounts.of({"a": {"labels": {"final": {}}}, "b": {"labels": {}}})
    >>> counts.status()
    {'total': 2, 'completed': 1, 'label_tags': {'final': 1}}
    >>> counts.replace({"labels": {}}, {"labels": {"final": {}, "draft": {}}})
    >>> counts.status()
    {'total': 2, 'completed': 2, 'label_tags': {'final': 2, 'draft': 1}}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .layout import DefaultLabelTag

__all__ = ["LabelCounts"]

_FINAL = str(DefaultLabelTag.FINAL)


class LabelCounts:
    """Images, ``final``-labelled images and images per label tag."""

    def __init__(self) -> None:
        self._total = 0
        self._tags: dict[str, int] = {}

    @classmethod
    def of(cls, objects: Mapping[str, Mapping[str, Any]]) -> LabelCounts:
        """Count the manifest's ``objects``."""
        counts = cls()
        counts._total = len(objects)
        tags = counts._tags
        for obj in objects.values():
            for tag in obj["labels"]:
                tags[tag] = tags.get(tag, 0) + 1
        return counts

    @classmethod
    def from_tags(cls, total: int, tags: Mapping[str, int]) -> LabelCounts:
        """Counts already taken: ``total`` images, ``tags`` images per label tag."""
        counts = cls()
        counts._total = total
        counts._tags = {tag: n for tag, n in tags.items() if n}
        return counts

    def replace(self, old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> None:
        """One image changed from ``old`` to ``new`` (``None``: absent before / after)."""
        if old is not None:
            self._total -= 1
            for tag in old["labels"]:
                left = self._tags[tag] - 1
                if left:
                    self._tags[tag] = left
                else:
                    del self._tags[tag]
        if new is not None:
            self._total += 1
            for tag in new["labels"]:
                self._tags[tag] = self._tags.get(tag, 0) + 1

    def status(self) -> dict[str, Any]:
        """``{"total", "completed", "label_tags": {tag: count}}``, as MONAI Label reports it."""
        return {
            "total": self._total,
            "completed": self._tags.get(_FINAL, 0),
            "label_tags": dict(self._tags),
        }
