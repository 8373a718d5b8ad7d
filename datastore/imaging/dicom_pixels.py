"""DICOM pixel decoding: native pixel data read straight into the caller's buffer, else pydicom.

Uncompressed pixel data is read through :class:`~.dicom_guard.GuardedFile`
directly into the destination array; compressed transfer syntaxes go through pydicom's decoders,
and a missing decoder is reported with what to install.

Examples:
    >>> import numpy as np
    >>> from pydicom.data import get_testdata_file
    >>> from medstore.datastore.imaging.dicom_io import read_header
    >>> h = read_header(get_testdata_file("CT_small.dcm"))
    >>> f = h.frame
    >>> out = np.empty((f.frames, f.rows, f.cols, f.out_samples), f.dtype)
    >>> decode_pixels(h, out); out.shape
    (1, 128, 128, 1)
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy.typing as npt
import pydicom
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from ..errors import ImageReadError, UnsupportedFormatError
from .dicom_guard import GuardedFile

if TYPE_CHECKING:
    from .dicom_io import DicomHeader, FrameLayout

__all__ = ["decode_pixels"]

_NATIVE = frozenset({ImplicitVRLittleEndian, ExplicitVRLittleEndian, ExplicitVRBigEndian})
_INSTALL_HINT: Mapping[str, str] = MappingProxyType(
    {
        "1.2.840.10008.1.2.4.80": "pylibjpeg + pylibjpeg-libjpeg, or python-gdcm",
        "1.2.840.10008.1.2.4.81": "pylibjpeg + pylibjpeg-libjpeg, or python-gdcm",
        "1.2.840.10008.1.2.4.90": "pylibjpeg + pylibjpeg-openjpeg (or Pillow with OpenJPEG)",
        "1.2.840.10008.1.2.4.91": "pylibjpeg + pylibjpeg-openjpeg (or Pillow with OpenJPEG)",
        "1.2.840.10008.1.2.4.201": "pylibjpeg + pylibjpeg-openjpeg",
        "1.2.840.10008.1.2.4.202": "pylibjpeg + pylibjpeg-openjpeg",
        "1.2.840.10008.1.2.4.203": "pylibjpeg + pylibjpeg-openjpeg",
    }
)


def _read_native(h: DicomHeader, into: npt.NDArray[Any]) -> None:
    """Read uncompressed pixel data straight into ``into`` (frames, rows, cols, samples)."""
    implicit = h.transfer_syntax == ImplicitVRLittleEndian
    big = h.transfer_syntax == ExplicitVRBigEndian
    with GuardedFile(h.path) as fh:
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
        remaining = fh.size - fh.tell()
        if need <= length and length > remaining:
            raise ImageReadError(
                f"{h.path}: pixel data element declares {length} bytes but only {remaining} "
                "remain in the file"
            )
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
        with GuardedFile(h.path) as fh:
            ds = pydicom.dcmread(fh, force=True)
            ds.pixel_array_options(as_rgb=True)
            arr = ds.pixel_array
    except ImageReadError:
        raise
    except (RuntimeError, NotImplementedError) as err:
        hint = _INSTALL_HINT.get(h.transfer_syntax, "pylibjpeg with its plugins, or python-gdcm")
        name = getattr(pydicom.uid.UID(h.transfer_syntax), "name", h.transfer_syntax)
        raise UnsupportedFormatError(
            f"{h.path}: cannot decode '{name}' pixel data; pip install 'medstore[dicom-codecs]' "
            f"(it installs {hint}; pydicom said: {str(err).splitlines()[0]})"
        ) from err
    except (ValueError, OSError, EOFError, AttributeError, KeyError) as err:
        raise ImageReadError(f"{h.path}: cannot decode pixel data ({err})") from err
    if h.frame.photometric == "PALETTE COLOR":
        from pydicom.pixels import apply_color_lut

        arr = apply_color_lut(arr, ds)
    arr = arr.reshape(into.shape)
    into[...] = arr
