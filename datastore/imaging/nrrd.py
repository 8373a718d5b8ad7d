"""NRRD reader (``.nrrd``, ``.nhdr`` + detached data): pynrrd headers, guarded voxel reads.

The header is parsed by pynrrd (fields, space directions, key/value pairs); voxels are read here
with one bounded pass (raw, gzip, bzip2) after the declared size has been checked against the cap
and the data's size, so a header that disagrees with its data is refused before any allocation.
``space directions``/``space origin`` give the affine; every ``space`` is converted to RAS+
(``left-posterior-superior``, ``scanner-xyz``, ``3D-*-handed`` and no space at all are LPS, as
ITK reads them). Axes without a space direction (a ``list`` or ``vector`` axis, e.g. the layers of
a Slicer ``.seg.nrrd``) become channels. A detached data file must lie in the header's folder
(or below it): a header cannot make the store read a file elsewhere.

Examples:
    >>> import tempfile, pathlib, numpy as np, nrrd
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "ct.nrrd"
    >>> nrrd.write(str(p), np.zeros((4, 5, 6), np.int16), {"space": "left-posterior-superior",
    ...            "space directions": np.diag([1.0, 2.0, 3.0]), "space origin": [0.0, 0, 0]})
    >>> h = NRRD_READER.probe(p, ReadLimits())
    >>> h.shape, h.spacing, h.orientation
    ((6, 5, 4), (3.0, 2.0, 1.0), ('L', 'P', 'S'))
"""

from __future__ import annotations

import bz2
import math
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nrrd
import numpy as np
import numpy.typing as npt

from ..errors import ImageReadError
from ._geometry import to_image_data, volume_header
from ._gzip import MAX_DEFLATE_RATIO
from ._values import check_declared_size
from .types import ImageData, ImageHeader, ReadLimits

__all__ = ["NRRD_READER", "NrrdHeader", "NrrdReader", "detached_data_path", "read_nrrd_header"]

#: Largest header accepted (a Slicer segmentation with hundreds of segments stays far below).
MAX_HEADER_BYTES = 4 << 20
_CHUNK = 1 << 20

_TYPES: dict[str, str] = {}
for _names, _code in (
    ("signed char int8 int8_t", "i1"),
    ("uchar unsigned_char uint8 uint8_t", "u1"),
    ("short short_int signed_short signed_short_int int16 int16_t", "i2"),
    ("ushort unsigned_short unsigned_short_int uint16 uint16_t", "u2"),
    ("int signed_int int32 int32_t", "i4"),
    ("uint unsigned_int uint32 uint32_t", "u4"),
    ("longlong long_long long_long_int signed_long_long signed_long_long_int int64 int64_t", "i8"),
    ("ulonglong unsigned_long_long unsigned_long_long_int uint64 uint64_t", "u8"),
    ("float", "f4"),
    ("double", "f8"),
):
    _TYPES.update({n.replace("_", " "): _code for n in _names.split()})

#: Space names whose axes point to RAS (+1) or LPS (-1) along x and y; others read as LPS.
_RAS_SIGNS = {
    "right-anterior-superior": (1.0, 1.0),
    "ras": (1.0, 1.0),
    "left-anterior-superior": (-1.0, 1.0),
    "las": (-1.0, 1.0),
}
_SPATIAL_KINDS = {"domain", "space"}


@dataclass(frozen=True)
class NrrdHeader:
    """A parsed NRRD header plus where its voxels are.

    Attributes:
        fields: pynrrd's header dict (fields and ``key:=value`` pairs).
        dtype: Stored voxel type, in the file's byte order.
        sizes: Axis sizes, fastest axis first (NRRD order).
        spatial: Indices of the spatial axes (at most three).
        affine: 4x4 RAS+ affine of the spatial axes (padded to three).
        data_path: The file holding the voxels (the header file itself unless detached).
        offset: Where the (possibly compressed) data starts in ``data_path``.
        encoding: ``raw``, ``gzip``, ``bzip2``, ``ascii`` or ``hex``.
    """

    fields: dict[str, Any]
    dtype: np.dtype[Any]
    sizes: tuple[int, ...]
    spatial: tuple[int, ...]
    affine: npt.NDArray[np.float64]
    data_path: Path
    offset: int
    encoding: str

    @property
    def nbytes(self) -> int:
        """Bytes of voxel data the header declares."""
        return math.prod(self.sizes) * self.dtype.itemsize

    @property
    def channel_axes(self) -> tuple[int, ...]:
        """Axes that are not spatial, in file order."""
        return tuple(i for i in range(len(self.sizes)) if i not in self.spatial)


def _header_bytes(path: Path) -> tuple[list[str], int]:
    """The header lines and where the attached data starts (the file size when there is none)."""
    with open(path, "rb") as fh:
        raw = fh.read(MAX_HEADER_BYTES + 1)
    if not raw.startswith(b"NRRD000"):
        raise ImageReadError(f"{path}: not an NRRD file (no NRRD000x magic)")
    end, sep = len(raw), 0
    for blank in (b"\n\n", b"\r\n\r\n"):
        at = raw.find(blank)
        if at >= 0 and at < end:
            end, sep = at, len(blank)
    if sep == 0 and len(raw) > MAX_HEADER_BYTES:
        raise ImageReadError(f"{path}: NRRD header longer than {MAX_HEADER_BYTES} bytes")
    try:
        text = raw[:end].decode("ascii")
    except UnicodeDecodeError:
        text = raw[:end].decode("latin-1")
    return text.splitlines(), end + sep


def detached_data_path(header: Path, name: str) -> Path:
    """The data file ``name`` of ``header``, checked to be a regular file in the header's folder.

    A header reached through a symbolic link (an image added with ``--link``) reads its data
    beside the file the link points to.

    Args:
        header: The NRRD header.
        name: The data file name its ``data file`` field gives.

    Returns:
        The resolved path.

    Raises:
        ImageReadError: A multi-file list or empty name; a file that is missing, not a regular
            file, or resolves (through links) outside the header's folder.
    """
    if name.startswith("LIST") or "%" in name or name.strip() != name or not name:
        raise ImageReadError(f"{header}: multi-file or unnamed detached NRRD data is not supported")
    folder = header.resolve().parent
    target = (folder / name).resolve()
    if not target.is_relative_to(folder):
        raise ImageReadError(
            f"{header}: detached data file {name!r} lies outside the header's folder; refused"
        )
    if not target.is_file():
        raise ImageReadError(f"{header}: detached data file {name!r} is missing")
    return target


def _space_affine(path: Path, fields: dict[str, Any], ndim: int) -> tuple[tuple[int, ...], Any]:
    """Spatial axes and the 4x4 RAS+ affine from space directions/origin (or spacings)."""
    space = str(fields.get("space", "")).lower().removesuffix("-time")
    sx, sy = _RAS_SIGNS.get(space, (-1.0, -1.0))
    dirs = fields.get("space directions")
    kinds = [str(k).lower() for k in fields.get("kinds", [])]
    if dirs is not None:
        d = np.asarray(dirs, dtype=np.float64)
        if d.ndim != 2 or d.shape[0] != ndim:
            raise ImageReadError(f"{path}: 'space directions' does not have one row per axis")
        spatial = tuple(i for i in range(ndim) if np.isfinite(d[i]).all())
        cols = [np.pad(d[i, :3], (0, max(0, 3 - d.shape[1]))) for i in spatial]
    else:
        spacings = list(fields.get("spacings", [1.0] * ndim))
        spatial = tuple(i for i in range(ndim) if not kinds or kinds[i] in _SPATIAL_KINDS)[:3]
        if not spatial:
            spatial = tuple(range(min(ndim, 3)))
        cols = []
        for n, i in enumerate(spatial):
            s = float(spacings[i]) if i < len(spacings) and np.isfinite(spacings[i]) else 1.0
            cols.append(np.eye(3)[n] * s)
    if not 2 <= len(spatial) <= 3:
        raise ImageReadError(f"{path}: NRRD has {len(spatial)} spatial axes; 2 or 3 are read")
    if len(cols) == 2:
        normal = np.cross(cols[0], cols[1])
        norm = float(np.linalg.norm(normal))
        cols.append(normal / norm if norm > 0 else np.array([0.0, 0.0, 1.0]))
    origin = fields.get("space origin")
    org = np.zeros(3) if origin is None else np.asarray(origin, float).reshape(-1)[:3]
    org = np.pad(org, (0, 3 - org.size))
    aff = np.eye(4)
    aff[:3, :3] = np.column_stack(cols)
    aff[:3, 3] = org
    aff = np.diag([sx, sy, 1.0, 1.0]) @ aff
    if not np.isfinite(aff).all() or abs(np.linalg.det(aff[:3, :3])) < 1e-12:
        raise ImageReadError(f"{path}: NRRD space directions are degenerate or not finite")
    return spatial, aff


def read_nrrd_header(path: str | os.PathLike[str], limits: ReadLimits | None = None) -> NrrdHeader:
    """Parse an NRRD header and check its declared data against the cap and the data's size.

    Args:
        path: A ``.nrrd`` or ``.nhdr`` file.
        limits: The cap (default :class:`ReadLimits`).

    Returns:
        The header.

    Raises:
        ImageReadError: Not NRRD, an invalid or unsupported header, a detached file outside the
            header's folder or missing, or declared data over the cap or beyond the data.

    Example:
        See the module example; ``read_nrrd_header(p).sizes`` is ``(4, 5, 6)`` there.
    """
    p = Path(path)
    limits = limits or ReadLimits()
    try:
        lines, offset = _header_bytes(p)
    except OSError as err:
        raise ImageReadError(f"{p}: cannot read NRRD header ({err})") from err
    try:
        fields = dict(nrrd.read_header(lines))
    except (nrrd.NRRDError, ValueError, TypeError, IndexError) as err:
        raise ImageReadError(f"{p}: invalid NRRD header ({err})") from err
    type_name = " ".join(str(fields.get("type", "")).split()).lower()
    if type_name not in _TYPES:
        raise ImageReadError(f"{p}: unsupported NRRD type {fields.get('type')!r}")
    dtype = np.dtype(_TYPES[type_name])
    if dtype.itemsize > 1:
        big = str(fields.get("endian", "little")).lower() == "big"
        dtype = dtype.newbyteorder(">" if big else "<")
    try:
        sizes = tuple(int(s) for s in fields["sizes"])
    except (KeyError, TypeError, ValueError) as err:
        raise ImageReadError(f"{p}: NRRD header has no valid 'sizes'") from err
    if len(sizes) != int(fields.get("dimension", len(sizes))) or min(sizes, default=0) < 1:
        raise ImageReadError(f"{p}: NRRD sizes {sizes} disagree with its dimension or are empty")
    spatial, affine = _space_affine(p, fields, len(sizes))
    encoding = str(fields.get("encoding", "raw")).lower()
    encoding = {"gz": "gzip", "bz2": "bzip2", "txt": "ascii", "text": "ascii"}.get(
        encoding, encoding
    )
    if encoding not in {"raw", "gzip", "bzip2", "ascii", "hex"}:
        raise ImageReadError(f"{p}: unsupported NRRD encoding {encoding!r}")
    data_path = p
    data_file = fields.get("data file", fields.get("datafile"))
    if data_file is not None:
        data_path, offset = detached_data_path(p, str(data_file)), 0
    header = NrrdHeader(fields, dtype, sizes, spatial, affine, data_path, offset, encoding)
    available = data_path.stat().st_size - offset
    if encoding in {"gzip", "bzip2"}:
        available *= MAX_DEFLATE_RATIO
    elif encoding in {"ascii", "hex"}:
        available *= dtype.itemsize  # at least one character per value
    check_declared_size(header.nbytes, max_bytes=limits.max_bytes, available=available, path=p)
    return header


def _skip_lines(fh: Any, count: int) -> None:
    for _ in range(count):
        if not fh.readline(MAX_HEADER_BYTES):
            break


def _decode_stream(fh: Any, into: memoryview, dec: Any, path: Path) -> None:
    """Decompress from ``fh`` exactly ``len(into)`` bytes; refuse less, and refuse more."""
    filled, total = 0, len(into)
    pending = b""
    while filled < total:
        if not pending:
            pending = fh.read(_CHUNK)
            if not pending:
                break
        try:
            out = dec.decompress(pending, total - filled)
        except (zlib.error, OSError, EOFError, ValueError) as err:
            raise ImageReadError(f"{path}: corrupt compressed NRRD data ({err})") from err
        into[filled : filled + len(out)] = out
        filled += len(out)
        pending = dec.unconsumed_tail if hasattr(dec, "unconsumed_tail") else b""
        if getattr(dec, "eof", False):
            break
    if filled < total:
        raise ImageReadError(
            f"{path}: NRRD data holds {filled} bytes but its header sizes declare {total} "
            "(truncated, or sizes disagree with the data)"
        )
    more = pending or fh.read(_CHUNK)
    try:
        extra = dec.decompress(more, 1) if more and not getattr(dec, "eof", False) else b""
    except (zlib.error, OSError, EOFError, ValueError):
        extra = b""
    if extra:
        raise ImageReadError(f"{path}: NRRD data holds more than its header sizes declare")


def _read_voxels(h: NrrdHeader, path: Path) -> npt.NDArray[Any]:
    """The flat voxel vector (file byte order), exactly as many values as the sizes declare."""
    count = math.prod(h.sizes)
    line_skip = int(h.fields.get("line skip", 0) or 0)
    byte_skip = int(h.fields.get("byte skip", 0) or 0)
    if h.encoding in {"ascii", "hex"}:
        try:
            with open(h.data_path, "rb") as fh:
                fh.seek(h.offset)
                flat = nrrd.read_data(h.fields, fh, str(path)).reshape(-1, order="F")
        except (nrrd.NRRDError, ValueError, OSError) as err:
            raise ImageReadError(f"{path}: cannot read NRRD {h.encoding} data ({err})") from err
        if flat.size != count:
            raise ImageReadError(f"{path}: NRRD data does not match its header sizes {h.sizes}")
        return flat.astype(h.dtype, copy=False)
    out = np.empty(count, dtype=h.dtype)
    buf = out.data.cast("B")
    try:
        with open(h.data_path, "rb") as fh:
            fh.seek(h.offset)
            _skip_lines(fh, line_skip)
            if h.encoding == "raw":
                size = os.fstat(fh.fileno()).st_size
                start = size - h.nbytes if byte_skip == -1 else fh.tell() + byte_skip
                left = size - start
                if start < 0 or left != h.nbytes:
                    raise ImageReadError(
                        f"{path}: NRRD data holds {max(left, 0)} bytes but its header sizes "
                        f"{h.sizes} declare {h.nbytes}"
                    )
                fh.seek(start)
                got = fh.readinto(buf)
                if got != h.nbytes:
                    raise ImageReadError(f"{path}: NRRD data truncated ({got} of {h.nbytes})")
            else:
                fh.seek(max(byte_skip, 0), os.SEEK_CUR)
                dec: Any = (
                    zlib.decompressobj(zlib.MAX_WBITS | 32)
                    if h.encoding == "gzip"
                    else bz2.BZ2Decompressor()
                )
                _decode_stream(fh, buf, dec, path)
    except OSError as err:
        raise ImageReadError(f"{path}: cannot read NRRD data ({err})") from err
    return out


class NrrdReader:
    """Reader for NRRD files (attached or detached data; raw, gzip, bzip2, ascii, hex)."""

    name = "nrrd"

    def sniff(self, path: Path, head: bytes) -> bool:
        """True for the NRRD magic, or a ``.nrrd``/``.nhdr`` name (probe reports what is wrong).

        Returns:
            Whether this reader claims the file.
        """
        low = path.name.lower()
        return head.startswith(b"NRRD000") or low.endswith((".nrrd", ".nhdr"))

    def _parse(self, path: Path, limits: ReadLimits) -> tuple[NrrdHeader, ImageHeader]:
        h = read_nrrd_header(path, limits)
        spatial = tuple(h.sizes[i] for i in h.spatial)
        shape3 = (*spatial, 1)[:3]
        channels = math.prod(h.sizes[i] for i in h.channel_axes)
        header = volume_header(
            "nrrd",
            native_affine=h.affine,
            native_shape=shape3,
            channels=channels,
            dtype=h.dtype.newbyteorder("="),
            n_frames=shape3[2],
        )
        return h, header

    def probe(self, path: Path, limits: ReadLimits) -> ImageHeader:
        """Header facts without voxels.

        Returns:
            The header.

        Raises:
            ImageReadError: See :func:`read_nrrd_header`.
        """
        return self._parse(path, limits)[1]

    def read(self, path: Path, limits: ReadLimits) -> ImageData:
        """Decode voxels into canonical layout; non-spatial axes become channels.

        Returns:
            Channels-first canonical data.

        Raises:
            ImageReadError: An invalid header, or data that is truncated, corrupt or longer
                than the header's sizes declare.
        """
        h, header = self._parse(path, limits)
        flat = _read_voxels(h, path)
        if not h.dtype.isnative:
            flat = flat.byteswap().view(h.dtype.newbyteorder("="))
        arr = flat.reshape(h.sizes, order="F")
        arr = np.transpose(arr, (*h.spatial, *h.channel_axes))
        shape3 = header.native_shape
        arr = arr.reshape((*shape3, header.channels), order="F")
        meta: dict[str, Any] = {"sizes": list(h.sizes), "encoding": h.encoding}
        if h.channel_axes:
            kinds = list(h.fields.get("kinds", []))
            meta["channel_kinds"] = [str(kinds[i]) for i in h.channel_axes if i < len(kinds)]
        return to_image_data(arr, h.affine, header, meta)


#: The shared NRRD reader instance.
NRRD_READER = NrrdReader()
