"""Label spaces, label-map conversion (instance / semantic) and annotator merges."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..options import AnnotationFilters
from ..records import ImageRecord, LabelRecord

__all__ = [
    "LabelSpace",
    "entity_space",
    "instance_masks",
    "instance_masks_of_values",
    "merge_categories",
    "merge_masks",
    "merge_vectors",
    "nonzero_values",
    "segmentation_classes",
    "semantic_masks",
    "to_codes",
    "value_lut",
]


@dataclass(frozen=True)
class LabelSpace:
    """The dataset-wide class lists (one global list per kind, sorted, coded by position).

    Attributes:
        segmentation: Segmentation class names; class ``i`` has code ``i + 1`` (0 = background).
        image_labels: Image-level label names; one-hot position ``i``.
        image_categories: ``(identifier, value)`` pairs; category index ``i``.
        frame_labels: Frame-level label names; one-hot position ``i``.
    """

    segmentation: tuple[str, ...] = ()
    image_labels: tuple[str, ...] = ()
    image_categories: tuple[tuple[str, str], ...] = ()
    frame_labels: tuple[str, ...] = ()

    def union(self, other: LabelSpace) -> LabelSpace:
        """Both spaces' classes, each list sorted again (codes may change).

        Args:
            other: Another label space.

        Returns:
            The union (``self`` when both are equal).

        Example:
            >>> LabelSpace(("liver",)).union(LabelSpace(("kidney",))).segmentation
            ('kidney', 'liver')
        """
        if other == self:
            return self
        merged = (
            tuple(sorted(set(mine) | set(theirs)))
            for mine, theirs in zip(self.__dict__.values(), other.__dict__.values(), strict=True)
        )
        return LabelSpace(*merged)


def entity_space(
    records: Iterable[ImageRecord],
) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...], tuple[str, ...]]:
    """Image labels, image categories and frame labels found in (already filtered) records.

    Args:
        records: Filtered records.

    Returns:
        ``(image_labels, image_categories, frame_labels)``, each sorted.
    """
    labels: set[str] = set()
    categories: set[tuple[str, str]] = set()
    frames: set[str] = set()
    for record in records:
        for e in record.entities:
            if e.kind == "label":
                (labels if e.frame_index is None else frames).add(e.name)
            elif e.kind == "category" and e.frame_index is None and e.value is not None:
                categories.add((e.name, e.value))
    return tuple(sorted(labels)), tuple(sorted(categories)), tuple(sorted(frames))


def segmentation_classes(
    records: Iterable[ImageRecord],
    filters: AnnotationFilters,
    present_values: Callable[[ImageRecord, LabelRecord], Iterable[int]],
) -> tuple[str, ...]:
    """The global segmentation class list: union of names over the labels in use, sorted.

    Args:
        records: Filtered records.
        filters: The name filters (excluded names are dropped; their voxels become background).
        present_values: Called for a label without ``label_info`` to get its nonzero values,
            which then name the classes (``"1"``, ``"2"``, ...).

    Returns:
        Sorted class names.
    """
    names: set[str] = set()
    for record in records:
        for label in record.labels:
            if label.classes is not None:
                names.update(label.classes.values())
            else:
                names.update(str(v) for v in present_values(record, label) if v != 0)
        names.update(e.name for e in record.entities if e.kind == "segmentation")
    return tuple(sorted(n for n in names if filters.keeps_segmentation(n)))


def nonzero_values(array: np.ndarray) -> tuple[int, ...]:
    """The distinct positive values of a label map (floats rounded), ascending.

    Args:
        array: A label map of any numeric dtype.

    Returns:
        The values.

    Example:
        >>> nonzero_values(np.array([[0, 2], [2, 5]], dtype=np.uint8))
        (2, 5)
    """
    flat = np.asarray(array).ravel()
    if flat.dtype.kind not in "iub":
        flat = np.rint(flat).astype(np.int64)
    flat = flat[flat > 0] if flat.dtype.kind == "i" else flat
    counts = np.bincount(flat.astype(np.int64, copy=False))
    return tuple(int(v) for v in np.nonzero(counts)[0] if v)


def value_lut(
    classes: Mapping[int, str] | None, codes: Mapping[str, int], dtype: np.dtype | None = None
) -> np.ndarray:
    """Lookup table from a label file's voxel values to global class codes.

    Args:
        classes: The label's ``{value: name}``, or ``None`` (values name themselves).
        codes: Global ``{name: code}``.
        dtype: The label map's dtype; small unsigned types get a table covering their range so
            that :func:`to_codes` can index directly.

    Returns:
        ``uint8`` (or ``int64`` beyond 255 classes) table; its last entry is 0 and catches
        values clipped from above.

    Example:
        >>> value_lut({2: "b"}, {"b": 1}).tolist()
        [0, 0, 1, 0]
    """
    if classes is not None:
        top = max(classes, default=0)
    else:
        top = max((int(n) for n in codes if n.isdigit()), default=0)
    if dtype is not None and dtype.kind in "ub" and dtype.itemsize <= 2:
        top = max(top, int(np.iinfo(np.uint8 if dtype.kind == "b" else dtype).max))
    out_type = np.uint8 if len(codes) < 256 else np.int64
    lut = np.zeros(top + 2, dtype=out_type)
    for value in range(1, top + 1):
        name = str(value) if classes is None else classes.get(value)
        if name is not None and name in codes:
            lut[value] = codes[name]
    return lut


def to_codes(labelmap: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """Map a label map's values to global codes (negative/out-of-range values → 0).

    Args:
        labelmap: Integer (or integral float) label map.
        lut: Table from :func:`value_lut`.

    Returns:
        Codes with ``labelmap``'s shape, in ``lut``'s dtype.

    Example:
        >>> to_codes(np.array([[0, 2], [7, -1]]), value_lut({2: "b"}, {"b": 1})).tolist()
        [[0, 1], [0, 0]]
    """
    values = np.asarray(labelmap)
    if values.dtype.kind == "b":
        values = values.view(np.uint8)
    elif values.dtype.kind not in "iu":
        values = np.rint(values).astype(np.int64)
    if values.dtype.kind == "u" and int(np.iinfo(values.dtype).max) < len(lut):
        return lut[values]
    return np.take(lut, values, mode="clip")


def instance_masks(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One binary mask per class present in a code map (sorted by code).

    Args:
        codes: Global class codes (0 = background).

    Returns:
        ``(masks uint8 (N, *codes.shape), labels int64 (N,))``.

    Example:
        >>> m, lab = instance_masks(np.array([[0, 2], [2, 1]]))
        >>> lab.tolist(), m.shape
        ([1, 2], (2, 2, 2))
    """
    counts = np.bincount(codes.ravel().astype(np.int64, copy=False))
    present = np.nonzero(counts[1:])[0] + 1
    masks = np.empty((len(present), *codes.shape), dtype=np.uint8)
    for i, code in enumerate(present):
        np.equal(codes, code, out=masks[i], casting="unsafe")
    return masks, present.astype(np.int64)


_DIRECT_CODES = 8
"""Most classes :func:`instance_masks_of_values` compares the values against directly."""


def instance_masks_of_values(
    labelmap: np.ndarray,
    lut: np.ndarray,
    *,
    empty: Callable[[tuple[int, ...]], np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``instance_masks(to_codes(labelmap, lut))``, without building the code map when cheaper.

    With a few classes, each class mask is one comparison of the label values (two passes
    over a 128³ patch fewer than the lookup and the class count); with many classes, or a
    float label map, it goes through :func:`to_codes` and :func:`instance_masks`.

    Args:
        labelmap: Label map (values of the label file).
        lut: Table from :func:`value_lut`.
        empty: Allocates the uint8 masks of the direct route, given their shape (e.g. in
            shared memory); the masks returned are then its first ``N``, a view.

    Returns:
        ``(masks uint8 (N, *labelmap.shape), codes int64 (N,))`` as :func:`instance_masks`.

    Example:
        >>> lut = value_lut({2: "b", 5: "a"}, {"a": 1, "b": 2})
        >>> m, codes = instance_masks_of_values(np.array([[0, 2], [7, 2]], np.uint8), lut)
        >>> codes.tolist(), m[0].tolist()
        ([2], [[0, 1], [0, 1]])
    """
    values = np.asarray(labelmap)
    if values.dtype.kind == "b":
        values = values.view(np.uint8)
    codes = np.unique(lut[1:-1])
    codes = codes[codes != 0]
    if values.dtype.kind not in "iu" or len(codes) > _DIRECT_CODES:
        return instance_masks(to_codes(values, lut))
    shape = (len(codes), *values.shape)
    masks = empty(shape) if empty is not None else np.empty(shape, dtype=np.uint8)
    kept: list[int] = []
    for code in codes:
        mask = masks[len(kept)]
        sources = np.flatnonzero(lut[:-1] == code)  # values in the table's range (never 0)
        np.equal(values, int(sources[0]), out=mask, casting="unsafe")
        for value in sources[1:]:
            mask |= values == int(value)
        if mask.any():
            kept.append(int(code))
    if len(kept) < len(codes):
        masks = masks[: len(kept)] if empty is not None else masks[: len(kept)].copy()
    return masks, np.asarray(kept, dtype=np.int64)


def semantic_masks(codes: np.ndarray, num_classes: int) -> np.ndarray:
    """One-hot semantic masks ``(L+1, ...)`` with channel 0 = background.

    Args:
        codes: Global class codes.
        num_classes: ``L``.

    Returns:
        ``uint8`` masks.
    """
    out = np.empty((num_classes + 1, *codes.shape), dtype=np.uint8)
    for code in range(num_classes + 1):
        np.equal(codes, code, out=out[code], casting="unsafe")
    return out


def merge_vectors(stack: np.ndarray, strategy: str) -> np.ndarray:
    """Merge binary per-annotator arrays along axis 0.

    ``union``: any annotator; ``intersection``: all; ``mode``: a strict majority (a tie is 0,
    the lower value). An empty stack merges to all zeros.

    Args:
        stack: ``(A, ...)`` binary array.
        strategy: ``"union"``, ``"intersection"`` or ``"mode"``.

    Returns:
        ``uint8`` array of shape ``stack.shape[1:]``.

    Raises:
        ValueError: Unknown strategy.

    Example:
        >>> merge_vectors(np.array([[1, 1, 0], [1, 0, 0], [0, 1, 0]]), "mode").tolist()
        [1, 1, 0]
    """
    if stack.shape[0] == 0:
        return np.zeros(stack.shape[1:], dtype=np.uint8)
    if strategy == "union":
        return np.any(stack, axis=0).astype(np.uint8)
    if strategy == "intersection":
        return np.all(stack, axis=0).astype(np.uint8)
    if strategy == "mode":
        votes = np.sum(stack != 0, axis=0, dtype=np.int32)
        return (votes * 2 > stack.shape[0]).astype(np.uint8)
    raise ValueError(f"unknown merge strategy {strategy!r}")


def merge_masks(
    per_annotator: Sequence[np.ndarray], strategy: str, shape: Sequence[int]
) -> np.ndarray:
    """Merge semantic masks ``(L+1, ...)`` of several annotators; background recomputed.

    Foreground channels are merged class by class; channel 0 is then "no foreground class".

    Args:
        per_annotator: Semantic masks, one per annotator.
        strategy: Merge strategy.
        shape: ``(L+1, *spatial)``, used when there is no annotator.

    Returns:
        ``uint8 (L+1, ...)``.
    """
    if not per_annotator:
        out = np.zeros(tuple(shape), dtype=np.uint8)
        out[0] = 1
        return out
    merged = merge_vectors(np.stack([m[1:] for m in per_annotator]), strategy)
    background = (~np.any(merged, axis=0)).astype(np.uint8)
    return np.concatenate([background[None], merged], axis=0)


def merge_categories(indices: Sequence[int], num_categories: int, strategy: str) -> np.ndarray:
    """Merge per-annotator category indices.

    Args:
        indices: One category index per annotator.
        num_categories: Size of the category list.
        strategy: ``mode`` gives the most frequent index (ties → lowest; ``-1`` when none);
            ``union``/``intersection`` give a multi-hot ``(num_categories,)`` vector.

    Returns:
        ``int64`` scalar array (mode) or ``uint8`` vector.

    Example:
        >>> int(merge_categories([2, 1, 2], 3, "mode")), int(merge_categories([1, 2], 3, "mode"))
        (2, 1)
    """
    if strategy == "mode":
        if not indices:
            return np.array(-1, dtype=np.int64)
        counts = np.bincount(np.asarray(indices, dtype=np.int64), minlength=num_categories)
        return np.array(int(np.argmax(counts)), dtype=np.int64)
    onehots = np.zeros((len(indices), num_categories), dtype=np.uint8)
    for row, index in enumerate(indices):
        onehots[row, index] = 1
    return merge_vectors(onehots, strategy)
