"""Is a file completely written? The watcher's checks for files still being copied in.

A growing file must not be indexed half-written. Stability of size and mtime (the watcher's job)
catches most copies; these checks catch the rest from the content itself:

- ``.nii``: the file is at least the header's ``vox_offset`` plus the declared data size;
- ``.nii.gz`` (and any ``.gz``): a full streamed decode, which verifies gzip's CRC and length
  trailer; a NIfTI inside must also be as long as its header declares;
- DICOM (``.dcm``, ``.dicom``, or content with the ``DICM`` preamble) and DICOM series folders:
  a full parse with pydicom (``force=False``) in which every element holds the bytes its length
  declares, an image object has its pixel data, and encapsulated pixel data ends with its
  sequence delimiter. A DICOM file cut exactly between two elements before the pixel data of a
  non-image object (RTSTRUCT, SR...) cannot be told from a complete one: the stability window
  is the only guard there.

Other files pass (only the stability window applies).

Examples:
    >>> import tempfile, pathlib, gzip
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.gz"
    >>> _ = p.write_bytes(gzip.compress(b"abc"))
    >>> why_incomplete(p) is None
    True
    >>> _ = p.write_bytes(gzip.compress(b"abc")[:-3])
    >>> why_incomplete(p)
    'gzip stream is truncated or corrupt (EOFError)'
"""

from __future__ import annotations

import gzip
import io
import math
import os
import struct
import warnings
import zlib
from pathlib import Path
from typing import IO, Any

from ..ids import is_hidden

__all__ = ["why_incomplete"]

_CHUNK = 1 << 20
_UNDEFINED = 0xFFFFFFFF
_PIXEL_TAGS = (0x7FE00008, 0x7FE00009, 0x7FE00010)
_SEQ_DELIMITER_LE = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
_SEQ_DELIMITER_BE = b"\xff\xfe\xe0\xdd\x00\x00\x00\x00"
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
                return _nifti_incomplete(f.read(540), os.fstat(f.fileno()).st_size)
        if name.endswith((".dcm", ".dicom")) or _has_dicom_preamble(path):
            return _dicom_incomplete(path)
    except OSError as err:
        return f"cannot be read ({type(err).__name__})"
    return None


# ---------------------------------------------------------------------- NIfTI
def _nifti_required_size(head: bytes) -> int | str:
    """Bytes a single-file NIfTI-1/2 with this header needs, or a reason it cannot tell."""
    import nibabel as nib

    if len(head) < 4:
        return "NIfTI header is incomplete"
    sizes = {struct.unpack("<i", head[:4])[0], struct.unpack(">i", head[:4])[0]}
    header_class: Any = nib.Nifti2Header if 540 in sizes else nib.Nifti1Header
    if not sizes & {348, 540}:
        return "not a NIfTI header"
    if len(head) < header_class.template_dtype.itemsize:
        return "NIfTI header is incomplete"
    try:
        header = header_class.from_fileobj(io.BytesIO(head), check=False)
        shape = header.get_data_shape()
        itemsize = header.get_data_dtype().itemsize
        offset = int(header.get_data_offset())
    except Exception as err:  # nibabel raises many kinds on a bad header
        return f"unreadable NIfTI header ({type(err).__name__})"
    if any(int(n) < 0 for n in shape):
        return "NIfTI header declares a negative dimension"
    return offset + math.prod(int(n) for n in shape) * itemsize


def _nifti_incomplete(head: bytes, size: int) -> str | None:
    required = _nifti_required_size(head)
    if isinstance(required, str):
        return required
    if size < required:
        return f"NIfTI data is short: {size} of {required} bytes"
    return None


# ---------------------------------------------------------------------- gzip
def _gzip_incomplete(path: Path, *, nifti: bool) -> str | None:
    head = b""
    total = 0
    try:
        with gzip.open(path, "rb") as stream:
            while chunk := stream.read(_CHUNK):
                if nifti and len(head) < 540:
                    head += chunk[: 540 - len(head)]
                total += len(chunk)
    except (EOFError, gzip.BadGzipFile, zlib.error) as err:
        return f"gzip stream is truncated or corrupt ({type(err).__name__})"
    return _nifti_incomplete(head, total) if nifti else None


# ---------------------------------------------------------------------- DICOM
def _has_dicom_preamble(path: Path) -> bool:
    with path.open("rb") as f:
        f.seek(128)
        return f.read(4) == b"DICM"


def _series_incomplete(folder: Path) -> str | None:
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if is_hidden(entry.name) or not entry.is_file():
            continue
        reason = _dicom_incomplete(Path(entry.path))
        if reason is not None:
            return f"{entry.name}: {reason}"
    return None


def _dicom_incomplete(path: Path) -> str | None:
    import pydicom
    from pydicom.dataelem import RawDataElement

    with path.open("rb") as f:
        size = os.fstat(f.fileno()).st_size
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds = pydicom.dcmread(f, force=False)
        except Exception as err:  # pydicom raises many kinds on a partial file
            return f"DICOM parse failed ({type(err).__name__})"
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
            and 0 < size - (last.value_tell + last.length) < 8
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
            return _check_delimiter(f, size)
    return None


def _wants_pixels(ds: Any) -> bool:
    sop = getattr(getattr(ds, "file_meta", None), "MediaStorageSOPClassUID", None)
    name = str(getattr(sop, "name", ""))
    return "Rows" in ds or any(part in name for part in _PIXEL_SOP_NAMES)


def _check_delimiter(f: IO[bytes], size: int) -> str | None:
    f.seek(max(size - 8, 0))
    if f.read(8) in (_SEQ_DELIMITER_LE, _SEQ_DELIMITER_BE):
        return None
    return "encapsulated pixel data has no end delimiter"
