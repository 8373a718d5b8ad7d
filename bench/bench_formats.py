"""Benchmark: NRRD read beside its floor, and how fast bad NRRD/SEG/RTSTRUCT input is refused.

The NRRD read of a 512x512x300 int16 volume (raw and gzip) is printed beside its floor measured
in the same run (``np.fromfile`` of the voxel bytes; ``gzip.decompress`` of the stream). Bad input
must be refused with ``ImageReadError`` before anything near the claimed size is allocated: an
NRRD claiming 128 GB, a gzip NRRD whose stream holds 1 GB of zeros where 1 MB is declared, a
detached data file outside the header's folder, a SEG of a series the store lacks, an RTSTRUCT
contour outside the image. Each time is the median of ``--repeat`` runs.

Usage:
    .venv/bin/python bench/bench_formats.py [--slices 300] [--repeat 3]
"""

from __future__ import annotations

import argparse
import gzip
import statistics
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nrrd
import numpy as np
import pydicom
from medstore.datastore import ImageReadError, LocalDatastore
from medstore.datastore.imaging import read_image
from medstore.datastore.interop.segmentations import export_segmentation, import_segmentation

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from support.dicom import make_dicom_series


def timed(fn: Callable[[], Any], repeat: int) -> float:
    """Median wall time of ``fn`` over ``repeat`` runs."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def refused(fn: Callable[[], Any]) -> Callable[[], None]:
    """``fn`` wrapped to require an ImageReadError."""

    def run() -> None:
        try:
            fn()
        except ImageReadError:
            return
        raise AssertionError("not refused")

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    d = Path(tempfile.mkdtemp())
    vol = np.random.default_rng(0).integers(-1000, 1000, (512, 512, args.slices), dtype=np.int16)
    for enc in ("raw", "gzip"):
        path = d / f"v_{enc}.nrrd"
        nrrd.write(str(path), vol, {"encoding": enc}, compression_level=1)
        offset = path.read_bytes().index(b"\n\n") + 2
        if enc == "raw":
            floor = timed(lambda p=path, o=offset: np.fromfile(p, np.int16, offset=o), args.repeat)
        else:
            stream = path.read_bytes()[offset:]
            floor = timed(lambda s=stream: zlib.decompress(s, 47), args.repeat)
        took = timed(lambda p=path: read_image(p), args.repeat)
        print(f"NRRD {enc:5s} read {took:.3f} s   floor {floor:.3f} s   ({took / floor:.2f}x)")
    bad = d / "huge.nrrd"
    bad.write_bytes(b"NRRD0004\ntype: short\ndimension: 3\nsizes: 4000 4000 4000\n\n" + bytes(64))
    bomb = d / "bomb.nrrd"
    head = b"NRRD0004\ntype: uint8\ndimension: 3\nsizes: 100 100 100\nencoding: gzip\n\n"
    bomb.write_bytes(head + gzip.compress(bytes(1 << 30), compresslevel=1))
    (d / "in").mkdir()
    (d / "secret.raw").write_bytes(bytes(8))
    (d / "in" / "x.nhdr").write_text(
        "NRRD0004\ntype: uint8\ndimension: 3\nsizes: 2 2 2\ndata file: ../secret.raw\n"
    )
    cases: dict[str, Callable[[], Any]] = {
        "NRRD claiming 128 GB": lambda: read_image(bad),
        "gzip NRRD, 1 GB stream for 1 MB declared": lambda: read_image(bomb),
        "detached data outside the folder": lambda: read_image(d / "in" / "x.nhdr"),
    }
    ct = np.zeros((40, 256, 256), np.int16)
    series = make_dicom_series(d / "ct", ct)
    other = make_dicom_series(d / "other", ct)
    for folder in (series, other):
        for f in folder.iterdir():
            ds = pydicom.dcmread(f)
            ds.FrameOfReferenceUID = "1.2.826.0.1.3680043.8.498.9"
            ds.save_as(f)
    with LocalDatastore(d / "s_other") as lacking:
        lacking.add_image("ct", other)
        label = np.zeros((40, 256, 256), np.uint8)
        label[10:20, 50:100, 50:100] = 1
        lacking.save_label("ct", label, "final")
        export_segmentation(lacking, "ct", "final", d / "seg.dcm")
        export_segmentation(lacking, "ct", "final", d / "rt.dcm", kind="RTSTRUCT")
    rt = pydicom.dcmread(d / "rt.dcm")
    item = rt.ROIContourSequence[0].ContourSequence[0]
    item.ContourData = [float(v) + 900.0 for v in item.ContourData]
    rt.save_as(d / "rt_out.dcm")
    store = LocalDatastore(d / "s")
    store.add_image("ct", series)
    store.add_image("other", other)
    cases["SEG of a series the store lacks"] = lambda: import_segmentation(
        LocalDatastore(d / "s_empty"), d / "seg.dcm"
    )
    cases["RTSTRUCT contour outside the image"] = lambda: import_segmentation(
        store, d / "rt_out.dcm"
    )
    for name, fn in cases.items():
        print(f"refused: {name:45s} {timed(refused(fn), args.repeat) * 1000:8.1f} ms")
    store.close()


if __name__ == "__main__":
    main()
