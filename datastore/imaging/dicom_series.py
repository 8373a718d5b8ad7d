"""Reader for a folder holding one DICOM series: one image, slices sorted along the normal.

Probing reads only the headers (``stop_before_pixels``, from each file's first 64 KiB),
checks that the folder holds exactly one series with one orientation and pixel size and evenly
spaced slices, and records where each slice's pixel data starts; reading then fills the output
array slice by slice in sorted order (uncompressed pixel data straight from file to array).

Examples:
    >>> import pathlib, pydicom.data
    >>> d = pathlib.Path(pydicom.data.get_testdata_file("CT_small.dcm")).parent
    >>> h = DICOM_SERIES_READER.probe(d / "dicomdirtests" / "98892001" / "CT5N", ReadLimits())
    >>> h.shape, round(h.spacing[0], 3)
    ((5, 16, 16), 2.5)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import ImageReadError
from ._geometry import to_image_data, volume_header
from ._values import check_declared_size
from .dicom_file import decode_plan, plan_file
from .dicom_geometry import classic_plane, stack_planes
from .dicom_io import DicomHeader, is_dicom_file, read_header
from .dicom_pixels import decode_pixels
from .dicom_values import (
    apply_pairs,
    combined_dtype,
    dataset_facts,
    rescale_pair,
)
from .types import ImageData, ImageHeader, ReadLimits

__all__ = ["DICOM_SERIES_READER", "DicomSeriesReader", "is_dicom_series_dir", "series_files"]

_SNIFF_FILES = 3
_IGNORED = frozenset({"dicomdir", "thumbs.db", "desktop.ini"})


def _candidates(folder: Path) -> list[Path]:
    """Regular, non-hidden files of a folder (one level), sorted by name."""
    out = []
    with os.scandir(folder) as it:
        for entry in it:
            if entry.name.startswith(".") or entry.name.lower() in _IGNORED:
                continue
            if entry.is_file(follow_symlinks=True):
                out.append(Path(entry.path))
    return sorted(out)


def series_files(folder: str | os.PathLike[str]) -> list[Path]:
    """The DICOM files of a series folder (non-DICOM and hidden files are ignored).

    Args:
        folder: The folder.

    Returns:
        Sorted paths.
    """
    return [p for p in _candidates(Path(folder)) if is_dicom_file(p)]


def is_dicom_series_dir(path: str | os.PathLike[str]) -> bool:
    """Cheap check that a folder holds DICOM files: the first few regular files are DICOM.

    Args:
        path: A folder.

    Returns:
        True when it has at least one regular file and the sniffed ones are all DICOM.

    Example:
        >>> import pathlib, pydicom.data
        >>> d = pathlib.Path(pydicom.data.get_testdata_file("CT_small.dcm")).parent
        >>> is_dicom_series_dir(d / "dicomdirtests" / "98892001" / "CT5N")
        True
    """
    p = Path(path)
    if not p.is_dir():
        return False
    try:
        files = _candidates(p)
    except OSError:
        return False
    return bool(files) and all(is_dicom_file(f) for f in files[:_SNIFF_FILES])


@dataclass(frozen=True)
class _SeriesPlan:
    header: ImageHeader
    slices: tuple[DicomHeader, ...]  # in output (sorted) order
    pairs: tuple[tuple[float, float], ...]
    affine_crk: npt.NDArray[np.float64]
    meta: dict[str, Any]


def _check_same(headers: list[DicomHeader], where: str) -> None:
    uids = {str(h.values.get("SeriesInstanceUID") or "") for h in headers}
    if len(uids) > 1:
        raise ImageReadError(
            f"{where}: mixed series: {len(uids)} different SeriesInstanceUIDs in one folder "
            "(put each series in its own folder)"
        )
    first = headers[0].frame
    for h in headers[1:]:
        f = h.frame
        if (f.rows, f.cols) != (first.rows, first.cols):
            raise ImageReadError(
                f"{where}: inconsistent size: {h.path.name} is {f.rows}x{f.cols}, "
                f"{headers[0].path.name} is {first.rows}x{first.cols}"
            )
        if (f.samples, f.bits_allocated, f.signed, f.photometric) != (
            first.samples,
            first.bits_allocated,
            first.signed,
            first.photometric,
        ):
            raise ImageReadError(f"{where}: inconsistent pixel format in {h.path.name}")
        if f.frames != 1:
            raise ImageReadError(f"{where}: {h.path.name} is multi-frame inside a series folder")


class DicomSeriesReader:
    """Reader for a folder holding exactly one DICOM series."""

    name = "dicom-series"

    def sniff(self, path: Path, head: bytes) -> bool:
        """True for a folder whose first regular files are DICOM.

        Returns:
            Whether this reader claims the folder.
        """
        return is_dicom_series_dir(path)

    def _plan(self, folder: Path, limits: ReadLimits) -> _SeriesPlan:
        files = series_files(folder)
        if not files:
            raise ImageReadError(f"{folder}: no DICOM files in the folder")
        headers = []
        skipped = []
        for f in files:
            try:
                headers.append(read_header(f, max_bytes=limits.max_bytes))
            except ImageReadError as err:
                if "holds no image" not in str(err):
                    raise ImageReadError(f"{folder}: {err}") from err
                skipped.append(f.name)
        if not headers:
            raise ImageReadError(f"{folder}: no DICOM image files in the folder")
        where = str(folder)
        _check_same(headers, where)
        planes = [classic_plane(h.values) for h in headers]
        if any(p is None for p in planes):
            if len(headers) == 1:
                raise _SingleFileError(headers[0].path)
            raise ImageReadError(f"{where}: slices without ImagePositionPatient/Orientation")
        stack = stack_planes([p for p in planes if p is not None], where=where)
        slices = tuple(headers[i] for i in stack.order)
        pairs = tuple(rescale_pair(h.values) for h in slices)
        first = slices[0].frame
        total = first.nbytes * len(slices)
        check_declared_size(total, max_bytes=limits.max_bytes, available=None, path=folder)
        header = volume_header(
            "dicom-series",
            native_affine=stack.affine_crk,
            native_shape=(first.cols, first.rows, len(slices)),
            channels=first.out_samples,
            dtype=combined_dtype(first, pairs),
            n_frames=len(slices),
            **dataset_facts(slices[0].ds),
        )
        meta: dict[str, Any] = {
            "files": [h.path.name for h in slices],
            "transfer_syntax": slices[0].transfer_syntax,
        }
        if skipped:
            meta["skipped_files"] = skipped
        return _SeriesPlan(header, slices, pairs, stack.affine_crk, meta)

    def probe(self, path: Path, limits: ReadLimits) -> ImageHeader:
        """Header facts of the series, reading only the slice headers.

        Returns:
            The header (``n_frames`` = number of slices).

        Raises:
            ImageReadError: Mixed series, missing slice, inconsistent orientation or size...
        """
        try:
            return self._plan(path, limits).header
        except _SingleFileError as one:
            from .dicom_file import header_2d

            return header_2d(plan_file(one.path, limits).header)

    def read(self, path: Path, limits: ReadLimits) -> ImageData:
        """Decode the series into one canonical volume.

        Returns:
            Canonical (C, D, H, W) data; ``meta["files"]`` lists the slices in D order.

        Raises:
            ImageReadError: As :meth:`probe`, or a slice's pixel data is truncated.
            UnsupportedFormatError: Compressed slices without an installed decoder.
        """
        try:
            plan = self._plan(path, limits)
        except _SingleFileError as one:
            return decode_plan(plan_file(one.path, limits))
        f = plan.slices[0].frame
        raw = np.empty((len(plan.slices), f.rows, f.cols, f.out_samples), dtype=f.dtype)
        for k, h in enumerate(plan.slices):
            decode_pixels(h, raw[k : k + 1])
        out = apply_pairs(raw, plan.pairs, np.dtype(plan.header.dtype), path=str(path))
        return to_image_data(out.transpose(2, 1, 0, 3), plan.affine_crk, plan.header, plan.meta)


class _SingleFileError(Exception):
    """Internal: the folder holds one image file without geometry; read it as a file."""

    def __init__(self, path: Path) -> None:
        super().__init__(str(path))
        self.path = path


#: The shared series-folder reader.
DICOM_SERIES_READER = DicomSeriesReader()
