"""The one DICOM factory of the tests: CT series folders and Enhanced CT multi-frame files."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

__all__ = ["make_dicom_series", "make_enhanced_multiframe", "pydicom_data_dir"]

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
ENHANCED_CT = "1.2.840.10008.5.1.4.1.1.2.1"


def pydicom_data_dir() -> Path:
    """pydicom's installed test-file folder (found at test time, never copied)."""
    return Path(pydicom.__file__).parent / "data" / "test_files"


def _base_dataset(sop_class: str, series_uid: str, study_uid: str) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "CT"
    ds.PatientName = "Secret^Name"
    ds.PatientID = "PID-1"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    return ds


def make_dicom_series(
    folder: Path,
    volume: npt.NDArray[np.int16],
    *,
    spacing: tuple[float, float, float] = (2.0, 0.5, 0.75),
    origin: tuple[float, float, float] = (-10.0, -20.0, 30.0),
    iop: Sequence[float] = (1, 0, 0, 0, 1, 0),
    slope: float = 1.0,
    intercept: float = 0.0,
    names: Sequence[str] | None = None,
    series_uids: Sequence[str] | None = None,
    skip: Sequence[int] = (),
) -> Path:
    """Write ``volume`` (slice, row, column) as one CT file per slice.

    Slice ``k`` sits at ``origin + k * spacing[0] * normal`` (LPS); ``names`` default to a
    shuffled order so that file order is not slice order.
    """
    folder.mkdir(parents=True, exist_ok=True)
    n = volume.shape[0]
    rng = np.random.default_rng(7)
    names = list(names) if names is not None else [f"IM{int(i):04d}" for i in rng.permutation(n)]
    study = generate_uid()
    default_series = generate_uid()
    row_dir, col_dir = np.asarray(iop[:3], float), np.asarray(iop[3:], float)
    normal = np.cross(row_dir, col_dir)
    for k in range(n):
        if k in skip:
            continue
        series = series_uids[k] if series_uids is not None else default_series
        ds = _base_dataset(CT_IMAGE, series, study)
        ds.InstanceNumber = k + 1
        ds.Rows, ds.Columns = volume.shape[1], volume.shape[2]
        ds.PixelSpacing = [spacing[1], spacing[2]]
        ds.SliceThickness = 99.0  # deliberately wrong: spacing must come from positions
        ds.ImageOrientationPatient = [float(v) for v in iop]
        pos = np.asarray(origin) + k * spacing[0] * normal
        ds.ImagePositionPatient = [round(float(v), 6) for v in pos]
        ds.RescaleSlope = slope
        ds.RescaleIntercept = intercept
        ds.PixelData = np.ascontiguousarray(volume[k], dtype="<i2").tobytes()
        ds.save_as(folder / names[k], enforce_file_format=True)
    return folder


def make_enhanced_multiframe(
    path: Path,
    volume: npt.NDArray[np.int16],
    *,
    spacing: tuple[float, float, float] = (3.0, 0.8, 0.8),
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0),
    frame_order: Sequence[int] | None = None,
    slopes: Sequence[float] | None = None,
) -> Path:
    """Write an Enhanced CT multi-frame file; frame ``f`` holds slice ``frame_order[f]``.

    Per-frame groups carry the plane position and (optionally) a per-frame rescale slope;
    orientation and pixel measures are shared.
    """
    n = volume.shape[0]
    order = list(frame_order) if frame_order is not None else list(range(n))
    ds = _base_dataset(ENHANCED_CT, generate_uid(), generate_uid())
    ds.NumberOfFrames = n
    ds.Rows, ds.Columns = volume.shape[1], volume.shape[2]
    shared = Dataset()
    orient = Dataset()
    orient.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    measures = Dataset()
    measures.PixelSpacing = [spacing[1], spacing[2]]
    measures.SliceThickness = spacing[0]
    shared.PlaneOrientationSequence = [orient]
    shared.PixelMeasuresSequence = [measures]
    ds.SharedFunctionalGroupsSequence = [shared]
    groups = []
    for f, k in enumerate(order):
        fg = Dataset()
        pos = Dataset()
        pos.ImagePositionPatient = [origin[0], origin[1], origin[2] + k * spacing[0]]
        fg.PlanePositionSequence = [pos]
        if slopes is not None:
            pv = Dataset()
            pv.RescaleSlope = slopes[f]
            pv.RescaleIntercept = 0.0
            pv.RescaleType = "HU"
            fg.PixelValueTransformationSequence = [pv]
        groups.append(fg)
    ds.PerFrameFunctionalGroupsSequence = groups
    frames = np.stack([volume[k] for k in order]).astype("<i2")
    ds.PixelData = frames.tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path
