"""Guarded DICOM header access: sniffing and header parsing that refuses absurd lengths.

Files are handed to pydicom through :class:`~.dicom_guard.GuardedFile`, which
refuses any read longer than what remains in the file; small headers are parsed from their first
bytes in memory. Pixel decoding lives in :mod:`medstore.datastore.imaging.dicom_pixels`.

Examples:
    >>> from pydicom.data import get_testdata_file
    >>> p = get_testdata_file("CT_small.dcm")
    >>> is_dicom_file(p), read_header(p).frame.rows
    (True, 128)
"""

from __future__ import annotations

import io
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from ..errors import ImageReadError
from ._values import check_declared_size
from .dicom_fast import fast_values
from .dicom_guard import GuardedFile

__all__ = [
    "NOT_IMAGES",
    "PIXEL_DATA_TAGS",
    "DicomHeader",
    "FrameLayout",
    "annotation_kind",
    "is_dicom_file",
    "read_header",
]

#: (Float / Double Float) Pixel Data: the tags that hold an image's pixels.
PIXEL_DATA_TAGS = frozenset({0x7FE00008, 0x7FE00009, 0x7FE00010})

#: SOP classes that annotate images instead of being images: never read (or indexed) as one.
NOT_IMAGES = {
    "1.2.840.10008.5.1.4.1.1.66.4": "Segmentation (SEG)",
    "1.2.840.10008.5.1.4.1.1.66.5": "Surface Segmentation",
    "1.2.840.10008.5.1.4.1.1.481.3": "RT Structure Set (RTSTRUCT)",
}
_HEAD_CHUNK = 64 << 10


def is_dicom_file(path: str | os.PathLike[str], head: bytes | None = None) -> bool:
    """Cheap sniff: ``DICM`` at offset 128, or a preamble-less dataset starting at group 2 or 8.

    Args:
        path: The file.
        head: Its first bytes when already read (at least 132 to avoid a read).

    Returns:
        Whether the file looks like DICOM Part 10 (or a raw little-endian dataset).

    Example:
        >>> import pydicom.data
        >>> is_dicom_file(pydicom.data.get_testdata_file("MR_small.dcm"))
        True
    """
    if head is None or len(head) < 132:
        try:
            with open(path, "rb") as fh:
                head = fh.read(132)
        except OSError:
            return False
    if len(head) >= 132 and head[128:132] == b"DICM":
        return True
    if len(head) < 8 or head[:2] not in (b"\x02\x00", b"\x08\x00"):
        return False
    vr = head[4:6]
    if vr.isalpha() and vr.isupper():
        return True  # explicit VR little endian
    length = struct.unpack("<I", head[4:8])[0]
    return length < 1 << 16  # implicit VR: a small first element


@dataclass(frozen=True)
class FrameLayout:
    """How the pixel data of one file is laid out.

    Attributes:
        rows: Rows per frame.
        cols: Columns per frame.
        frames: Number of frames.
        samples: Samples per pixel (1 or 3).
        bits_allocated: Bits per stored sample.
        bits_stored: Significant bits.
        signed: PixelRepresentation == 1.
        photometric: PhotometricInterpretation.
        planar: PlanarConfiguration (0 interleaved, 1 planes).
        float_kind: 0, or 32/64 for (Double) Float Pixel Data.
    """

    rows: int
    cols: int
    frames: int
    samples: int
    bits_allocated: int
    bits_stored: int
    signed: bool
    photometric: str
    planar: int
    float_kind: int = 0

    @property
    def dtype(self) -> np.dtype[Any]:
        """Stored sample dtype (native byte order)."""
        if self.photometric == "PALETTE COLOR":
            return np.dtype(np.uint16)
        if self.float_kind:
            return np.dtype(np.float32 if self.float_kind == 32 else np.float64)
        size = {1: 1, 8: 1, 16: 2, 32: 4, 64: 8}.get(self.bits_allocated)
        if size is None:
            raise ValueError(f"unsupported BitsAllocated {self.bits_allocated}")
        return np.dtype(f"{'i' if self.signed else 'u'}{size}")

    @property
    def out_samples(self) -> int:
        """Channels after decoding (palette colour becomes RGB)."""
        return 3 if self.photometric == "PALETTE COLOR" else self.samples

    @property
    def nbytes(self) -> int:
        """Bytes of the decoded pixel data."""
        return self.rows * self.cols * self.frames * self.samples * self.dtype.itemsize


@dataclass(frozen=True)
class DicomHeader:
    """A DICOM file's header (no pixels) and where its pixel data starts.

    Attributes:
        path: The file.
        ds: The pydicom dataset read with ``stop_before_pixels``.
        frame: Pixel layout.
        transfer_syntax: Transfer syntax UID string.
        pixel_offset: File offset of the pixel data element (its tag), or -1 if none.
        values: Top-level geometry/pixel values as plain Python values (see ``fast_values``).
    """

    path: Path
    ds: Dataset
    frame: FrameLayout
    transfer_syntax: str
    pixel_offset: int
    values: dict[str, Any]


def _layout(v: dict[str, Any], path: Path, float_kind: int) -> FrameLayout:
    try:
        bits = int(v.get("BitsAllocated") or (32 if float_kind == 32 else 64 if float_kind else 16))
        return FrameLayout(
            rows=int(v["Rows"]),
            cols=int(v["Columns"]),
            frames=int(v.get("NumberOfFrames") or 1),
            samples=int(v.get("SamplesPerPixel") or 1),
            bits_allocated=bits,
            bits_stored=int(v.get("BitsStored") or bits),
            signed=int(v.get("PixelRepresentation") or 0) == 1,
            photometric=str(v.get("PhotometricInterpretation") or "MONOCHROME2").strip(),
            planar=int(v.get("PlanarConfiguration") or 0),
            float_kind=float_kind,
        )
    except (KeyError, TypeError, ValueError) as err:
        raise ImageReadError(f"{path}: DICOM file has no usable image pixel module ({err})") from (
            err
        )


def annotation_kind(path: str | os.PathLike[str]) -> str | None:
    """What DICOM annotation object (SEG, RTSTRUCT...) a file is, from its file meta; else ``None``.

    Cheap: files without the ``DICM`` marker are answered from their first bytes.

    Args:
        path: Any file.

    Returns:
        A name such as ``"Segmentation (SEG)"``, or ``None`` for images and non-DICOM files.

    Example:
        >>> import pydicom.data
        >>> annotation_kind(pydicom.data.get_testdata_file("CT_small.dcm")) is None
        True
    """
    try:
        with open(path, "rb") as fh:
            if fh.read(132)[128:] != b"DICM":
                return None
        meta = pydicom.filereader.read_file_meta_info(path)
    except (OSError, InvalidDicomError, ValueError, EOFError, struct.error):
        return None
    return NOT_IMAGES.get(str(getattr(meta, "MediaStorageSOPClassUID", "") or ""))


def read_header(
    path: str | os.PathLike[str],
    *,
    max_bytes: int = 4 << 30,
    specific_tags: list[Any] | None = None,
) -> DicomHeader:
    """Parse a DICOM header (up to the pixel data) through the length guard.

    Args:
        path: The file.
        max_bytes: Cap on the declared decoded pixel size.
        specific_tags: Only parse these tags (faster; see pydicom's ``dcmread``).

    Returns:
        The header.

    Raises:
        ImageReadError: Not DICOM, corrupt, a length beyond the file, no image, or over the cap.
    """
    p = Path(path)
    parsed = _parse_head(p, specific_tags)
    ds: Dataset
    try:
        if parsed is None:
            with GuardedFile(p) as fh:
                ds = pydicom.dcmread(
                    fh, stop_before_pixels=True, force=True, specific_tags=specific_tags
                )
                pixel_offset, float_kind = _pixel_element(fh)
        else:
            ds, pixel_offset, float_kind = parsed
    except ImageReadError:
        raise
    except (InvalidDicomError, OSError, EOFError, ValueError, KeyError, struct.error) as err:
        raise ImageReadError(f"{p}: cannot parse DICOM header ({err})") from err
    file_meta = getattr(ds, "file_meta", None)
    sop_class = str(
        ds.get("SOPClassUID", "") or getattr(file_meta, "MediaStorageSOPClassUID", "") or ""
    )
    if sop_class in NOT_IMAGES:
        raise ImageReadError(
            f"{p}: DICOM file holds no image: it is a {NOT_IMAGES[sop_class]}; "
            "import it onto its image with 'medstore import-seg'"
        )
    if _is_deflated(ds) and "Rows" in ds:
        pixel_offset = 0  # the dataset is inflated in memory; decode through pydicom
    if "Rows" not in ds or pixel_offset < 0:
        raise ImageReadError(f"{p}: DICOM file holds no image (no pixel data)")
    meta = getattr(ds, "file_meta", None)
    ts = str(getattr(meta, "TransferSyntaxUID", "") or "")
    if not ts:
        implicit, little = ds.original_encoding
        ts = str(
            ImplicitVRLittleEndian
            if implicit
            else ExplicitVRLittleEndian
            if little is not False
            else ExplicitVRBigEndian
        )
    values = fast_values(ds)
    frame = _layout(values, p, float_kind)
    try:
        nbytes = frame.nbytes
    except ValueError as err:
        raise ImageReadError(f"{p}: {err}") from err
    check_declared_size(nbytes, max_bytes=max_bytes, available=None, path=p, what="pixel data")
    return DicomHeader(p, ds, frame, ts, pixel_offset, values)


def _parse_head(p: Path, specific_tags: list[Any] | None) -> tuple[Dataset, int, int] | None:
    """Parse the header from the file's first bytes in memory; ``None`` to use the file.

    Accepted only when the pixel data element starts inside those bytes, i.e. every element
    before it was complete; otherwise (long headers, corrupt lengths) the guarded file is used.
    """
    try:
        with open(p, "rb") as fh:
            head = fh.read(_HEAD_CHUNK)
    except OSError as err:
        raise ImageReadError(f"{p}: cannot open ({err})") from err
    buf = io.BytesIO(head)
    try:
        ds = pydicom.dcmread(buf, stop_before_pixels=True, force=True, specific_tags=specific_tags)
    except Exception:  # any failure here falls back to the guarded full parse
        return None
    if _is_deflated(ds):
        return None
    pixel_offset, float_kind = _pixel_element(buf)
    if pixel_offset < 0 or pixel_offset + 12 > len(head):
        return None
    return ds, pixel_offset, float_kind


def _is_deflated(ds: Dataset) -> bool:
    meta = getattr(ds, "file_meta", None)
    return str(getattr(meta, "TransferSyntaxUID", "")) == str(DeflatedExplicitVRLittleEndian)


def _pixel_element(fh: Any) -> tuple[int, int]:
    """Offset and float kind of the pixel data element the file is positioned at, if any."""
    pos = fh.tell()
    tag = fh.read(4)
    fh.seek(pos)
    if len(tag) < 4:
        return -1, 0
    for order in ("<", ">"):
        group, elem = struct.unpack(f"{order}HH", tag)
        value = group << 16 | elem
        if value in PIXEL_DATA_TAGS:
            return pos, {0x7FE00008: 32, 0x7FE00009: 64}.get(value, 0)
    return -1, 0
