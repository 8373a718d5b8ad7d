"""Ordered format registry and the public entry points :func:`probe_image` / :func:`read_image`.

Each reader has a cheap ``sniff(path, head)`` ("could this be mine?", after nibabel's image
classes); the first reader in order that claims a path handles it. Folders go to the DICOM series
reader; files are offered their first bytes.

Examples:
    >>> import pathlib, nibabel
    >>> p = pathlib.Path(nibabel.__file__).parent / "tests" / "data" / "standard.nii.gz"
    >>> find_reader(p).name, probe_image(p).shape
    ('nifti', (7, 5, 4))
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol, runtime_checkable

from ..errors import ImageNotFoundError, ImageReadError, UnsupportedFormatError
from .dicom_file import DICOM_FILE_READER
from .dicom_series import DICOM_SERIES_READER
from .nifti import NIFTI_READER
from .nrrd import NRRD_READER
from .raster2d import RASTER2D_READER
from .types import DEFAULT_MAX_BYTES, ImageData, ImageHeader, ReadLimits
from .video import VIDEO_READER

__all__ = ["ImageReader", "find_reader", "probe_image", "read_image", "readers", "register_reader"]

_HEAD_BYTES = 1024


@runtime_checkable
class ImageReader(Protocol):
    """What a format reader provides (the built-in readers document only what is their own).

    ``sniff`` must be cheap (no voxel reads); ``probe`` reads headers only; ``read`` decodes to
    canonical layout. Both raise :class:`~medstore.datastore.ImageReadError` for a bad file and
    :class:`~medstore.datastore.UnsupportedFormatError` for a missing optional dependency.
    """

    name: str

    def sniff(self, path: Path, head: bytes) -> bool:
        """Could this file (or folder) be mine?

        Args:
            path: The file, or a folder (a DICOM series).
            head: The file's first raw bytes (up to 1 KiB; empty for a folder).

        Returns:
            Whether this reader claims it.
        """
        ...

    def probe(self, path: Path, limits: ReadLimits) -> ImageHeader:
        """Header facts without voxels.

        Args:
            path: The file or folder.
            limits: Safety limits (the cap on declared voxel bytes).

        Returns:
            The header, shapes in canonical order.
        """
        ...

    def read(self, path: Path, limits: ReadLimits) -> ImageData:
        """Decoded voxels in canonical layout.

        Args:
            path: The file or folder.
            limits: Safety limits (the cap on declared voxel bytes).

        Returns:
            Channels-first canonical data.
        """
        ...


_READERS: list[ImageReader] = [
    NIFTI_READER,
    NRRD_READER,
    DICOM_SERIES_READER,
    DICOM_FILE_READER,
    RASTER2D_READER,
    VIDEO_READER,
]


def readers() -> tuple[ImageReader, ...]:
    """The registered readers, in sniffing order.

    Returns:
        A tuple copy of the registry.
    """
    return tuple(_READERS)


def register_reader(reader: ImageReader, *, first: bool = False) -> None:
    """Add a reader to the registry (idempotent by ``name``).

    Args:
        reader: The reader.
        first: Put it before the built-in readers instead of after them.
    """
    _READERS[:] = [r for r in _READERS if r.name != reader.name]
    if first:
        _READERS.insert(0, reader)
    else:
        _READERS.append(reader)


def find_reader(path: str | os.PathLike[str]) -> ImageReader:
    """The first registered reader that claims ``path``.

    Args:
        path: An image file or a DICOM series folder.

    Returns:
        The reader.

    Raises:
        ImageNotFoundError: ``path`` does not exist.
        ImageReadError: ``path`` is a FIFO, a device or a socket (it is never opened).
        UnsupportedFormatError: No reader claims it.
    """
    p = Path(path)
    if not p.exists():
        raise ImageNotFoundError(f"{p}: no such image file or folder")
    head = b""
    if not p.is_dir():
        if not p.is_file():  # never opened: a FIFO would wait for a writer, a device never end
            raise ImageReadError(f"{p}: not a regular file (a FIFO, device or socket)")
        try:
            with open(p, "rb") as fh:
                head = fh.read(_HEAD_BYTES)
        except OSError as err:
            raise UnsupportedFormatError(f"{p}: cannot open ({err})") from err
    for reader in _READERS:
        if reader.sniff(p, head):
            return reader
    kind = "folder (no DICOM files)" if p.is_dir() else "file"
    raise UnsupportedFormatError(
        f"{p}: unsupported {kind}; readable: NIfTI (.nii, .nii.gz), NRRD (.nrrd, .nhdr), DICOM "
        "files and series folders, PNG/JPEG/TIFF (extra 'images2d'), video (extra 'video')"
    )


def probe_image(path: str | os.PathLike[str], *, max_bytes: int = DEFAULT_MAX_BYTES) -> ImageHeader:
    """Header facts of an image (shape, dtype, spacing, affine, modality...) without voxels.

    Args:
        path: An image file or a DICOM series folder.
        max_bytes: Refuse images whose declared voxel data exceeds this many bytes.

    Returns:
        The header; shapes are in canonical order.

    Raises:
        ImageNotFoundError: ``path`` does not exist.
        UnsupportedFormatError: No reader for it (or its optional extra is missing).
        ImageReadError: Corrupt, inconsistent or oversized.

    Example:
        >>> import pydicom.data
        >>> probe_image(pydicom.data.get_testdata_file("CT_small.dcm")).info_facts()["modality"]
        'CT'
    """
    p = Path(path)
    return find_reader(p).probe(p, ReadLimits(max_bytes=max_bytes))


def read_image(path: str | os.PathLike[str], *, max_bytes: int = DEFAULT_MAX_BYTES) -> ImageData:
    """Decode an image into the canonical layout, channels first.

    The canonical layout is ``(C, D, H, W)`` with D running inferior→superior, H
    anterior→posterior and W patient right→left, whatever the file's orientation.

    Args:
        path: An image file or a DICOM series folder.
        max_bytes: Refuse images whose declared voxel data exceeds this many bytes.

    Returns:
        ``ImageData`` with ``array`` (C, D, H, W) or (C, H, W), its RAS+ ``affine``, ``spacing``
        in the array's axis order and ``meta``.

    Raises:
        ImageNotFoundError: ``path`` does not exist.
        UnsupportedFormatError: No reader, a missing extra, or a missing DICOM decoder.
        ImageReadError: Corrupt, truncated, inconsistent or oversized.

    Example:
        >>> import pydicom.data
        >>> read_image(pydicom.data.get_testdata_file("MR_small.dcm")).array.shape
        (1, 1, 64, 64)
    """
    p = Path(path)
    return find_reader(p).read(p, ReadLimits(max_bytes=max_bytes))
