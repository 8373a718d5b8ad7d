"""medstore's datastore: a MONAI Label-compatible local store with crash-safe writes.

Examples:
    >>> import tempfile
    >>> from medstore.datastore import LocalDatastore
    >>> LocalDatastore(tempfile.mkdtemp()).status()
    {'total': 0, 'completed': 0, 'label_tags': {}}
"""

from __future__ import annotations

from .durable import atomic_write_bytes
from .errors import (
    AnnotationError,
    ArchiveError,
    DatastoreError,
    ImageNotFoundError,
    ImageReadError,
    InvalidIdError,
    LabelGeometryError,
    LabelNotFoundError,
    ManifestCorruptError,
    ManifestError,
    ReadOnlyError,
    StoreLockedError,
    UnsupportedFormatError,
)
from .store.image_listing import EntryBuilders
from .store.image_versions import image_version
from .store.label_info import LabelClasses, parse_label_info
from .store.layout import StoreLayout
from .store.local import DEFAULT_EXTENSIONS, DefaultLabelTag, LocalDatastore
from .store.models import DataModel, ImageLabelModel, LocalDatastoreModel
from .store.split_log import SplitAssignment, SplitLog, seeded_order_key

__all__ = [
    "DEFAULT_EXTENSIONS",
    "AnnotationError",
    "ArchiveError",
    "DataModel",
    "DatastoreError",
    "DefaultLabelTag",
    "EntryBuilders",
    "ImageLabelModel",
    "ImageNotFoundError",
    "ImageReadError",
    "InvalidIdError",
    "LabelClasses",
    "LabelGeometryError",
    "LabelNotFoundError",
    "LocalDatastore",
    "LocalDatastoreModel",
    "ManifestCorruptError",
    "ManifestError",
    "ReadOnlyError",
    "SplitAssignment",
    "SplitLog",
    "StoreLayout",
    "StoreLockedError",
    "UnsupportedFormatError",
    "atomic_write_bytes",
    "image_version",
    "parse_label_info",
    "seeded_order_key",
]
