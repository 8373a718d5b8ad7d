"""Benchmark of annotation storage: 10,000 annotations on one image; 10 on each of 10,000 images.

Run: ``.venv/bin/python bench/bench_annotations.py [--images 10000] [--per-image 10]``.
Targets (2 cores): listing one image costs O(its annotations), whatever the store's size; the
10,000 x 10 import finishes in under a minute.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from medstore.datastore.annotations import (
    Annotation,
    AnnotationStore,
    BoxAnnotation,
    CategoryAnnotation,
    LineAnnotation,
)
from medstore.datastore.store.local import LocalDatastore


def _make_annotations(count: int, *, seed: int) -> list[Annotation]:
    rng = np.random.default_rng(seed)
    anns: list[Annotation] = []
    for i in range(count):
        x, y = float(i), float(rng.integers(0, 200))
        kind = i % 3
        if kind == 0:
            anns.append(
                BoxAnnotation.from_points(
                    [(x, y, 0), (x + 5, y + 7, 0)],
                    identifier="nodule",
                    frame_index=0,
                    created_by=f"reader-{i % 4}",
                )
            )
        elif kind == 1:
            anns.append(LineAnnotation.from_points((x, y), (x + 3, y + 4), identifier="diameter"))
        else:
            anns.append(CategoryAnnotation(identifier=f"finding-{seed}-{i}", value="benign"))
    return anns


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def _make_store(root: Path, n_images: int) -> LocalDatastore:
    src = root / "src"
    src.mkdir()
    tiny = src / "template.nii"
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 1), np.uint8), np.eye(4)), tiny)
    payload = tiny.read_bytes()
    paths = []
    for i in range(n_images):
        path = src / f"case_{i:05d}.nii"
        path.write_bytes(payload)
        paths.append((f"case_{i:05d}", path))
    store = LocalDatastore(root / "store", extensions=("*.nii",), lock_timeout=60.0)
    store.add_images(paths, info={"shape": [1, 4, 4]})
    return store


def main() -> None:
    """Run the benchmark and print a table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--per-image", type=int, default=10)
    parser.add_argument("--single", type=int, default=10_000)
    args = parser.parse_args()
    rows: list[tuple[str, float, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        seconds, store = _timed(lambda: _make_store(Path(tmp), args.images))
        rows.append((f"setup: {args.images} tiny images (not annotations)", seconds, ""))
        anns = AnnotationStore(store)

        big = _make_annotations(args.single, seed=1)
        seconds, _ = _timed(lambda: anns.add_many("case_00000", big))
        rows.append((f"add_many {args.single} annotations to one image", seconds, "1 write"))
        seconds, listed = _timed(lambda: anns.list("case_00000"))
        rows.append((f"list one image ({len(listed)} annotations)", seconds, ""))
        seconds, boxes = _timed(lambda: anns.list("case_00000", type="box"))
        rows.append((f"list one image, type=box ({len(boxes)})", seconds, ""))
        seconds, _ = _timed(lambda: anns.add_many("case_00000", big))
        rows.append(("re-import the same 10,000 (idempotent, no write)", seconds, ""))

        batches = [_make_annotations(args.per_image, seed=i) for i in range(1, args.images)]
        image_ids = [f"case_{i:05d}" for i in range(1, args.images)]

        def import_all() -> int:
            for image_id, batch in zip(image_ids, batches, strict=True):
                anns.add_many(image_id, batch)
            return len(image_ids) * args.per_image

        seconds, total = _timed(import_all)
        rate = f"{total / seconds:,.0f} ann/s" if seconds else ""
        rows.append((f"add_many {args.per_image} x {len(image_ids)} images", seconds, rate))
        second = {
            image_id: _make_annotations(args.per_image, seed=10**6 + n)
            for n, image_id in enumerate(image_ids)
        }
        seconds, _ = _timed(lambda: anns.add_bulk(second))
        rate = f"{total / seconds:,.0f} ann/s" if seconds else ""
        rows.append((f"add_bulk {args.per_image} more x {len(image_ids)} images", seconds, rate))
        seconds, small = _timed(lambda: anns.list(image_ids[-1]))
        rows.append((f"list one image ({len(small)}) in a {args.images}-image store", seconds, ""))

        def list_all() -> int:
            return sum(len(anns.list(i)) for i in image_ids)

        seconds, count = _timed(list_all)
        rows.append((f"list every image back ({count} annotations)", seconds, ""))
    width = max(len(r[0]) for r in rows)
    print(f"{'operation'.ljust(width)}  {'seconds':>9}  note")
    for name, seconds, note in rows:
        print(f"{name.ljust(width)}  {seconds:9.3f}  {note}")


if __name__ == "__main__":
    main()
