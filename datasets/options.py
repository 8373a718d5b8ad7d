"""Dataset options: one table of the constructors' keywords and the frozen groups built from it."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, TypedDict, Unpack, cast

__all__ = [
    "MERGE_STRATEGIES",
    "OPTION_DEFAULTS",
    "OPTION_NAMES",
    "OPTION_TABLE",
    "AnnotationFilters",
    "DatasetKwargs",
    "DatasetOptions",
    "MergeStrategy",
    "OptionSpec",
    "SegmentationOptions",
]

MergeStrategy = Literal["union", "intersection", "mode"]
MERGE_STRATEGIES: tuple[str, ...] = ("union", "intersection", "mode")


class DatasetKwargs(TypedDict, total=False):
    """The flat keyword options every dataset constructor accepts (see :class:`DatasetOptions`)."""

    return_metainfo: bool
    return_segmentations: bool
    return_boxes: bool
    return_as_semantic_segmentation: bool
    semantic_seg_merge_strategy: MergeStrategy | None
    alb_transform: Any
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
    worklists: Collection[Any] | Literal["all"] | None
    all_annotations: bool
    return_annotations: bool
    transform: Callable[[dict[str, Any]], Any] | None


OptionGroup = Literal["dataset", "segmentation", "filters"]


@dataclass(frozen=True)
class OptionSpec:
    """One keyword option of the dataset constructors.

    Attributes:
        name: The keyword (Datamint's name).
        default: Its default in every constructor.
        group: Where :class:`DatasetOptions` keeps it: on itself (``"dataset"``), in
            ``segmentation`` or in ``filters``.
        field: The attribute name in that group.
        refilter: Changing it changes which records (images, labels, entities) are kept, so a
            derived dataset must re-read the store.
    """

    name: str
    default: Any
    group: OptionGroup
    field: str
    refilter: bool = False


OPTION_TABLE: tuple[OptionSpec, ...] = (
    OptionSpec("return_metainfo", True, "dataset", "return_metainfo"),
    OptionSpec("return_segmentations", True, "segmentation", "return_segmentations"),
    OptionSpec("return_boxes", False, "dataset", "return_boxes"),
    OptionSpec("return_as_semantic_segmentation", False, "segmentation", "as_semantic"),
    OptionSpec("semantic_seg_merge_strategy", None, "segmentation", "merge_strategy"),
    OptionSpec("alb_transform", None, "dataset", "alb_transform"),
    OptionSpec("include_unannotated", True, "dataset", "include_unannotated", refilter=True),
    OptionSpec("include_annotators", None, "filters", "include_annotators", refilter=True),
    OptionSpec("exclude_annotators", None, "filters", "exclude_annotators", refilter=True),
    OptionSpec("include_segmentation_names", None, "filters", "include_segmentation_names"),
    OptionSpec("exclude_segmentation_names", None, "filters", "exclude_segmentation_names"),
    OptionSpec(
        "include_image_label_names", None, "filters", "include_image_label_names", refilter=True
    ),
    OptionSpec(
        "exclude_image_label_names", None, "filters", "exclude_image_label_names", refilter=True
    ),
    OptionSpec(
        "include_frame_label_names", None, "filters", "include_frame_label_names", refilter=True
    ),
    OptionSpec(
        "exclude_frame_label_names", None, "filters", "exclude_frame_label_names", refilter=True
    ),
    OptionSpec(
        "allow_external_annotations", False, "dataset", "allow_external_annotations", refilter=True
    ),
    OptionSpec("image_labels_merge_strategy", None, "dataset", "image_labels_merge_strategy"),
    OptionSpec(
        "image_categories_merge_strategy", None, "dataset", "image_categories_merge_strategy"
    ),
    OptionSpec("worklists", "all", "dataset", "worklists", refilter=True),
    OptionSpec("all_annotations", False, "dataset", "all_annotations", refilter=True),
    OptionSpec("return_annotations", True, "dataset", "return_annotations"),
    OptionSpec("transform", None, "dataset", "transform"),
)
"""Every keyword option of the dataset constructors, in their signature order.

Validation (:meth:`DatasetOptions.from_kwargs`), :meth:`DatasetOptions.to_kwargs` and the re-filter
check (:meth:`DatasetOptions.needs_refilter`) all read this table; adding an option is one row
here, a field in its group, the :class:`DatasetKwargs` entry and the constructors' keyword (a test
checks that they agree).

Example:
    >>> [spec.name for spec in OPTION_TABLE][:2]
    ['return_metainfo', 'return_segmentations']
"""
OPTION_NAMES: tuple[str, ...] = tuple(spec.name for spec in OPTION_TABLE)
OPTION_DEFAULTS: Mapping[str, Any] = MappingProxyType({s.name: s.default for s in OPTION_TABLE})
_SPECS: Mapping[str, OptionSpec] = MappingProxyType({s.name: s for s in OPTION_TABLE})


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


def _worklist_ids(worklists: Collection[Any]) -> frozenset[str]:
    """Worklist ids from ids or worklist objects (their ``id``)."""
    return frozenset(str(getattr(w, "id", w)) for w in worklists)


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
        return_boxes: Put ``boxes`` (N, 4) pascal_voc and ``box_labels`` in the item.
        alb_transform: An albumentations transform applied jointly to the image, the masks and
            the boxes (per 2-D image, slice or frame; see :mod:`medstore.datasets.alb`).
        worklists: ``"all"`` or ``None`` (every worklist), or the worklist ids (or objects
            with an ``id``) whose entity annotations are kept (an annotation's ``worklist_id``).
        all_annotations: Keep entity annotations of every status; by default those still in
            work (``status`` ``"new"``, ``"opened"``...) are left out. Label files always count.
        return_annotations: Put the item's geometric annotations (boxes, lines, points...)
            as an ``annotations`` list in the item.
        transform: Callable applied to the finished item dict (e.g. MONAI dict transforms), or
            an albumentations transform (then used as ``alb_transform``).

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
    return_boxes: bool = False
    alb_transform: Any = None
    worklists: Any = "all"
    all_annotations: bool = False
    return_annotations: bool = True
    transform: Callable[[dict[str, Any]], Any] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.worklists, str) and self.worklists != "all":
            object.__setattr__(self, "worklists", frozenset({self.worklists}))
        elif self.worklists not in (None, "all") and not isinstance(self.worklists, frozenset):
            object.__setattr__(self, "worklists", _worklist_ids(self.worklists))
        _check_strategy("image_labels_merge_strategy", self.image_labels_merge_strategy)
        _check_strategy("image_categories_merge_strategy", self.image_categories_merge_strategy)

    @classmethod
    def from_kwargs(cls, **kwargs: Unpack[DatasetKwargs]) -> DatasetOptions:
        """Build the option groups from the flat keyword options of the dataset constructors.

        Every keyword is a row of :data:`OPTION_TABLE` (missing ones take its default).

        Args:
            **kwargs: Flat keyword options.

        Returns:
            The grouped, validated options.

        Raises:
            TypeError: A keyword that is not an option.
            ValueError: On conflicting or unknown values.

        Example:
            >>> DatasetOptions.from_kwargs(return_as_semantic_segmentation=True).segmentation
            SegmentationOptions(return_segmentations=True, as_semantic=True, merge_strategy=None)
        """
        unknown = sorted(set(kwargs) - set(OPTION_NAMES))
        if unknown:
            raise TypeError(f"unknown dataset option(s): {', '.join(unknown)}")
        values: dict[str, Any] = {**OPTION_DEFAULTS, **kwargs}
        groups: dict[str, dict[str, Any]] = {"dataset": {}, "segmentation": {}, "filters": {}}
        for spec in OPTION_TABLE:
            value = values[spec.name]
            groups[spec.group][spec.field] = _frozen(value) if spec.group == "filters" else value
        return cls(
            segmentation=SegmentationOptions(**groups["segmentation"]),
            filters=AnnotationFilters(**groups["filters"]),
            **groups["dataset"],
        )

    @classmethod
    def resolve(cls, options: DatasetOptions | None, values: Mapping[str, Any]) -> DatasetOptions:
        """The options of a dataset constructor: ``options=`` or its keyword options, not both.

        Args:
            options: Pre-built options, or ``None``.
            values: The constructor's arguments (entries that are not options are ignored).

        Returns:
            ``options`` when given, else the options built from ``values``.

        Raises:
            ValueError: ``options`` is given together with a keyword option off its default.

        Example:
            >>> DatasetOptions.resolve(None, {"self": None, "return_metainfo": False})
            DatasetOptions(return_metainfo=False, ...)
        """
        given = {n: values[n] for n in OPTION_NAMES if n in values}
        if options is None:
            return cls.from_kwargs(**given)
        if any(given[n] != OPTION_DEFAULTS[n] for n in given):
            raise ValueError("give options= or keyword options, not both")
        return options

    def value(self, name: str) -> Any:
        """The value of one flat option.

        Args:
            name: A name of :data:`OPTION_TABLE`.

        Returns:
            Its value in these options.

        Raises:
            KeyError: Not an option.

        Example:
            >>> DatasetOptions().value("return_as_semantic_segmentation")
            False
        """
        spec = _SPECS[name]
        holder = {"dataset": self, "segmentation": self.segmentation, "filters": self.filters}
        return getattr(holder[spec.group], spec.field)

    def to_kwargs(self) -> DatasetKwargs:
        """The flat keyword options that rebuild these options.

        Returns:
            Keyword options for :meth:`from_kwargs`.

        Example:
            >>> opts = DatasetOptions.from_kwargs(exclude_annotators=["bot"])
            >>> DatasetOptions.from_kwargs(**opts.to_kwargs()) == opts
            True
        """
        return cast(DatasetKwargs, {spec.name: self.value(spec.name) for spec in OPTION_TABLE})

    def needs_refilter(self, other: DatasetOptions) -> bool:
        """Whether ``other`` keeps different records of the store (see ``OptionSpec.refilter``).

        Args:
            other: The options to compare with.

        Returns:
            ``True`` when a record-level option differs.

        Example:
            >>> DatasetOptions().needs_refilter(DatasetOptions.from_kwargs(exclude_annotators="x"))
            True
        """
        return any(
            self.value(spec.name) != other.value(spec.name)
            for spec in OPTION_TABLE
            if spec.refilter
        )
