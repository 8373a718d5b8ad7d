"""Record-level selection criteria and label statistics used by ``filter()`` and distributions."""

from __future__ import annotations

import fnmatch
import inspect
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from .records import ImageRecord

__all__ = [
    "FilterCriteria",
    "frame_label_counts",
    "normalized",
    "record_annotations",
    "segmentation_counts",
]

NamesOf = Callable[[ImageRecord], set[str]]


@dataclass(frozen=True)
class FilterCriteria:
    """The criteria of :meth:`StoreDataset.filter`; a record must match all given ones.

    Args:
        tags: Any of these in ``info["tags"]``.
        filename_pattern: ``fnmatch`` glob on the image file name.
        has_annotations: With (``True``) or without (``False``) annotations.
        annotation_names: A segmentation class or entity with any of these names.
        custom_fn: Datamint's predicate ``(resource, annotations)`` (the record and its entity
            annotations); a one-argument predicate gets the record only.

    Raises:
        ValueError: No criterion given.

    Example:
        >>> FilterCriteria(tags=["liver"]).tags
        ['liver']
    """

    tags: Sequence[str] | None = None
    filename_pattern: str | None = None
    has_annotations: bool | None = None
    annotation_names: Sequence[str] | None = None
    custom_fn: Callable[..., bool] | None = None

    def __post_init__(self) -> None:
        if all(v is None for v in vars(self).values()):
            raise ValueError("filter() needs at least one criterion")

    def matches(self, record: ImageRecord, names_of: NamesOf) -> bool:
        """Whether ``record`` meets every criterion.

        Args:
            record: The image record.
            names_of: Annotation names of a record (segmentation classes and entities).

        Returns:
            ``True`` when it matches.
        """
        if self.tags is not None and not set(self.tags) & set(record.tags):
            return False
        if self.filename_pattern is not None and not fnmatch.fnmatch(
            os.path.basename(record.path.rstrip("/")), self.filename_pattern
        ):
            return False
        if self.has_annotations is not None and record.has_annotations != self.has_annotations:
            return False
        if self.annotation_names is not None and not set(self.annotation_names) & names_of(record):
            return False
        if self.custom_fn is None:
            return True
        if _takes_two(self.custom_fn):
            return bool(self.custom_fn(record, record_annotations(record)))
        return bool(self.custom_fn(record))


def _takes_two(fn: Callable[..., bool]) -> bool:
    """Whether ``fn`` accepts two positional arguments (Datamint's ``(resource, annotations)``)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return True
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 2 or any(p.kind is p.VAR_POSITIONAL for p in params)


def record_annotations(record: ImageRecord) -> list[Any]:
    """The entity annotations kept in a record, each once (Datamint's ``resource_annotations``).

    Args:
        record: An image record.

    Returns:
        The annotation entities, in the store's order.

    Example:
        >>> record_annotations(ImageRecord("a", "/a.nii.gz", {}))
        []
    """
    seen: set[int] = set()
    out: list[Any] = []
    for entity in record.entities:
        ann = entity.annotation
        if ann is not None and id(ann) not in seen:
            seen.add(id(ann))
            out.append(ann)
    return out


def segmentation_counts(
    records: Iterable[ImageRecord], classes: Sequence[str], class_names_of: NamesOf
) -> tuple[dict[str, float], int]:
    """How many records have a label naming each class.

    Args:
        records: The records.
        classes: The global class list.
        class_names_of: Segmentation class names of one record.

    Returns:
        ``({class: count}, number of records)``.
    """
    counts = dict.fromkeys(classes, 0.0)
    total = 0
    for record in records:
        total += 1
        for name in class_names_of(record) & set(classes):
            counts[name] += 1
    return counts, total


def frame_label_counts(
    records: Iterable[ImageRecord], names: Sequence[str]
) -> tuple[dict[str, float], int]:
    """How many distinct (image, frame) pairs carry each frame label.

    Args:
        records: The records.
        names: The frame label list.

    Returns:
        ``({name: count}, total of the counts)``.
    """
    counts = dict.fromkeys(names, 0.0)
    for record in records:
        seen = {
            (e.frame_index, e.name)
            for e in record.entities
            if e.kind == "label" and e.frame_index is not None and e.name in counts
        }
        for _, name in seen:
            counts[name] += 1
    return counts, int(sum(counts.values()))


def normalized(counts: dict[str, float], total: int, normalize: bool) -> dict[str, float]:
    """``counts`` divided by ``total`` when ``normalize`` (and ``total``), else unchanged.

    Args:
        counts: The counts.
        total: The divisor.
        normalize: Whether to divide.

    Returns:
        The (possibly normalised) counts.

    Example:
        >>> normalized({"a": 1.0}, 4, True)
        {'a': 0.25}
    """
    if normalize and total:
        return {k: v / total for k, v in counts.items()}
    return counts
