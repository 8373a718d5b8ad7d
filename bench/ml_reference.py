"""MONAI Label 0.8.5's LocalDatastore measured like bench_store.py measures medstore.

Run with the python of a separate venv that has ``monailabel==0.8.5`` (it imports nothing from
medstore); ``bench/bench_store.py --ml-python PYTHON`` calls it and prints both side by side::

    /opt/mlvenv/bin/python bench/ml_reference.py --root DIR --n N --reps R

``DIR`` must already hold N tiny images (half labelled in labels/final) and no manifest, built
by bench_store.build_store. Prints one JSON line of seconds per operation.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import time
from collections.abc import Callable
from pathlib import Path


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--root", required=True, type=Path)
    parser.add_argument("--n", required=True, type=int)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()

    from monailabel.datastore.local import LocalDatastore

    root: Path = args.root
    src = root.parent / "ml_src.nii.gz"
    shutil.copy(root / "img_000000.nii.gz", src)
    out: dict[str, float] = {}
    out["open_no_manifest"] = timed(lambda: LocalDatastore(str(root)))
    box: list[LocalDatastore] = []
    out["open_with_manifest"] = timed(lambda: box.append(LocalDatastore(str(root))))
    store = box[0]
    out["refresh_nothing_changed"] = timed(store.refresh)
    out["datalist"] = timed(store.datalist)
    out["status"] = timed(store.status)
    odd = range(1, 2 * args.reps, 2)
    saves = [
        timed(lambda i=i: store.save_label(f"img_{i:06d}", str(src), "final", {})) for i in odd
    ]
    out["save_label_p50"] = statistics.median(saves)
    out["save_label_p99"] = max(saves)
    out["update_image_info_p50"] = statistics.median(
        [
            timed(lambda i=i: store.update_image_info(f"img_{i:06d}", {"k": i}))
            for i in range(args.reps)
        ]
    )
    out["add_image_p50"] = statistics.median(
        [timed(lambda i=i: store.add_image(f"new_{i:06d}", str(src), {})) for i in range(args.reps)]
    )
    out["remove_label_p50"] = statistics.median(
        [
            timed(lambda i=i: store.remove_label(f"img_{i:06d}", "final"))
            for i in range(0, 2 * args.reps, 2)
        ]
    )
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
