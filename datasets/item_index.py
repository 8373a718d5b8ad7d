"""Which item is which: a dataset's image records and one ``(record, frame)`` reference per item."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from itertools import repeat

from .records import ImageRecord

__all__ = ["ItemIndex", "Ref"]

Ref = tuple[int, int]
"""``(record index, frame)``; frame ``-1`` means the whole image."""


@dataclass(frozen=True, eq=False)
class ItemIndex:
    """The items of a dataset, immutable: selections and ``+`` build new indexes.

    Attributes:
        records: Every image record the items may point at.
        refs: One ``(record index, frame)`` per item, in item order.

    Example:
        >>> from medstore.datasets.records import ImageRecord
        >>> index = ItemIndex.whole([ImageRecord("a", "/a", {}), ImageRecord("b", "/b", {})])
        >>> len(index), index.image_id(1), index.keep_images({"b"}).refs
        (2, 'b', ((1, -1),))
    """

    records: tuple[ImageRecord, ...]
    refs: tuple[Ref, ...]

    @classmethod
    def whole(cls, records: Sequence[ImageRecord]) -> ItemIndex:
        """One item per record, the whole image.

        Args:
            records: The records.

        Returns:
            The index.
        """
        return cls(tuple(records), tuple(zip(range(len(records)), repeat(-1))))

    def __len__(self) -> int:
        return len(self.refs)

    def record_ids(self) -> list[int]:
        """The record indices the items use, each once, in item order."""
        seen: dict[int, None] = {}
        for rec, _ in self.refs:
            seen.setdefault(rec, None)
        return list(seen)

    def image_records(self) -> list[ImageRecord]:
        """The records of the images behind the items, each once, in item order."""
        return [self.records[i] for i in self.record_ids()]

    def item(self, index: int) -> tuple[ImageRecord, int]:
        """The record and frame of item ``index`` (negative counts from the end)."""
        rec, frame = self.refs[index]
        return self.records[rec], frame

    def image_id(self, index: int) -> str:
        """The image id of item ``index``."""
        return self.records[self.refs[index][0]].image_id

    def with_refs(self, refs: Iterable[Ref]) -> ItemIndex:
        """The same records with other items."""
        return ItemIndex(self.records, tuple(refs))

    def keep_records(self, keep: Collection[int]) -> ItemIndex:
        """The items of the records at indices ``keep``."""
        return self.with_refs(r for r in self.refs if r[0] in keep)

    def keep_images(self, image_ids: Collection[str]) -> ItemIndex:
        """The items of the images whose id is in ``image_ids``."""
        wanted = set(image_ids)
        return self.keep_records({i for i, r in enumerate(self.records) if r.image_id in wanted})

    def take(self, indices: Iterable[int]) -> ItemIndex:
        """The items at ``indices``.

        Raises:
            IndexError: An index is out of range.
        """
        try:
            return self.with_refs([self.refs[i] for i in indices])
        except IndexError as err:
            raise IndexError(f"subset index out of range for a dataset of {len(self)}") from err

    def concat(self, other: ItemIndex) -> ItemIndex:
        """This index's items, then ``other``'s (its records appended)."""
        offset = len(self.records)
        refs = self.refs + tuple((r + offset, f) for r, f in other.refs)
        return ItemIndex(self.records + other.records, refs)
