"""RT Structure Sets in and out, on the grid of the referenced image.

Import: every closed planar contour of an ROI is mapped from patient coordinates (LPS mm) to the
image's own voxel grid, must lie in one slice plane of it, and is filled with scikit-image's
``polygon`` (contours of one ROI in one plane combine by exclusive or, so an inner contour is a
hole). Export: each label value's mask, slice by slice in the source series' own planes, is traced
with scikit-image's marching squares (``find_contours`` at level one half) and written as
``CLOSED_PLANAR`` contours referencing the slice they lie on.

Examples:
    >>> RTSTRUCT_SOP_CLASS
    '1.2.840.10008.5.1.4.1.1.481.3'
"""

from __future__ import annotations

import datetime
import io
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid
from skimage.draw import polygon
from skimage.measure import find_contours

from ..errors import ImageReadError, LabelGeometryError
from .dicom_planes import plane_voxels, source_datasets
from .dicom_seg import SegmentationImport, SegReferences
from .orientation import LPS_TO_RAS, to_canonical
from .types import ImageHeader

__all__ = ["RTSTRUCT_SOP_CLASS", "read_rtstruct", "rtstruct_bytes", "rtstruct_references"]

RTSTRUCT_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.481.3"
_PLANE_TOLERANCE = 0.25  # voxels a contour may lie off a slice centre
_EDGE = 0.5 + 1e-6  # contour points may reach the outer edge of the border voxels


def _read(path: Path) -> Dataset:
    try:
        ds = pydicom.dcmread(path)
    except (pydicom.errors.InvalidDicomError, OSError, ValueError) as err:
        raise ImageReadError(f"{path}: not a DICOM file ({err})") from err
    if str(ds.get("SOPClassUID", "")) != RTSTRUCT_SOP_CLASS:
        raise ImageReadError(f"{path}: not an RT Structure Set")
    return ds


def rtstruct_references(path: str | os.PathLike[str]) -> SegReferences:
    """The series and slices an RTSTRUCT references.

    Args:
        path: The RTSTRUCT file.

    Returns:
        Its references.

    Raises:
        ImageReadError: Not an RTSTRUCT, or it references no series.
    """
    p = Path(path)
    ds = _read(p)
    series: set[str] = set()
    sops: set[str] = set()
    for frame in ds.get("ReferencedFrameOfReferenceSequence", []):
        for study in frame.get("RTReferencedStudySequence", []):
            for item in study.get("RTReferencedSeriesSequence", []):
                series.add(str(item.SeriesInstanceUID))
                sops.update(
                    str(c.ReferencedSOPInstanceUID) for c in item.get("ContourImageSequence", [])
                )
    if not series:
        raise ImageReadError(f"{p}: the RTSTRUCT references no series")
    return SegReferences(frozenset(series), frozenset(sops))


def _native_points(points_lps: npt.NDArray[np.float64], header: ImageHeader) -> Any:
    """Continuous voxel coordinates in the image file's own order (col, row, slice for DICOM)."""
    ras = (LPS_TO_RAS[:3, :3] @ points_lps.T).T
    inv = np.linalg.inv(header.native_affine_array)
    return (inv[:3, :3] @ ras.T).T + inv[:3, 3]


def _fill(native: npt.NDArray[Any], pts: npt.NDArray[np.float64], where: str) -> None:
    """XOR a closed planar contour (native voxel coordinates) into ``native``."""
    spread = pts.max(axis=0) - pts.min(axis=0)
    axis = int(np.argmin(spread))
    if spread[axis] > 2 * _PLANE_TOLERANCE:
        raise ImageReadError(f"{where}: contour is not in one plane of the image's slices")
    level = float(pts[:, axis].mean())
    k = round(level)
    if abs(level - k) > _PLANE_TOLERANCE:
        raise ImageReadError(f"{where}: contour lies between the image's slices")
    a, b = [i for i in range(3) if i != axis]
    plane = np.moveaxis(native, (a, b, axis), (0, 1, 2))[:, :, k]
    rr, cc = polygon(pts[:, a], pts[:, b], shape=plane.shape)
    plane[rr, cc] ^= True


def read_rtstruct(path: str | os.PathLike[str], header: ImageHeader) -> SegmentationImport:
    """Rasterise every ROI of an RTSTRUCT onto the canonical grid of the image ``header`` describes.

    Args:
        path: The RTSTRUCT file.
        header: The referenced image's header.

    Returns:
        The label map (ROI ``n`` in file order has value ``n + 1``; a later ROI wins where two
        overlap), ``label_info`` from the ROI names, and the overlap count.

    Raises:
        ImageReadError: Not an RTSTRUCT; a contour with fewer than 3 points, outside the image,
            not in one slice plane, or of a type other than ``CLOSED_PLANAR``/``POINT``.
    """
    p = Path(path)
    ds = _read(p)
    names = {int(r.ROINumber): str(r.ROIName) for r in ds.get("StructureSetROISequence", [])}
    shape = header.native_shape
    label = np.zeros(header.shape, np.uint8 if len(names) < 255 else np.uint16)
    claimed = np.zeros(header.shape, np.uint16)
    info = []
    for n, roi in enumerate(ds.get("ROIContourSequence", [])):
        number = int(roi.ReferencedROINumber)
        name = names.get(number, f"ROI_{number}")
        native = np.zeros(shape, bool)
        for c, contour in enumerate(roi.get("ContourSequence", [])):
            where = f"{p}: ROI {name!r} contour {c}"
            kind = str(contour.get("ContourGeometricType", "CLOSED_PLANAR"))
            if kind == "POINT":
                continue
            if kind != "CLOSED_PLANAR":
                raise ImageReadError(f"{where}: contour type {kind} is not read")
            pts = np.asarray([float(v) for v in contour.ContourData]).reshape(-1, 3)
            if len(pts) < 3:
                raise ImageReadError(f"{where}: a closed contour needs 3 points, it has {len(pts)}")
            vox = _native_points(pts, header)
            if (vox < -_EDGE).any() or (vox > np.asarray(shape) - 1 + _EDGE).any():
                raise ImageReadError(f"{where}: contour reaches outside the image")
            _fill(native, vox, where)
        can = np.ascontiguousarray(to_canonical(native, header.native_affine_array)[0])
        label[can] = n + 1
        claimed += can
        info.append({"name": name, "idx": n + 1})
    overlap = int((claimed > 1).sum())
    notes = [f"{overlap} voxels belong to several ROIs; the later ROI is kept"] * bool(overlap)
    return SegmentationImport(label, info, overlap, notes)


def _contour_item(points_lps: npt.NDArray[np.float64], ds: Dataset) -> Dataset:
    ref = Dataset()
    ref.ReferencedSOPClassUID = ds.SOPClassUID
    ref.ReferencedSOPInstanceUID = ds.SOPInstanceUID
    item = Dataset()
    item.ContourImageSequence = DicomSequence([ref])
    item.ContourGeometricType = "CLOSED_PLANAR"
    item.NumberOfContourPoints = len(points_lps)
    item.ContourData = [f"{v:.4f}" for v in points_lps.reshape(-1)]
    return item


def _slice_contours(plane: npt.NDArray[np.bool_], ds: Dataset) -> list[npt.NDArray[np.float64]]:
    """Contours (LPS) of a 2-D mask in a source slice's (row, column) grid."""
    padded = np.pad(plane.astype(np.float32), 1)
    ipp = np.asarray([float(v) for v in ds.ImagePositionPatient])
    iop = np.asarray([float(v) for v in ds.ImageOrientationPatient])
    dr, dc = (float(v) for v in ds.PixelSpacing)
    out = []
    for rc in find_contours(padded, 0.5):
        rc = rc[:-1] - 1.0  # closed: drop the repeated last point; undo the padding
        if len(rc) >= 3:
            out.append(ipp + rc[:, 1:2] * dc * iop[:3] + rc[:, 0:1] * dr * iop[3:])
    return out


def rtstruct_bytes(
    label: npt.NDArray[Any],
    header: ImageHeader,
    series_folder: str | os.PathLike[str],
    *,
    names: Mapping[int, str] | None = None,
) -> bytes:
    """An RT Structure Set of a canonical label map, one ROI per nonzero value.

    Args:
        label: Canonical ``(D, H, W)`` label map on the image's grid.
        header: The image's header.
        series_folder: The image's DICOM series folder (the contours reference its slices).
        names: Value → ROI name (``"ROI_<value>"`` otherwise).

    Returns:
        The RTSTRUCT file content.

    Raises:
        LabelGeometryError: The label does not have the image's shape or is empty.
    """
    arr = np.asarray(label)
    if tuple(arr.shape) != tuple(header.shape):
        raise LabelGeometryError(f"label shape {arr.shape} is not the image's {header.shape}")
    values = [int(v) for v in np.unique(arr) if v != 0]
    if not values:
        raise LabelGeometryError("the label is empty: an RTSTRUCT needs at least one ROI")
    sources = source_datasets(series_folder)
    first = sources[0]
    frame_uid = str(first.get("FrameOfReferenceUID", "") or generate_uid())
    planes = []
    for ds in sources:
        vox = plane_voxels(ds, header)
        ok = ((vox >= 0) & (vox < np.asarray(arr.shape))).all(axis=-1)
        plane = np.zeros(vox.shape[:2], arr.dtype)
        plane[ok] = arr[vox[ok][:, 0], vox[ok][:, 1], vox[ok][:, 2]]
        planes.append(plane)
    out = _base(first, frame_uid, sources)
    for n, value in enumerate(values, start=1):
        name = (names or {}).get(value, f"ROI_{value}")
        roi = Dataset()
        roi.ROINumber, roi.ReferencedFrameOfReferenceUID = n, frame_uid
        roi.ROIName, roi.ROIGenerationAlgorithm = name, "MANUAL"
        out.StructureSetROISequence.append(roi)
        contours = Dataset()
        contours.ReferencedROINumber = n
        contours.ROIDisplayColor = [int(255 * ((n * 0.37) % 1)), 128, int(255 * ((n * 0.61) % 1))]
        contours.ContourSequence = DicomSequence(
            [
                _contour_item(c, ds)
                for ds, plane in zip(sources, planes, strict=True)
                for c in _slice_contours(plane == value, ds)
            ]
        )
        out.ROIContourSequence.append(contours)
        obs = Dataset()
        obs.ObservationNumber, obs.ReferencedROINumber = n, n
        obs.RTROIInterpretedType, obs.ROIInterpreter = "ORGAN", ""
        out.RTROIObservationsSequence.append(obs)
    buf = io.BytesIO()
    out.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def _base(first: Dataset, frame_uid: str, sources: list[Dataset]) -> Dataset:
    """The RTSTRUCT's patient, study, series and reference modules."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(RTSTRUCT_SOP_CLASS)
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = RTSTRUCT_SOP_CLASS, meta.MediaStorageSOPInstanceUID
    ds.Modality = "RTSTRUCT"
    for keyword in (
        "PatientName",
        "PatientID",
        "PatientBirthDate",
        "PatientSex",
        "StudyDate",
        "StudyTime",
        "ReferringPhysicianName",
        "StudyID",
        "AccessionNumber",
    ):
        setattr(ds, keyword, first.get(keyword, ""))
    ds.StudyInstanceUID = first.StudyInstanceUID
    ds.SeriesInstanceUID, ds.SeriesNumber, ds.InstanceNumber = generate_uid(), 901, 1
    ds.Manufacturer, ds.OperatorsName = "medstore", ""
    now = datetime.datetime.now(datetime.UTC)
    ds.StructureSetLabel = "medstore"
    ds.StructureSetDate, ds.StructureSetTime = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    images = [Dataset() for _ in sources]
    for item, src in zip(images, sources, strict=True):
        item.ReferencedSOPClassUID = src.SOPClassUID
        item.ReferencedSOPInstanceUID = src.SOPInstanceUID
    series = Dataset()
    series.SeriesInstanceUID = first.SeriesInstanceUID
    series.ContourImageSequence = DicomSequence(images)
    study = Dataset()
    study.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"  # Detached Study Management
    study.ReferencedSOPInstanceUID = first.StudyInstanceUID
    study.RTReferencedSeriesSequence = DicomSequence([series])
    frame = Dataset()
    frame.FrameOfReferenceUID = frame_uid
    frame.RTReferencedStudySequence = DicomSequence([study])
    ds.ReferencedFrameOfReferenceSequence = DicomSequence([frame])
    ds.StructureSetROISequence = DicomSequence()
    ds.ROIContourSequence = DicomSequence()
    ds.RTROIObservationsSequence = DicomSequence()
    return ds
