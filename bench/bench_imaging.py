"""Benchmark: probe/read of a 512x512x300 int16 volume as .nii, .nii.gz and a DICOM series.

Each format's time is printed beside its floor measured in the same run: ``np.fromfile`` of the
voxel bytes (.nii), the faster of ``gzip.open().read()`` and ``gzip.decompress`` (.nii.gz), and
``pydicom.dcmread`` of every slice (series). Targets: read within 1.3x of the floor; probe of the
300-slice series under 0.5 s. Files are written to a temporary folder (page cache warm).

Usage:
    .venv/bin/python bench/bench_imaging.py [--slices 300] [--repeat 3]
"""

from __future__ import annotations

import argparse
import gc
import gzip
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pydicom
from medstore.datastore.imaging import probe_image, read_image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid


def phantom(slices: int, size: int = 512) -> np.ndarray:
    """A CT-like int16 volume (slice, row, column): body ellipse, organs, noise."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size - 0.5
    body = (xx / 0.42) ** 2 + (yy / 0.32) ** 2 < 1
    organ = ((xx - 0.1) / 0.1) ** 2 + (yy / 0.12) ** 2 < 1
    base = np.where(body, 40, -1000).astype(np.int16)
    base[organ] = 300
    vol = np.empty((slices, size, size), np.int16)
    for k in range(slices):
        vol[k] = base + rng.integers(-20, 20, size=(size, size), dtype=np.int16)
    return vol


def write_series(folder: Path, vol: np.ndarray) -> None:
    """One CT file per slice, explicit VR little endian."""
    folder.mkdir()
    study, series = generate_uid(), generate_uid()
    for k in range(vol.shape[0]):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = meta.MediaStorageSOPClassUID
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.Modality = "CT"
        ds.PatientID = "BENCH"
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.InstanceNumber = k + 1
        ds.Rows, ds.Columns = vol.shape[1], vol.shape[2]
        ds.PixelSpacing = [0.7, 0.7]
        ds.SliceThickness = 1.0
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [-179.0, -179.0, -150.0 + k * 1.0]
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
        ds.PixelRepresentation = 1
        ds.RescaleSlope, ds.RescaleIntercept = 1, 0
        ds.PixelData = vol[k].tobytes()
        ds.save_as(folder / f"IM{k:05d}.dcm", enforce_file_format=True)


def timeit(fn: Callable[[], Any], repeat: int) -> float:
    """Median wall time of ``fn`` (its result is dropped before the next run)."""
    times = []
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
        del result
    return statistics.median(times)


def _floor_gzip(path: Path) -> bytes:
    with gzip.open(path) as fh:
        return fh.read()


def main() -> None:
    """Write the three files, time floors, probes and reads, print a markdown table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    vol = phantom(args.slices)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        xyz = np.ascontiguousarray(vol.transpose(2, 1, 0))  # (column, row, slice) = NIfTI (i, j, k)
        aff = np.diag([-0.7, -0.7, 1.0, 1.0])
        nib.save(nib.Nifti1Image(xyz, aff), root / "v.nii")
        nib.save(nib.Nifti1Image(xyz, aff), root / "v.nii.gz")
        write_series(root / "series", vol)
        files = sorted((root / "series").iterdir())
        for f in [root / "v.nii", root / "v.nii.gz", *files]:
            f.read_bytes()  # warm the page cache
        offset = int(nib.load(root / "v.nii").dataobj.offset)
        r = args.repeat
        floors = {
            ".nii": timeit(
                lambda: np.fromfile(root / "v.nii", np.int16, count=vol.size, offset=offset), r
            ),
            ".nii.gz": min(
                timeit(lambda: _floor_gzip(root / "v.nii.gz"), r),
                timeit(lambda: gzip.decompress((root / "v.nii.gz").read_bytes()), r),
            ),
            "DICOM series": timeit(lambda: [pydicom.dcmread(f) for f in files], r),
        }
        paths = {
            ".nii": root / "v.nii",
            ".nii.gz": root / "v.nii.gz",
            "DICOM series": root / "series",
        }
        check = read_image(paths["DICOM series"]).array[0]
        assert np.array_equal(check, vol), "series read mismatch"
        assert np.array_equal(read_image(paths[".nii"]).array[0], vol), "nii read mismatch"
        del check
        print(
            f"Volume 512x512x{args.slices} int16 ({vol.nbytes / 2**20:.0f} MiB), "
            f"median of {r}, page cache warm\n"
        )
        print("| format | probe (s) | read (s) | floor (s) | read / floor |")
        print("|---|---:|---:|---:|---:|")
        for name, path in paths.items():
            probe = timeit(lambda p=path: probe_image(p), r)
            read = timeit(lambda p=path: read_image(p), r)
            floor = floors[name]
            print(f"| {name} | {probe:.3f} | {read:.3f} | {floor:.3f} | {read / floor:.2f}x |")


if __name__ == "__main__":
    main()
