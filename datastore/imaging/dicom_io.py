"""Guarded DICOM file access: sniffing, header parsing that refuses absurd lengths, pixel decoding.

pydicom reads a value by asking the file for its declared length; a hostile or corrupt length
would make it allocate gigabytes. Files are therefore handed to pydicom through
:class:`_GuardedFile`, which refuses any read longer than what remains in the file. Uncompressed
pixel data is read straight into the caller's buffer; compressed transfer syntaxes go through
pydicom's decoders, and a missing decoder is reported with what to install.

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
import numpy.typing as npt
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from datastore.errors import ImageReadError, UnsupportedFormatError
from datastore.imaging._values import check_declared_size
from datastore.imaging.dicom_fast import fast_values

__all__ = [
    "DicomHeader",
    "FrameLayout",
    "decode_pixels",
    "is_dicom_file",
    "read_header",
]

_NATIVE = {ImplicitVRLittleEndian, ExplicitVRLittleEndian, ExplicitVRBigEndian}
_PIXEL_TAGS = {0x7FE00010, 0x7FE00008, 0x7FE00009}
_INSTALL_HINT = {
    "1.2.840.10008.1.2.4.80": "pylibjpeg + pylibjpeg-libjpeg, or python-gdcm",
    "1.2.840.10008.1.2.4.81": "pylibjpeg + pylibjpeg-libjpeg, or python-gdcm",
    "1.2.840.10008.1.2.4.90": "pylibjpeg + pylibjpeg-openjpeg (or Pillow with OpenJPEG)",
    "1.2.840.10008.1.2.4.91": "pylibjpeg + pylibjpeg-openjpeg (or Pillow with OpenJPEG)",
    "1.2.840.10008.1.2.4.201": "pylibjpeg + pylibjpeg-openjpeg",
    "1.2.840.10008.1.2.4.202": "pylibjpeg + pylibjpeg-openjpeg",
    "1.2.840.10008.1.2.4.203": "pylibjpeg + pylibjpeg-openjpeg",
}
_HEAD_CHUNK = 64 << 10
_SMALL_READ = 12  # tag + VR + length reads may legitimately run into the end of file


class _GuardedFile(io.RawIOBase):
    """A read-only file whose ``read(n)`` refuses ``n`` beyond the bytes that remain."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self._fh = open(path, "rb")  # noqa: SIM115 - closed in close()
        self._size = os.fstat(self._fh.fileno()).st_size
        self.name = str(path)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, n: int | None = -1) -> bytes:
        if n is None or n < 0:
            return self._fh.read()
        remaining = self._size - self._fh.tell()
        if n > remaining and n > _SMALL_READ:
            raise ImageReadError(
                f"{self.name}: a DICOM element declares {n} bytes at offset "
                f"{self._fh.tell()} but only {max(remaining, 0)} remain (corrupt or hostile length)"
            )
        return self._fh.read(n)

    def readinto(self, buf: Any) -> int:
        return self._fh.readinto(buf)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._fh.seek(offset, whence)

    def tell(self) -> int:
        return self._fh.tell()

    @property
    def size(self) -> int:
        return self._size

    def close(self) -> None:
        self._fh.close()
        super().close()


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
            with _GuardedFile(p) as fh:
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
        if value in _PIXEL_TAGS:
            return pos, {0x7FE00008: 32, 0x7FE00009: 64}.get(value, 0)
    return -1, 0


def _read_native(h: DicomHeader, into: npt.NDArray[Any]) -> None:
    """Read uncompressed pixel data straight into ``into`` (frames, rows, cols, samples)."""
    implicit = h.transfer_syntax == ImplicitVRLittleEndian
    big = h.transfer_syntax == ExplicitVRBigEndian
    with _GuardedFile(h.path) as fh:
        fh.seek(h.pixel_offset)
        head = fh.read(8)
        if len(head) < 8:
            raise ImageReadError(f"{h.path}: pixel data element is truncated")
        order = ">" if big else "<"
        if implicit:
            length = struct.unpack("<I", head[4:8])[0]
        elif head[4:6] in (b"OB", b"OW", b"OF", b"OD", b"UN", b"OL", b"OV"):
            length = struct.unpack(f"{order}I", fh.read(4))[0]
        else:
            length = struct.unpack(f"{order}H", head[6:8])[0]
        need = into.nbytes
        if length == 0xFFFFFFFF:
            raise ImageReadError(f"{h.path}: encapsulated pixel data in a native transfer syntax")
        if length < need or fh.tell() + need > fh.size:
            raise ImageReadError(
                f"{h.path}: pixel data truncated: {min(length, fh.size - fh.tell())} bytes, "
                f"{need} expected for {h.frame.frames}x{h.frame.rows}x{h.frame.cols}"
            )
        got = fh.readinto(into.data.cast("B"))
        if got != need:
            raise ImageReadError(f"{h.path}: pixel data truncated ({got} of {need} bytes)")
    if big and into.dtype.itemsize > 1:
        into.byteswap(inplace=True)


def _fix_bits(arr: npt.NDArray[Any], f: FrameLayout) -> None:
    """Mask unused high bits (unsigned) or sign-extend (signed) in place."""
    if f.float_kind or f.bits_stored >= f.bits_allocated or arr.dtype.kind not in "iu":
        return
    shift = f.bits_allocated - f.bits_stored
    if f.signed:
        arr <<= shift
        arr >>= shift
    else:
        arr &= arr.dtype.type((1 << f.bits_stored) - 1)


def _native_ok(h: DicomHeader) -> bool:
    f = h.frame
    return (
        h.transfer_syntax in _NATIVE
        and f.bits_allocated in (8, 16, 32, 64)
        and (f.photometric.startswith("MONOCHROME") or (f.photometric == "RGB" and f.planar == 0))
    )


def decode_pixels(h: DicomHeader, into: npt.NDArray[Any]) -> None:
    """Decode all frames of a file into ``into`` of shape (frames, rows, cols, out_samples).

    Colour data (YBR, palette) is converted to RGB; stored values are otherwise unchanged.

    Args:
        h: The file's header.
        into: Destination with the layout's stored dtype (float32 for palette colour: no; uint8
            or uint16 RGB after lookup).

    Raises:
        UnsupportedFormatError: A compressed transfer syntax without an installed decoder.
        ImageReadError: Truncated or undecodable pixel data.
    """
    if _native_ok(h):
        _read_native(h, into)
        _fix_bits(into, h.frame)
        return
    try:
        with _GuardedFile(h.path) as fh:
            ds = pydicom.dcmread(fh, force=True)
            ds.pixel_array_options(as_rgb=True)
            arr = ds.pixel_array
    except ImageReadError:
        raise
    except (RuntimeError, NotImplementedError) as err:
        hint = _INSTALL_HINT.get(h.transfer_syntax, "pylibjpeg with its plugins, or python-gdcm")
        name = getattr(pydicom.uid.UID(h.transfer_syntax), "name", h.transfer_syntax)
        raise UnsupportedFormatError(
            f"{h.path}: cannot decode '{name}' pixel data; install {hint} "
            f"(pydicom said: {str(err).splitlines()[0]})"
        ) from err
    except (ValueError, OSError, EOFError, AttributeError, KeyError) as err:
        raise ImageReadError(f"{h.path}: cannot decode pixel data ({err})") from err
    if h.frame.photometric == "PALETTE COLOR":
        from pydicom.pixels import apply_color_lut

        arr = apply_color_lut(arr, ds)
    arr = arr.reshape(into.shape)
    into[...] = arr
