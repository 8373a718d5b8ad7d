"""Store benchmark (issue 2): open, refresh, reads and writes at N images, every write fsynced.

Usage:
    .venv/bin/python bench/bench_store.py --n 1000 10000 [--ml-python PYTHON]

With ``--ml-python`` the same measurements run against MONAI Label 0.8.5 (``bench/ml_reference.py``
in that interpreter) on an identical store, and the table shows the ratio. The interpreter comes
from the cached venv the tests use, built on first use::

    .venv/bin/python bench/bench_store.py --n 1000 10000 \
        --ml-python "$(.venv/bin/python tests/realenv.py monailabel)"
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from medstore.datastore import LocalDatastore

# A valid 2x2x2 uint8 NIfTI-1, gzipped once and written N times (tiny files, as the issue asks).
_HEADER_SIZE = 352


def tiny_nifti_bytes() -> bytes:
    """A minimal 2x2x2 uint8 NIfTI-1 image, gzipped."""
    import nibabel as nib
    import numpy as np

    img = nib.Nifti1Image(np.zeros((2, 2, 2), np.uint8), np.eye(4))
    return gzip.compress(img.to_bytes(), mtime=0)


def build_store(root: Path, n: int) -> Path:
    """N tiny images, half of them labelled under labels/final; no manifest."""
    data = tiny_nifti_bytes()
    (root / "labels" / "final").mkdir(parents=True)
    (root / "labels" / "original").mkdir(parents=True)
    for i in range(n):
        (root / f"img_{i:06d}.nii.gz").write_bytes(data)
        if i % 2 == 0:
            (root / "labels" / "final" / f"img_{i:06d}.nii.gz").write_bytes(data)
    (root / "_src.nii.gz").write_bytes(data)
    return root


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def measure_medstore(root: Path, n: int, reps: int) -> dict[str, float]:
    src = str(root.parent / "src.nii.gz")
    Path(src).write_bytes(tiny_nifti_bytes())
    out: dict[str, float] = {}
    out["open_no_manifest"] = timed(lambda: LocalDatastore(str(root)))
    store_box: list[LocalDatastore] = []
    out["open_with_manifest"] = timed(lambda: store_box.append(LocalDatastore(str(root))))
    store = store_box[0]
    out["refresh_nothing_changed"] = timed(store.refresh)
    out["datalist"] = timed(store.datalist)
    out["status"] = timed(store.status)
    saves = [
        timed(lambda i=i: store.save_label(f"img_{i:06d}", src, "final", {}))
        for i in range(1, 2 * reps, 2)
    ]
    out["save_label_p50"] = statistics.median(saves)
    out["save_label_p99"] = percentile(saves, 0.99)
    out["update_image_info_p50"] = statistics.median(
        [timed(lambda i=i: store.update_image_info(f"img_{i:06d}", {"k": i})) for i in range(reps)]
    )
    out["add_image_p50"] = statistics.median(
        [timed(lambda i=i: store.add_image(f"new_{i:06d}", src, {})) for i in range(reps)]
    )
    out["remove_label_p50"] = statistics.median(
        [
            timed(lambda i=i: store.remove_label(f"img_{i:06d}", "final"))
            for i in range(0, 2 * reps, 2)
        ]
    )
    bulk_dir = root.parent / "bulk"
    bulk_dir.mkdir()
    data = tiny_nifti_bytes()
    paths = []
    for i in range(n):
        p = bulk_dir / f"bulk_{i:06d}.nii.gz"
        p.write_bytes(data)
        paths.append(str(p))
    fresh = LocalDatastore(str(root.parent / "bulk_store"))
    out["add_images_bulk_N"] = timed(lambda: fresh.add_images(paths))
    return out


def measure_monailabel(python: str, root: Path, n: int, reps: int) -> dict[str, float]:
    script = Path(__file__).with_name("ml_reference.py")
    result = subprocess.run(
        [python, str(script), "--root", str(root), "--n", str(n), "--reps", str(reps)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


ROWS = [
    ("open_no_manifest", "open, no manifest"),
    ("open_with_manifest", "open, with manifest"),
    ("refresh_nothing_changed", "refresh, nothing changed"),
    ("datalist", "datalist()"),
    ("status", "status()"),
    ("save_label_p50", "save_label p50"),
    ("save_label_p99", "save_label p99"),
    ("update_image_info_p50", "update_image_info p50"),
    ("add_image_p50", "add_image p50"),
    ("remove_label_p50", "remove_label p50"),
    ("add_images_bulk_N", "add_images(N) in one call"),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--reps", type=int, default=50, help="repetitions of each write")
    parser.add_argument(
        "--ml-python",
        help="python with monailabel==0.8.5 (`.venv/bin/python tests/realenv.py monailabel`)",
    )
    parser.add_argument("--ml-reps", type=int, default=5)
    args = parser.parse_args(argv)
    for n in args.n:
        with tempfile.TemporaryDirectory(prefix="bench_store_") as tmp:
            root = build_store(Path(tmp) / "ours" / "store", n)
            ours = measure_medstore(root, n, args.reps)
            theirs: dict[str, float] = {}
            if args.ml_python:
                ml_root = build_store(Path(tmp) / "ml" / "store", n)
                theirs = measure_monailabel(args.ml_python, ml_root, n, args.ml_reps)
                shutil.rmtree(ml_root, ignore_errors=True)
        print(f"\n### N = {n:,}\n")
        print("| operation | medstore | MONAI Label 0.8.5 | speed-up |")
        print("|---|---:|---:|---:|")
        for key, label in ROWS:
            mine = ours.get(key)
            ref = theirs.get(key)
            ratio = f"{ref / mine:,.0f}x" if (ref and mine) else "—"
            ref_s = f"{ref * 1e3:,.1f} ms" if ref else "—"
            print(f"| {label} | {mine * 1e3:,.1f} ms | {ref_s} | {ratio} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
