"""The cached image and label volumes of a record: their cache keys and how they are read.

Example:
    >>> volume_sources([])
    []
"""

from __future__ import annotations

from collections.abc import Iterable

from medstore.datastore import image_version

from ..loading.cache import CachedVolume, VolumeCache
from ..records import ImageRecord, LabelRecord

__all__ = ["image_volume", "label_volume", "label_what", "volume_sources"]


def _image_key(record: ImageRecord) -> str:
    """What the cache key adds for an image: its checksum and its image version id.

    A linked image has no checksum and its file can be rewritten in place (same size, inode and
    times); with the version id, an id reused for another image never gets the old voxels.
    """
    return f"{record.checksum or ''}|{image_version(record.image_id, record.info)}"


def _label_checksum(label: LabelRecord) -> str | None:
    return str(label.info.get("checksum") or "") or None


def label_what(record: ImageRecord, label: LabelRecord) -> str:
    """How errors and warnings name ``label`` of ``record``.

    Args:
        record: The image record.
        label: One of its labels.

    Returns:
        E.g. ``"label 'final' of image 'ct_1'"``.
    """
    return f"label {label.tag!r} of image {record.image_id!r}"


def image_volume(
    cache: VolumeCache, record: ImageRecord, *, keep_open: bool = True, contiguous: bool = False
) -> CachedVolume:
    """The decoded image of ``record``, from ``cache``.

    Args:
        cache: The decode-once cache.
        record: The image record.
        keep_open: Keep its memory map open (see :meth:`~medstore.datasets.VolumeCache.get`).
        contiguous: Read the entry's uncompressed copy (whole-volume and slice items).

    Returns:
        The cached volume (channels-first canonical array).
    """
    return cache.get(
        record.path,
        checksum=_image_key(record),
        what=f"image {record.image_id!r}",
        keep_open=keep_open,
        contiguous=contiguous,
    )


def label_volume(
    cache: VolumeCache,
    record: ImageRecord,
    label: LabelRecord,
    *,
    keep_open: bool = True,
    contiguous: bool = False,
) -> CachedVolume:
    """The decoded label ``label`` of ``record``, from ``cache``.

    Args:
        cache: The decode-once cache.
        record: The image record.
        label: One of its labels.
        keep_open: Keep its memory map open (see :meth:`~medstore.datasets.VolumeCache.get`).
        contiguous: Read the entry's uncompressed copy (whole-volume and slice items).

    Returns:
        The cached volume.
    """
    return cache.get(
        label.path,
        checksum=_label_checksum(label),
        what=label_what(record, label),
        keep_open=keep_open,
        contiguous=contiguous,
    )


def volume_sources(records: Iterable[ImageRecord]) -> list[tuple[str, str | None, str]]:
    """``(path, checksum, what)`` of every image and label of ``records``, for prefetching.

    Args:
        records: Image records.

    Returns:
        Triples as accepted by :meth:`~medstore.datasets.VolumeCache.prefetch`.

    Examples:
        >>> volume_sources([])
        []
    """
    sources: list[tuple[str, str | None, str]] = []
    for record in records:
        sources.append((record.path, _image_key(record), f"image {record.image_id!r}"))
        for label in record.labels:
            sources.append((label.path, _label_checksum(label), label_what(record, label)))
    return sources
