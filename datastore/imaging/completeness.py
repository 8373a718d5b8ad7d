"""Is a file completely written? Checks from the content, for files being copied in or added.

A growing file must not be indexed half-written, and a cut file must not be added. Stability of
size and mtime (the watcher's job) catches most copies; these checks catch the rest from the
content itself, with the readers' own rules, so that the watcher, ``add`` and the readers never
disagree about a file:

- ``.nii``: the file is at least as long as its header says (:func:`~.nifti.nifti_layout`);
- ``.nii.gz`` (and any ``.gz``): a full streamed decode (:func:`~._gzip.verify_gzip`), which
  verifies gzip's CRC and length trailer; a NIfTI inside must also be as long as its header says;
- DICOM (``.dcm``, ``.dicom``, or content the readers' sniff :func:`~.dicom_io.is_dicom_file`
  claims) and DICOM series folders: a full parse with pydicom through the readers'
  :class:`~.dicom_guard.GuardedFile`, in which every element holds the bytes its length declares,
  an image object has its pixel data, and encapsulated pixel data ends with its sequence
  delimiter. A DICOM file cut exactly between two elements before the pixel data of a
  non-image object (RTSTRUCT, SR...) cannot be told from a complete one: the stability window
  is the only guard there.

Other files pass (only the stability window applies). Reasons name no file content.

Examples:
    >>> import tempfile, pathlib, gzip
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.gz"
    >>> _ = p.write_bytes(gzip.compress(b"abc"))
    >>> why_incomplete(p) is None
    True
    >>> _ = p.write_bytes(gzip.compress(b"abc")[:-3])
    >>> why_incomplete(p)
    'gzip stream is truncated or corrupt'
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import pydicom
from pydicom.dataelem import RawDataElement

from ..errors import ImageReadError
from ..ids import is_hidden
from ._gzip import verify_gzip
from .dicom_guard import GuardedFile
from .dicom_io import PIXEL_DATA_TAGS, is_dicom_file
from .nifti import NIFTI_HEADER_BYTES, nifti_layout

__all__ = ["why_incomplete"]

_UNDEFINED = 0xFFFFFFFF
_PIXEL_TAGS = tuple(sorted(PIXEL_DATA_TAGS))  # a dataset holds one; the first found is checked
_SEQ_DELIMITERS = (b"\xfe\xff\xdd\xe0\x00\x00\x00\x00", b"\xff\xfe\xe0\xdd\x00\x00\x00\x00")
_PIXEL_SOP_NAMES = ("Image Storage", "RT Dose Storage", "Segmentation Storage")


def why_incomplete(path: Path) -> str | None:
    """Tell why ``path`` looks incompletely written, or ``None`` when it looks complete.

    Args:
        path: A file, or a folder holding one DICOM series.

    Returns:
        A short reason (no file content, no patient data), or ``None``.
    """
    try:
        if path.is_dir():
            return _series_incomplete(path)
        name = path.name.lower()
        if name.endswith(".gz"):
            return _gzip_incomplete(path, nifti=name.endswith(".nii.gz"))
        if name.endswith(".nii"):
            with path.open("rb") as f:
                return _nifti_incomplete(f.read(NIFTI_HEADER_BYTES), os.fstat(f.fileno()).st_size)
        if name.endswith((".dcm", ".dicom")) or is_dicom_file(path):
            return _dicom_incomplete(path)
    except OSError as err:
        return f"cannot be read ({type(err).__name__})"
    return None


# ---------------------------------------------------------------------- NIfTI and gzip
def _nifti_incomplete(head: bytes, size: int) -> str | None:
    """Why a NIfTI of ``size`` (decompressed) bytes starting with ``head`` is not complete."""
    try:
        required = nifti_layout(head).end
    except ImageReadError as err:
        return str(err)
    if size < required:
        return f"NIfTI data is short: {size} of {required} bytes"
    return None


def _gzip_incomplete(path: Path, *, nifti: bool) -> str | None:
    try:
        head, total = verify_gzip(path, keep=NIFTI_HEADER_BYTES if nifti else 0)
    except ImageReadError:
        return "gzip stream is truncated or corrupt"
    return _nifti_incomplete(head, total) if nifti else None


# ---------------------------------------------------------------------- DICOM
def _series_incomplete(folder: Path) -> str | None:
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if is_hidden(entry.name) or not entry.is_file():
            continue
        reason = _dicom_incomplete(Path(entry.path))
        if reason is not None:
            return f"{entry.name}: {reason}"
    return None


def _dicom_incomplete(path: Path) -> str | None:
    # A file the sniff accepts without the "DICM" preamble is read as a bare dataset; any other
    # file must have the preamble (one cut inside its first 132 bytes has not).
    with GuardedFile(path) as f:
        force = is_dicom_file(path, f.read(132))
        f.seek(0)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds = pydicom.dcmread(f, force=force)
        except ImageReadError:  # the guard: an element declares more bytes than remain
            return "a DICOM element is cut short"
        except Exception as err:  # pydicom raises many kinds on a partial file
            return f"DICOM parse failed ({type(err).__name__})"
        return _dataset_incomplete(ds, f)


def _dataset_incomplete(ds: Any, f: GuardedFile) -> str | None:
    """Why a parsed dataset (``f`` still open at its file) looks cut short."""
    tags = list(ds.keys())
    if not tags:
        return "DICOM dataset is empty"
    for tag in tags:
        elem = ds.get_item(tag)
        if (
            isinstance(elem, RawDataElement)
            and elem.length != _UNDEFINED
            and elem.value is not None
            and len(elem.value) != elem.length
        ):
            return "a DICOM element is cut short"
    last = ds.get_item(tags[-1])
    if (
        isinstance(last, RawDataElement)
        and last.length != _UNDEFINED
        and 0 < f.size - (last.value_tell + last.length) < 8
    ):
        return "a DICOM element header is cut short"
    pixel_tags = [t for t in _PIXEL_TAGS if t in ds]
    if not pixel_tags:
        return "DICOM image has no pixel data" if _wants_pixels(ds) else None
    pixels = ds.get_item(pixel_tags[0])
    if (
        isinstance(pixels, RawDataElement)
        and pixels.length == _UNDEFINED
        and tags[-1] == pixel_tags[0]
    ):
        f.seek(max(f.size - 8, 0))
        if f.read(8) not in _SEQ_DELIMITERS:
            return "encapsulated pixel data has no end delimiter"
    return None


def _wants_pixels(ds: Any) -> bool:
    sop = getattr(getattr(ds, "file_meta", None), "MediaStorageSOPClassUID", None)
    name = str(getattr(sop, "name", ""))
    return "Rows" in ds or any(part in name for part in _PIXEL_SOP_NAMES)
