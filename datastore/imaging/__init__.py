"""Image readers (NIfTI, DICOM files and series, optional 2-D and video) in canonical layout.

Examples:
    >>> import pydicom.data
    >>> from medstore.datastore.imaging import probe_image, read_image
    >>> p = pydicom.data.get_testdata_file("CT_small.dcm")
    >>> probe_image(p).info_facts()["shape"], read_image(p).array.shape
    ([1, 128, 128], (1, 1, 128, 128))
"""

from __future__ import annotations

from .dicom_io import is_dicom_file
from .dicom_series import is_dicom_series_dir
from .labels import check_label_geometry, label_nifti_bytes, write_label_like
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
    "CanonicalTransform",
    "ImageData",
    "ImageHeader",
    "ImageKind",
    "ImageReader",
    "ReadLimits",
    "axis_codes",
    "canonical_transform",
    "check_label_geometry",
    "find_reader",
    "from_canonical",
    "is_dicom_file",
    "is_dicom_series_dir",
    "label_nifti_bytes",
    "probe_image",
    "read_image",
    "readers",
    "register_reader",
    "to_canonical",
    "write_label_like",
]
