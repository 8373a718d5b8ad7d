"""Image readers (NIfTI, DICOM files and series, optional 2-D and video) in canonical layout.

Besides the readers, the package exposes the checks they are built on, for code that must judge
a file without reading it (the watcher's "is this file completely written?"):
:func:`nifti_layout` (where a NIfTI header says the voxels end), :func:`verify_gzip` (a full,
CRC-checked decode), :func:`is_dicom_file` (the DICOM sniff), :class:`GuardedFile` (a file that
refuses DICOM lengths beyond its end) and :data:`PIXEL_DATA_TAGS`; :mod:`.completeness` builds
``why_incomplete`` on them for the watcher and for ``add``.

Examples:
    >>> import pydicom.data
    >>> from medstore.datastore.imaging import probe_image, read_image
    >>> p = pydicom.data.get_testdata_file("CT_small.dcm")
    >>> probe_image(p).info_facts()["shape"], read_image(p).array.shape
    ([1, 128, 128], (1, 1, 128, 128))
"""

from __future__ import annotations

from ._gzip import verify_gzip
from .dicom_guard import GuardedFile
from .dicom_io import PIXEL_DATA_TAGS, is_dicom_file
from .dicom_series import is_dicom_series_dir
from .labels import check_label_geometry, label_nifti_bytes, write_label_like
from .nifti import NIFTI_HEADER_BYTES, NiftiLayout, nifti_layout
from .orientation import (
    CANONICAL_CODES,
    CanonicalTransform,
    axis_codes,
    canonical_transform,
    from_canonical,
    to_canonical,
)
from .registry import (
    ImageReader,
    find_reader,
    probe_image,
    read_image,
    readers,
    register_reader,
)
from .types import (
    DEFAULT_MAX_BYTES,
    ImageData,
    ImageHeader,
    ImageKind,
    ReadLimits,
)

__all__ = [
    "CANONICAL_CODES",
    "DEFAULT_MAX_BYTES",
    "NIFTI_HEADER_BYTES",
    "PIXEL_DATA_TAGS",
    "CanonicalTransform",
    "GuardedFile",
    "ImageData",
    "ImageHeader",
    "ImageKind",
    "ImageReader",
    "NiftiLayout",
    "ReadLimits",
    "axis_codes",
    "canonical_transform",
    "check_label_geometry",
    "find_reader",
    "from_canonical",
    "is_dicom_file",
    "is_dicom_series_dir",
    "label_nifti_bytes",
    "nifti_layout",
    "probe_image",
    "read_image",
    "readers",
    "register_reader",
    "to_canonical",
    "verify_gzip",
    "write_label_like",
]
