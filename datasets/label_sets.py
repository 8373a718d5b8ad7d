"""A dataset's class lists, computed once from its records and shared with its subsets and parts."""

from __future__ import annotations

from collections.abc import MutableMapping, Sequence

import numpy as np

from .item.assembly import label_volume
from .item.label_space import LabelSpace, entity_space, nonzero_values, segmentation_classes
from .loading.cache import VolumeCache
from .options import AnnotationFilters
from .records import ImageRecord, LabelRecord

__all__ = ["DatasetLabels"]


class DatasetLabels:
    """The label sets of one list of records: entity lists at once, segmentation classes lazily.

    Subsets, filters and split parts of a dataset index the same records with the same filters,
    so they share one ``DatasetLabels`` (and compute the segmentation classes once between them).

    Args:
        records: The dataset's records (all of them, not only those its items use).
        filters: The annotation filters in force.
        cache: Where labels without ``label_info`` are read to find their values.
        values: ``{label path: nonzero values}`` already read (shared, filled as labels are read).
        space: A finished label space (e.g. the union of two datasets'); default: computed.

    Example:
        >>> import tempfile
        >>> labels = DatasetLabels([], AnnotationFilters(), VolumeCache(tempfile.mkdtemp()))
        >>> labels.space().segmentation
        ()
    """

    def __init__(
        self,
        records: Sequence[ImageRecord],
        filters: AnnotationFilters,
        cache: VolumeCache,
        *,
        values: MutableMapping[str, tuple[int, ...]] | None = None,
        space: LabelSpace | None = None,
    ) -> None:
        self._records = records
        self._filters = filters
        self._cache = cache
        self.values: MutableMapping[str, tuple[int, ...]] = values if values is not None else {}
        self._ready = space is not None
        self._space = space if space is not None else LabelSpace((), *entity_space(records))

    @property
    def entities(self) -> LabelSpace:
        """The space as it stands: entity lists always, segmentation classes once computed."""
        return self._space

    def space(self) -> LabelSpace:
        """The full label space; the first call reads labels without ``label_info``.

        Returns:
            Segmentation classes, image labels, image categories and frame labels.
        """
        if not self._ready:
            classes = segmentation_classes(self._records, self._filters, self.present_values)
            s = self._space
            self._space = LabelSpace(classes, s.image_labels, s.image_categories, s.frame_labels)
            self._ready = True
        return self._space

    def with_filters(self, filters: AnnotationFilters) -> DatasetLabels:
        """The same records and entity lists under other segmentation filters (recomputed lazily).

        Args:
            filters: The new filters.

        Returns:
            A new ``DatasetLabels`` sharing the values already read.
        """
        s = self._space
        new = DatasetLabels(self._records, filters, self._cache, values=self.values, space=s)
        new._space = LabelSpace((), s.image_labels, s.image_categories, s.frame_labels)
        new._ready = False
        return new

    def merged(self, other: DatasetLabels, records: Sequence[ImageRecord]) -> DatasetLabels:
        """The label sets of two datasets' records together (for ``a + b``).

        Args:
            other: The second dataset's label sets.
            records: Both datasets' records.

        Returns:
            The union of both spaces (codes may change), with the values read by either.
        """
        space = self.space().union(other.space())
        values = {**self.values, **other.values}
        return DatasetLabels(records, self._filters, self._cache, values=values, space=space)

    def present_values(self, record: ImageRecord, label: LabelRecord) -> tuple[int, ...]:
        """Nonzero values of a label without ``label_info`` (read through the cache once).

        Args:
            record: The label's image.
            label: The label.

        Returns:
            Its distinct positive values.
        """
        if label.path not in self.values:
            array = label_volume(self._cache, record, label, keep_open=False).array
            self.values[label.path] = nonzero_values(np.asarray(array))
        return self.values[label.path]

    def class_names(self, record: ImageRecord) -> set[str]:
        """The segmentation class names an image's labels hold (values when unnamed).

        Args:
            record: The image.

        Returns:
            The names.
        """
        names: set[str] = set()
        for label in record.labels:
            if label.classes is not None:
                names.update(label.classes.values())
            else:
                names.update(str(v) for v in self.present_values(record, label))
        return names

    def names(self, record: ImageRecord) -> set[str]:
        """Every annotation name of an image: entity names and segmentation class names.

        Args:
            record: The image.

        Returns:
            The names.
        """
        return {e.name for e in record.entities} | self.class_names(record)
