"""Frozen option groups shared by every dataset class (segmentations, filters, merges)."""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any, Literal, TypedDict

__all__ = [
    "MERGE_STRATEGIES",
    "AnnotationFilters",
    "DatasetKwargs",
    "DatasetOptions",
    "MergeStrategy",
    "SegmentationOptions",
]

MergeStrategy = Literal["union", "intersection", "mode"]
MERGE_STRATEGIES: tuple[str, ...] = ("union", "intersection", "mode")


class DatasetKwargs(TypedDict, total=False):
    """The flat keyword options every dataset constructor accepts (see :class:`DatasetOptions`)."""

    return_metainfo: bool
    return_segmentations: bool
    return_as_semantic_segmentation: bool
    semantic_seg_merge_strategy: MergeStrategy | None
    include_unannotated: bool
    include_annotators: Collection[str] | None
    exclude_annotators: Collection[str] | None
    include_segmentation_names: Collection[str] | None
    exclude_segmentation_names: Collection[str] | None
    include_image_label_names: Collection[str] | None
    exclude_image_label_names: Collection[str] | None
    include_frame_label_names: Collection[str] | None
    exclude_frame_label_names: Collection[str] | None
    allow_external_annotations: bool
    image_labels_merge_strategy: MergeStrategy | None
    image_categories_merge_strategy: MergeStrategy | None
    transform: Callable[[dict[str, Any]], Any] | None


def _check_strategy(name: str, value: str | None) -> None:
    """Raise ``ValueError`` unless ``value`` is ``None`` or a known merge strategy."""
    if value is not None and value not in MERGE_STRATEGIES:
        raise ValueError(f"{name} must be one of {MERGE_STRATEGIES!r} or None, got {value!r}")


def _frozen(values: Collection[str] | None) -> frozenset[str] | None:
    """Normalise a name list to a frozenset (``None`` stays ``None``); a bare str is one name."""
    if values is None:
        return None
    if isinstance(values, str):
        return frozenset({values})
    return frozenset(values)


@dataclass(frozen=True)
class SegmentationOptions:
    """How segmentations are returned.

    Args:
        return_segmentations: Put ``segmentations`` (and ``seg_labels``) in the item.
        as_semantic: One channel per class plus background, ``(L+1, ...)``, instead of instance
            masks ``(N, ...)``.
        merge_strategy: With ``as_semantic``, merge all annotators into one tensor.

    Raises:
        ValueError: On an unknown strategy or a merge without semantic output.

    Example:
        >>> SegmentationOptions(as_semantic=True, merge_strategy="union").merge_strategy
        'union'
    """

    return_segmentations: bool = True
    as_semantic: bool = False
    merge_strategy: MergeStrategy | None = None

    def __post_init__(self) -> None:
        _check_strategy("semantic_seg_merge_strategy", self.merge_strategy)
        if self.as_semantic and not self.return_segmentations:
            raise ValueError("return_as_semantic_segmentation=True needs return_segmentations=True")
        if self.merge_strategy is not None and not self.as_semantic:
            raise ValueError(
                "semantic_seg_merge_strategy needs return_as_semantic_segmentation=True"
            )


@dataclass(frozen=True)
class AnnotationFilters:
    """Which annotators and annotation names a dataset keeps (include wins over nothing).

    Each include/exclude pair is exclusive: give at most one of the two. ``None`` keeps all.

    Args:
        include_annotators: Keep only these annotators (label tags / ``created_by``).
        exclude_annotators: Drop these annotators.
        include_segmentation_names: Keep only these segmentation class names.
        exclude_segmentation_names: Drop these segmentation class names.
        include_image_label_names: Keep only these image-level label names.
        exclude_image_label_names: Drop these image-level label names.
        include_frame_label_names: Keep only these frame-level label names.
        exclude_frame_label_names: Drop these frame-level label names.

    Raises:
        ValueError: When both members of a pair are given.

    Example:
        >>> f = AnnotationFilters(exclude_annotators={"model"})
        >>> f.keeps_annotator("alice"), f.keeps_annotator("model")
        (True, False)
    """

    include_annotators: frozenset[str] | None = None
    exclude_annotators: frozenset[str] | None = None
    include_segmentation_names: frozenset[str] | None = None
    exclude_segmentation_names: frozenset[str] | None = None
    include_image_label_names: frozenset[str] | None = None
    exclude_image_label_names: frozenset[str] | None = None
    include_frame_label_names: frozenset[str] | None = None
    exclude_frame_label_names: frozenset[str] | None = None

    def __post_init__(self) -> None:
        for kind in ("annotators", "segmentation_names", "image_label_names", "frame_label_names"):
            inc, exc = f"include_{kind}", f"exclude_{kind}"
            object.__setattr__(self, inc, _frozen(getattr(self, inc)))
            object.__setattr__(self, exc, _frozen(getattr(self, exc)))
            if getattr(self, inc) is not None and getattr(self, exc) is not None:
                raise ValueError(f"give {inc} or {exc}, not both")

    @staticmethod
    def _keeps(name: str, include: frozenset[str] | None, exclude: frozenset[str] | None) -> bool:
        if include is not None:
            return name in include
        return exclude is None or name not in exclude

    def keeps_annotator(self, name: str) -> bool:
        """Whether annotator ``name`` passes the annotator filter."""
        return self._keeps(name, self.include_annotators, self.exclude_annotators)

    def keeps_segmentation(self, name: str) -> bool:
        """Whether segmentation class ``name`` passes the filter."""
        return self._keeps(name, self.include_segmentation_names, self.exclude_segmentation_names)

    def keeps_image_label(self, name: str) -> bool:
        """Whether image-level label ``name`` passes the filter."""
        return self._keeps(name, self.include_image_label_names, self.exclude_image_label_names)

    def keeps_frame_label(self, name: str) -> bool:
        """Whether frame-level label ``name`` passes the filter."""
        return self._keeps(name, self.include_frame_label_names, self.exclude_frame_label_names)


@dataclass(frozen=True)
class DatasetOptions:
    """Every option of a dataset, grouped; built from the constructors' keyword arguments.

    Args:
        return_metainfo: Put ``metainfo`` in the item.
        include_unannotated: Keep images with no annotation left after filtering.
        allow_external_annotations: Keep entity annotations whose name is not in the store's
            annotation schema (when the store has one).
        segmentation: Segmentation output options.
        filters: Annotator and name filters.
        image_labels_merge_strategy: Merge per-annotator image labels into one tensor.
        image_categories_merge_strategy: Merge per-annotator image categories.
        transform: Callable applied to the finished item dict (e.g. MONAI dict transforms).

    Raises:
        ValueError: On an unknown merge strategy.

    Example:
        >>> DatasetOptions(image_labels_merge_strategy="mode").return_metainfo
        True
    """

    return_metainfo: bool = True
    include_unannotated: bool = True
    allow_external_annotations: bool = False
    segmentation: SegmentationOptions = field(default_factory=SegmentationOptions)
    filters: AnnotationFilters = field(default_factory=AnnotationFilters)
    image_labels_merge_strategy: MergeStrategy | None = None
    image_categories_merge_strategy: MergeStrategy | None = None
    transform: Callable[[dict[str, Any]], Any] | None = None

    def __post_init__(self) -> None:
        _check_strategy("image_labels_merge_strategy", self.image_labels_merge_strategy)
        _check_strategy("image_categories_merge_strategy", self.image_categories_merge_strategy)

    @classmethod
    def from_kwargs(
        cls,
        *,
        return_metainfo: bool = True,
        return_segmentations: bool = True,
        return_as_semantic_segmentation: bool = False,
        semantic_seg_merge_strategy: MergeStrategy | None = None,
        include_unannotated: bool = True,
        include_annotators: Collection[str] | None = None,
        exclude_annotators: Collection[str] | None = None,
        include_segmentation_names: Collection[str] | None = None,
        exclude_segmentation_names: Collection[str] | None = None,
        include_image_label_names: Collection[str] | None = None,
        exclude_image_label_names: Collection[str] | None = None,
        include_frame_label_names: Collection[str] | None = None,
        exclude_frame_label_names: Collection[str] | None = None,
        allow_external_annotations: bool = False,
        image_labels_merge_strategy: MergeStrategy | None = None,
        image_categories_merge_strategy: MergeStrategy | None = None,
        transform: Callable[[dict[str, Any]], Any] | None = None,
    ) -> DatasetOptions:
        """Build the option groups from the flat keyword options of the dataset constructors.

        Args:
            return_metainfo: See :class:`DatasetOptions`.
            return_segmentations: See :class:`SegmentationOptions`.
            return_as_semantic_segmentation: ``SegmentationOptions.as_semantic``.
            semantic_seg_merge_strategy: ``SegmentationOptions.merge_strategy``.
            include_unannotated: See :class:`DatasetOptions`.
            include_annotators: See :class:`AnnotationFilters`.
            exclude_annotators: See :class:`AnnotationFilters`.
            include_segmentation_names: See :class:`AnnotationFilters`.
            exclude_segmentation_names: See :class:`AnnotationFilters`.
            include_image_label_names: See :class:`AnnotationFilters`.
            exclude_image_label_names: See :class:`AnnotationFilters`.
            include_frame_label_names: See :class:`AnnotationFilters`.
            exclude_frame_label_names: See :class:`AnnotationFilters`.
            allow_external_annotations: See :class:`DatasetOptions`.
            image_labels_merge_strategy: See :class:`DatasetOptions`.
            image_categories_merge_strategy: See :class:`DatasetOptions`.
            transform: See :class:`DatasetOptions`.

        Returns:
            The grouped, validated options.

        Raises:
            ValueError: On conflicting or unknown values.

        Example:
            >>> DatasetOptions.from_kwargs(return_as_semantic_segmentation=True).segmentation
            SegmentationOptions(return_segmentations=True, as_semantic=True, merge_strategy=None)
        """
        return cls(
            return_metainfo=return_metainfo,
            include_unannotated=include_unannotated,
            allow_external_annotations=allow_external_annotations,
            segmentation=SegmentationOptions(
                return_segmentations=return_segmentations,
                as_semantic=return_as_semantic_segmentation,
                merge_strategy=semantic_seg_merge_strategy,
            ),
            filters=AnnotationFilters(
                include_annotators=_frozen(include_annotators),
                exclude_annotators=_frozen(exclude_annotators),
                include_segmentation_names=_frozen(include_segmentation_names),
                exclude_segmentation_names=_frozen(exclude_segmentation_names),
                include_image_label_names=_frozen(include_image_label_names),
                exclude_image_label_names=_frozen(exclude_image_label_names),
                include_frame_label_names=_frozen(include_frame_label_names),
                exclude_frame_label_names=_frozen(exclude_frame_label_names),
            ),
            image_labels_merge_strategy=image_labels_merge_strategy,
            image_categories_merge_strategy=image_categories_merge_strategy,
            transform=transform,
        )

    def to_kwargs(self) -> DatasetKwargs:
        """The flat keyword options that rebuild these options.

        Returns:
            Keyword options for :meth:`from_kwargs`.

        Example:
            >>> opts = DatasetOptions.from_kwargs(exclude_annotators=["bot"])
            >>> DatasetOptions.from_kwargs(**opts.to_kwargs()) == opts
            True
        """
        f, seg = self.filters, self.segmentation
        return DatasetKwargs(
            return_metainfo=self.return_metainfo,
            return_segmentations=seg.return_segmentations,
            return_as_semantic_segmentation=seg.as_semantic,
            semantic_seg_merge_strategy=seg.merge_strategy,
            include_unannotated=self.include_unannotated,
            include_annotators=f.include_annotators,
            exclude_annotators=f.exclude_annotators,
            include_segmentation_names=f.include_segmentation_names,
            exclude_segmentation_names=f.exclude_segmentation_names,
            include_image_label_names=f.include_image_label_names,
            exclude_image_label_names=f.exclude_image_label_names,
            include_frame_label_names=f.include_frame_label_names,
            exclude_frame_label_names=f.exclude_frame_label_names,
            allow_external_annotations=self.allow_external_annotations,
            image_labels_merge_strategy=self.image_labels_merge_strategy,
            image_categories_merge_strategy=self.image_categories_merge_strategy,
            transform=self.transform,
        )
