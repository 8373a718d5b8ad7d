"""NIfTI-1 / NIfTI-2 reader (``.nii``, ``.nii.gz``): nibabel headers, guarded voxel reads.

The header is parsed with nibabel; voxels are read with one ``np.fromfile`` (``.nii``) or one
bounded gzip pass straight into the output buffer (``.nii.gz``), after the declared size has been
checked against the cap and the file. Scaling follows nibabel (NaN or 0 slope = unscaled).
:func:`nifti_layout` is the one rule for where a header says the voxels lie (the watcher uses it
to tell a complete file from one still being copied).

Examples:
    >>> import pathlib, nibabel
    >>> p = pathlib.Path(nibabel.__file__).parent / "tests" / "data" / "anatomical.nii"
    >>> NIFTI_READER.probe(p, ReadLimits()).orientation
    ('L', 'A', 'S')
    >>> nifti_layout(p.read_bytes()[:NIFTI_HEADER_BYTES]).end == p.stat().st_size
    True
"""

from __future__ import annotations

import io
import math
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import numpy.typing as npt
from nibabel.spatialimages import HeaderDataError

from ..errors import ImageReadError
from ._geometry import to_image_data, volume_header
from ._gzip import MAX_DEFLATE_RATIO, gzip_head, read_span
from ._values import apply_rescale, check_declared_size, rescaled_dtype
from .types import ImageData, ImageHeader, ReadLimits

__all__ = ["NIFTI_HEADER_BYTES", "NIFTI_READER", "NiftiLayout", "NiftiReader", "nifti_layout"]

#: Header bytes worth reading: NIfTI-2's 540-byte header plus the 4-byte extension flag.
NIFTI_HEADER_BYTES = 544


@dataclass(frozen=True)
class NiftiLayout:
    """Where a single-file NIfTI keeps its voxels, as its header declares.

    Attributes:
        version: 1 or 2.
        header: The nibabel header (a ``Nifti2Header`` for NIfTI-2).
        shape: The data shape (no dimension negative).
        dtype: The stored voxel type (file byte order).
        offset: Where the voxels start; never inside the header, whatever ``vox_offset`` says.
    """

    version: int
    header: nib.Nifti1Header
    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    offset: int

    @property
    def nbytes(self) -> int:
        """Bytes of voxel data the header declares."""
        return math.prod(self.shape) * self.dtype.itemsize

    @property
    def end(self) -> int:
        """Bytes a complete file holds at least (decompressed, for ``.nii.gz``)."""
        return self.offset + self.nbytes


@dataclass(frozen=True)
class _Parsed:
    """A parsed NIfTI header plus what reading needs."""

    header: ImageHeader
    raw_dtype: np.dtype[Any]
    file_shape: tuple[int, ...]
    offset: int
    slope: float
    inter: float
    affine: npt.NDArray[np.float64]


def _is_gz(path: Path) -> bool:
    return path.name.lower().endswith(".gz")


def _head(path: Path, head: bytes | None = None) -> bytes:
    """First header bytes, decompressed for ``.gz``."""
    if _is_gz(path):
        return gzip_head(path, NIFTI_HEADER_BYTES)
    if head is not None and len(head) >= NIFTI_HEADER_BYTES:
        return head[:NIFTI_HEADER_BYTES]
    with open(path, "rb") as fh:
        return fh.read(NIFTI_HEADER_BYTES)


def _version(head: bytes) -> int:
    """1 or 2 for NIfTI-1/-2 headers, 0 otherwise."""
    if len(head) < 348:
        return 0
    size_le, size_be = struct.unpack("<i", head[:4])[0], struct.unpack(">i", head[:4])[0]
    if 348 in (size_le, size_be) and head[344:348] in (b"n+1\x00", b"ni1\x00"):
        return 1
    if 540 in (size_le, size_be) and head[4:8] in (b"n+2\x00", b"ni2\x00"):
        return 2
    return 0


def nifti_layout(head: bytes) -> NiftiLayout:
    """Parse a NIfTI-1/-2 header from a file's first (decompressed) bytes.

    Args:
        head: The first bytes, :data:`NIFTI_HEADER_BYTES` of them when the file is that long.

    Returns:
        Where the voxels lie.

    Raises:
        ImageReadError: ``head`` stops inside the header, is not a NIfTI header, cannot be parsed,
            or declares a negative dimension (the message names no file).

    Examples:
        >>> import nibabel, numpy as np
        >>> raw = nibabel.Nifti1Image(np.zeros((2, 3, 4), np.int16), np.eye(4)).to_bytes()
        >>> layout = nifti_layout(raw[:NIFTI_HEADER_BYTES])
        >>> layout.version, layout.shape, layout.offset, layout.end == len(raw)
        (1, (2, 3, 4), 352, True)
        >>> nifti_layout(raw[:100])
        Traceback (most recent call last):
        ...
        medstore.datastore.errors.ImageReadError: NIfTI header is incomplete (100 of 348 bytes)
    """
    sizes = {0}  # sizeof_hdr, read both ways; 0 while fewer than 4 bytes are there
    if len(head) >= 4:
        sizes = {struct.unpack("<i", head[:4])[0], struct.unpack(">i", head[:4])[0]}
    size = 540 if 540 in sizes else 348
    if len(head) < size and (sizes & {0, 348, 540}):
        raise ImageReadError(f"NIfTI header is incomplete ({len(head)} of {size} bytes)")
    version = _version(head)
    if version == 0:
        raise ImageReadError("not a NIfTI-1/NIfTI-2 file (bad size or magic)")
    klass = nib.Nifti1Header if version == 1 else nib.Nifti2Header
    size = 348 if version == 1 else 540
    try:
        hdr = klass.from_fileobj(io.BytesIO(head[:size]))
        shape = tuple(int(s) for s in hdr.get_data_shape())
        dtype = hdr.get_data_dtype()
        offset = int(hdr.get_data_offset())
    except (HeaderDataError, ValueError, TypeError, struct.error) as err:
        raise ImageReadError(f"invalid NIfTI header ({err})") from err
    if any(n < 0 for n in shape):
        raise ImageReadError(f"NIfTI header declares a negative dimension {shape}")
    return NiftiLayout(version, hdr, shape, dtype, max(offset, size + 4))


class NiftiReader:
    """Reader for single-file NIfTI-1/-2 images, plain or gzipped."""

    name = "nifti"

    def sniff(self, path: Path, head: bytes) -> bool:
        """True for ``.nii``/``.nii.gz`` names whose header carries a NIfTI magic.

        Returns:
            Whether this reader claims the file.
        """
        low = path.name.lower()
        if not (low.endswith(".nii") or low.endswith(".nii.gz")):
            return False
        try:
            return _version(_head(path, head)) > 0
        except (OSError, ImageReadError):
            return True  # claimed by name; probe/read will report the problem

    def _parse(self, path: Path, limits: ReadLimits) -> _Parsed:
        try:
            head = _head(path)
        except OSError as err:
            raise ImageReadError(f"{path}: cannot read NIfTI header ({err})") from err
        try:
            layout = nifti_layout(head)
        except ImageReadError as err:
            raise ImageReadError(f"{path}: {err}") from err
        shape, raw_dtype, offset = layout.shape, layout.dtype, layout.offset
        try:
            slope_v, inter_v = layout.header.get_slope_inter()
            affine = np.asarray(layout.header.get_best_affine(), dtype=np.float64)
        except (HeaderDataError, ValueError, TypeError, struct.error) as err:
            raise ImageReadError(f"{path}: invalid NIfTI header ({err})") from err
        if raw_dtype.kind not in "biuf" or raw_dtype.itemsize == 0:
            raise ImageReadError(f"{path}: unsupported NIfTI datatype {raw_dtype}")
        if not np.isfinite(affine).all():
            raise ImageReadError(f"{path}: NIfTI affine is not finite")
        if len(shape) < 1 or min(shape) < 1:
            raise ImageReadError(f"{path}: NIfTI declares an empty shape {shape}")
        declared = layout.nbytes
        file_size = path.stat().st_size
        available = file_size * MAX_DEFLATE_RATIO - offset if _is_gz(path) else file_size - offset
        check_declared_size(declared, max_bytes=limits.max_bytes, available=available, path=path)
        slope = 1.0 if slope_v is None else float(slope_v)
        inter = 0.0 if inter_v is None else float(inter_v)
        out_dtype = rescaled_dtype(raw_dtype, slope, inter)
        spatial = (*shape, 1, 1, 1)[:3]
        channels = int(np.prod(shape[3:], dtype=np.int64)) if len(shape) > 3 else 1
        header = volume_header(
            f"nifti{layout.version}",
            native_affine=affine,
            native_shape=spatial,
            channels=channels,
            dtype=out_dtype,
            n_frames=spatial[2],
        )
        return _Parsed(header, raw_dtype, shape, offset, slope, inter, affine)

    def probe(self, path: Path, limits: ReadLimits) -> ImageHeader:
        """Header facts without voxels.

        Returns:
            The header.

        Raises:
            ImageReadError: Invalid header, or declared data over the cap / beyond the file.
        """
        return self._parse(path, limits).header

    def read(self, path: Path, limits: ReadLimits) -> ImageData:
        """Decode voxels into canonical layout.

        Returns:
            Channels-first canonical data; 4-D (and higher) NIfTI axes become C.

        Raises:
            ImageReadError: Invalid header, truncated or corrupt data.
        """
        p = self._parse(path, limits)
        count = int(np.prod(p.file_shape, dtype=np.int64))
        raw = self._voxels(path, p, count)
        spatial = (*p.file_shape, 1, 1, 1)[:3]
        raw = raw.reshape((*spatial, p.header.channels), order="F")
        out = apply_rescale(raw, p.slope, p.inter, np.dtype(p.header.dtype), path=path)
        meta: dict[str, Any] = {"file_shape": list(p.file_shape)}
        if p.slope != 1 or p.inter != 0:
            meta["rescale"] = {"slope": p.slope, "intercept": p.inter}
        return to_image_data(out, p.affine, p.header, meta)

    @staticmethod
    def _voxels(path: Path, p: _Parsed, count: int) -> npt.NDArray[Any]:
        """Read the raw voxel vector in native byte order."""
        if _is_gz(path):
            raw = np.empty(count, dtype=p.raw_dtype)
            read_span(path, skip=p.offset, into=raw.data.cast("B"))
        else:
            try:
                raw = np.fromfile(path, dtype=p.raw_dtype, count=count, offset=p.offset)
            except OSError as err:
                raise ImageReadError(f"{path}: cannot read voxels ({err})") from err
            if raw.size != count:
                raise ImageReadError(f"{path}: voxel data truncated ({raw.size} of {count})")
        if not p.raw_dtype.isnative:
            raw = raw.byteswap().view(p.raw_dtype.newbyteorder("="))
        return raw


#: The shared NIfTI reader instance.
NIFTI_READER = NiftiReader()
