"""The medstore exception tree.

Every class mixes in the matching built-in exception so that ``except FileNotFoundError``-style
handlers keep working, and every class is constructible from a single message string so that
PyTorch DataLoader workers (which re-raise as ``type(exc)(message)``) and pickling preserve it.

Examples:
    >>> from medstore.datastore.errors import ImageNotFoundError, DatastoreError
    >>> err = ImageNotFoundError("image 'case_9' not found")
    >>> isinstance(err, LookupError) and isinstance(err, DatastoreError)
    True
"""

from __future__ import annotations

__all__ = [
    "AnnotationError",
    "ArchiveError",
    "DatastoreError",
    "ImageNotFoundError",
    "ImageReadError",
    "InvalidIdError",
    "InvalidValueError",
    "LabelGeometryError",
    "LabelNotFoundError",
    "ManifestCorruptError",
    "ManifestError",
    "ReadOnlyError",
    "StoreLockUnsupportedError",
    "StoreLockedError",
    "UnsafePathError",
    "UnsupportedFormatError",
]


class DatastoreError(Exception):
    """Base class of every error medstore raises on purpose."""

    def __init__(self, message: str = "") -> None:
        super().__init__(message)

    def __reduce__(self) -> tuple[type, tuple[str]]:
        return (type(self), (str(self),))

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class ManifestError(DatastoreError):
    """The manifest (``datastore_v2.json``) cannot be used."""


class ManifestCorruptError(ManifestError, ValueError):
    """The manifest cannot be parsed or violates the schema; it is left untouched."""


class ImageNotFoundError(DatastoreError, LookupError):
    """No image with the given id is in the store (or its file vanished)."""


class LabelNotFoundError(DatastoreError, LookupError):
    """No label with the given image id and tag is in the store."""


class InvalidIdError(DatastoreError, ValueError):
    """An image id or label tag breaks the naming rules (see :mod:`.ids`)."""


class InvalidValueError(DatastoreError, ValueError):
    """An info value cannot be stored as JSON faithfully (NaN, infinity, nesting too deep)."""


class ReadOnlyError(DatastoreError, PermissionError):
    """A mutator was called on a store opened with ``read_only=True``."""


class StoreLockedError(DatastoreError, TimeoutError):
    """The store lock could not be taken within the timeout."""


class StoreLockUnsupportedError(DatastoreError, OSError):
    """The filesystem under the store cannot take the store lock (``flock`` unavailable)."""


class UnsafePathError(DatastoreError, OSError):
    """A path inside the store goes through a symbolic link: medstore never writes through one."""


class UnsupportedFormatError(DatastoreError, ValueError):
    """No reader (or writer) handles the given file, or its optional extra is missing."""


class ImageReadError(DatastoreError, OSError):
    """An image file is unreadable, truncated, inconsistent or unsafe to load."""


class LabelGeometryError(DatastoreError, ValueError):
    """A label does not match its image's shape, affine or dtype."""


class AnnotationError(DatastoreError, ValueError):
    """An annotation is malformed or breaks the project schema."""


class ArchiveError(DatastoreError, ValueError):
    """An archive is malformed or unsafe to extract (nothing was imported)."""
