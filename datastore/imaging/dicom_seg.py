"""DICOM Segmentation (SEG) in and out through highdicom, on the grid of the referenced image.

:func:`seg_references` says which series a SEG annotates; :func:`read_dicom_seg` rasterises its
segments (binary, or fractional thresholded at one half) onto that image's canonical grid as one
label map, each segment's voxels marked with its segment number (a later segment wins where two
overlap; the overlap is counted); :func:`dicom_seg_bytes` writes a canonical label map as a SEG
referencing the image's own slices. Frames that do not lie on the image's voxel grid are refused,
never resampled.

Examples:
    >>> from medstore.datastore.imaging.dicom_seg import SEG_SOP_CLASS
    >>> SEG_SOP_CLASS
    '1.2.840.10008.5.1.4.1.1.66.4'
"""

from __future__ import annotations

import copy
import io
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from ..errors import ImageReadError, LabelGeometryError
from .dicom_planes import place_on_grid, plane_voxels, source_datasets
from .orientation import LPS_TO_RAS, to_canonical
from .types import ImageHeader

__all__ = [
    "SEG_SOP_CLASS",
    "SegReferences",
    "SegmentationImport",
    "dicom_seg_bytes",
    "read_dicom_seg",
    "seg_references",
]

SEG_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"
#: Type 2 attributes highdicom copies from the source images (empty is valid DICOM).
_TYPE2 = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
    "StudyID",
    "AccessionNumber",
)


@dataclass(frozen=True)
class SegReferences:
    """What a SEG or RTSTRUCT annotates.

    Attributes:
        series_uids: Referenced SeriesInstanceUIDs.
        sop_uids: Referenced SOPInstanceUIDs (slices).
    """

    series_uids: frozenset[str]
    sop_uids: frozenset[str] = frozenset()


@dataclass(frozen=True)
class SegmentationImport:
    """A SEG or RTSTRUCT rasterised onto its image.

    Attributes:
        label: Canonical label map ``(D, H, W)``; a segment's voxels hold its value.
        label_info: MONAI Label's ``[{"name", "idx"}]``.
        overlap_voxels: Voxels claimed by more than one segment (the later one is kept).
        notes: What was done that a user should know (overlaps, empty segments).
    """

    label: npt.NDArray[Any]
    label_info: list[dict[str, Any]]
    overlap_voxels: int = 0
    notes: list[str] = field(default_factory=list)


def _highdicom() -> Any:
    import highdicom

    return highdicom


def _open_seg(path: Path) -> Any:
    hd = _highdicom()
    try:
        seg = hd.seg.segread(path)
    except (AttributeError, ValueError, KeyError, TypeError, OSError) as err:
        raise ImageReadError(f"{path}: not a readable DICOM SEG ({err})") from err
    return seg


def seg_references(path: str | os.PathLike[str]) -> SegReferences:
    """The series and slices a DICOM SEG references.

    Args:
        path: The SEG file.

    Returns:
        Its references.

    Raises:
        ImageReadError: Not a SEG, or it references no series.
    """
    p = Path(path)
    try:
        ds = pydicom.dcmread(p, stop_before_pixels=True)
    except (pydicom.errors.InvalidDicomError, OSError, ValueError) as err:
        raise ImageReadError(f"{p}: not a DICOM file ({err})") from err
    if str(ds.get("SOPClassUID", "")) != SEG_SOP_CLASS:
        raise ImageReadError(f"{p}: not a DICOM SEG (SOP class {ds.get('SOPClassUID', '?')})")
    series: set[str] = set()
    sops: set[str] = set()
    for item in ds.get("ReferencedSeriesSequence", []):
        series.add(str(item.SeriesInstanceUID))
        sops.update(
            str(i.ReferencedSOPInstanceUID) for i in item.get("ReferencedInstanceSequence", [])
        )
    if not series:
        raise ImageReadError(f"{p}: the SEG references no series (no ReferencedSeriesSequence)")
    return SegReferences(frozenset(series), frozenset(sops))


def read_dicom_seg(path: str | os.PathLike[str], header: ImageHeader) -> SegmentationImport:
    """Rasterise a SEG's segments onto the canonical grid of the image ``header`` describes.

    Args:
        path: The SEG file.
        header: The referenced image's header.

    Returns:
        The label map, names and overlap count.

    Raises:
        ImageReadError: Not a SEG, frames without a regular geometry, or frames that do not
            match the image's grid (other spacing/orientation, off-grid, outside it).
    """
    p = Path(path)
    seg = _open_seg(p)
    try:
        volume = seg.get_volume(combine_segments=False, rescale_fractional=True)
    except (ValueError, RuntimeError, KeyError, AttributeError) as err:
        raise ImageReadError(f"{p}: SEG frames do not form one regular volume ({err})") from err
    arr = np.asarray(volume.array)
    if arr.ndim == 3:
        arr = arr[..., np.newaxis]
    ras = LPS_TO_RAS @ np.asarray(volume.affine, dtype=np.float64)
    can, can_aff, _ = to_canonical(arr, ras)
    numbers = [int(n) for n in seg.segment_numbers]
    label_dtype = np.uint8 if max(numbers, default=0) < 256 else np.uint16
    label: npt.NDArray[Any] | None = None
    claimed: npt.NDArray[np.uint16] | None = None
    info = []
    for channel, number in enumerate(numbers):
        mask = np.asarray(can[..., channel]) >= 0.5
        placed = place_on_grid(mask, can_aff, header, where=p)
        if label is None or claimed is None:
            label = np.zeros(placed.shape, label_dtype)
            claimed = np.zeros(placed.shape, np.uint16)
        label[placed] = number
        claimed += placed
        desc = seg.get_segment_description(number)
        info.append({"name": str(desc.segment_label or f"Segment_{number}"), "idx": number})
    if label is None or claimed is None:
        raise ImageReadError(f"{p}: the SEG holds no segments")
    overlap = int((claimed > 1).sum())
    notes = [f"{overlap} voxels belong to several segments; the later segment is kept"] * bool(
        overlap
    )
    return SegmentationImport(label, info, overlap, notes)


def _complete(ds: Dataset) -> Dataset:
    """A copy of a slice header with the type 2 attributes highdicom copies present."""
    out = copy.deepcopy(ds)
    for keyword in _TYPE2:
        if keyword not in out:
            setattr(out, keyword, "")
    return out


def dicom_seg_bytes(
    label: npt.NDArray[Any],
    header: ImageHeader,
    series_folder: str | os.PathLike[str],
    *,
    names: Mapping[int, str] | None = None,
) -> bytes:
    """A binary DICOM SEG of a canonical label map, referencing the series' own slices.

    Each nonzero value becomes one segment (numbered 1.. in value order) named from ``names``.

    Args:
        label: Canonical ``(D, H, W)`` label map on the image's grid.
        header: The image's header.
        series_folder: The image's DICOM series folder.
        names: Value → segment label.

    Returns:
        The SEG file content.

    Raises:
        LabelGeometryError: The label does not have the image's shape or is empty.
        ImageReadError: The series cannot serve as source (no slices, no frame of reference).
    """
    arr = np.asarray(label)
    if tuple(arr.shape) != tuple(header.shape):
        raise LabelGeometryError(f"label shape {arr.shape} is not the image's {header.shape}")
    values = [int(v) for v in np.unique(arr) if v != 0]
    if not values:
        raise LabelGeometryError("the label is empty: a SEG needs at least one segment")
    sources = [_complete(ds) for ds in source_datasets(series_folder)]
    frames = []
    for ds in sources:
        vox = plane_voxels(ds, header)
        ok = ((vox >= 0) & (vox < np.asarray(arr.shape))).all(axis=-1)
        plane = np.zeros(vox.shape[:2], arr.dtype)
        plane[ok] = arr[vox[ok][:, 0], vox[ok][:, 1], vox[ok][:, 2]]
        frames.append(np.stack([plane == v for v in values], axis=-1))
    hd = _highdicom()
    code = hd.sr.CodedConcept
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=n + 1,
            segment_label=(names or {}).get(v, f"Segment_{v}"),
            segmented_property_category=code("91723000", "SCT", "Anatomical Structure"),
            segmented_property_type=code("91723000", "SCT", "Anatomical Structure"),
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL,
        )
        for n, v in enumerate(values)
    ]
    try:
        seg = hd.seg.Segmentation(
            source_images=sources,
            pixel_array=np.stack(frames).astype(np.uint8),
            segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=descriptions,
            series_instance_uid=generate_uid(),
            series_number=900,
            sop_instance_uid=generate_uid(),
            instance_number=1,
            manufacturer="medstore",
            manufacturer_model_name="medstore",
            software_versions="medstore",
            device_serial_number="0",
            omit_empty_frames=True,
        )
    except (AttributeError, ValueError, TypeError) as err:
        raise ImageReadError(f"{series_folder}: cannot serve as a SEG's source ({err})") from err
    buf = io.BytesIO()
    seg.save_as(buf)
    return buf.getvalue()
