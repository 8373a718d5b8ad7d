"""MONAI Label 0.8.5's LocalDatastore measured like bench_store.py measures medstore.

Run with the python of a separate venv that has ``monailabel==0.8.5`` (it imports nothing from
medstore). ``tests/realenv.py monailabel`` builds that venv once (cached, torch's CPU build) and
prints its interpreter; ``bench/bench_store.py --ml-python PYTHON`` calls this script with it and
prints both side by side::

    ML_PYTHON="$(.venv/bin/python tests/realenv.py monailabel)"
    "$ML_PYTHON" bench/ml_reference.py --root DIR --n N --reps R

``DIR`` must already hold N tiny images (half labelled in labels/final) and no manifest, built
by bench_store.build_store, or be given ``--build`` to create them itself (same layout). Prints one
JSON line of seconds per operation.

``--lost-update`` instead measures MONAI Label's lost updates: 8 forked processes, each with its
own LocalDatastore on one fresh store of 800 images, do 100 ``save_label`` each on distinct
images. It prints one JSON line: saves acknowledged, labels in the manifest on disk afterwards,
label files present, and labels listed by a fresh LocalDatastore (whose start-up reconcile
re-adds label files it finds on disk)::

    "$ML_PYTHON" bench/ml_reference.py --root /tmp/mlref --n 1000 --build
    "$ML_PYTHON" bench/ml_reference.py --root /tmp/mllost --n 0 --lost-update
"""

from __future__ import annotations

import argparse
import gzip
import json
import multiprocessing
import shutil
import statistics
import time
from collections.abc import Callable
from functools import partial
from multiprocessing.synchronize import Barrier
from pathlib import Path

WRITERS, SAVES_EACH = 8, 100


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def tiny_nifti_bytes() -> bytes:
    """A 2x2x2 uint8 NIfTI, gzipped with mtime 0."""
    import nibabel as nib
    import numpy as np

    img = nib.Nifti1Image(np.zeros((2, 2, 2), np.uint8), np.eye(4))
    return gzip.compress(img.to_bytes(), mtime=0)


def build_store(root: Path, n: int, *, labelled_every: int = 2) -> None:
    """N tiny images; every ``labelled_every``-th one labelled in labels/final; no manifest."""
    data = tiny_nifti_bytes()
    (root / "labels" / "final").mkdir(parents=True, exist_ok=True)
    (root / "labels" / "original").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (root / f"img_{i:06d}.nii.gz").write_bytes(data)
        if labelled_every and i % labelled_every == 0:
            (root / "labels" / "final" / f"img_{i:06d}.nii.gz").write_bytes(data)


def _writer(root: str, src: str, worker: int, start: Barrier) -> None:
    from monailabel.datastore.local import LocalDatastore

    store = LocalDatastore(root)
    start.wait()
    for k in range(SAVES_EACH):
        store.save_label(f"img_{worker * SAVES_EACH + k:06d}", src, "final", {})


def lost_update(root: Path) -> dict[str, int]:
    """8 processes x 100 save_label on distinct images; count what survives."""
    from monailabel.datastore.local import LocalDatastore

    total = WRITERS * SAVES_EACH
    build_store(root, total, labelled_every=0)
    src = root.parent / "ml_lost_src.nii.gz"
    src.write_bytes(tiny_nifti_bytes())
    LocalDatastore(str(root))  # writes the initial manifest
    ctx = multiprocessing.get_context("fork")
    start = ctx.Barrier(WRITERS)
    procs = [
        ctx.Process(target=_writer, args=(str(root), str(src), w, start)) for w in range(WRITERS)
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join()
    acknowledged = total if all(p.exitcode == 0 for p in procs) else -1
    manifest = json.loads((root / "datastore_v2.json").read_text())
    in_manifest = sum("final" in obj["labels"] for obj in manifest["objects"].values())
    files = sum(1 for _ in (root / "labels" / "final").glob("*.nii.gz"))
    listed = len(LocalDatastore(str(root)).get_labeled_images())
    return {
        "writers": WRITERS,
        "saves_each": SAVES_EACH,
        "acknowledged": acknowledged,
        "labels_in_manifest_after": in_manifest,
        "label_files_present": files,
        "labels_listed_after_reopen": listed,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--root", required=True, type=Path)
    parser.add_argument("--n", required=True, type=int)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--build", action="store_true", help="create the N images in --root")
    parser.add_argument("--lost-update", action="store_true", help="measure lost updates only")
    args = parser.parse_args()

    from monailabel.datastore.local import LocalDatastore

    root: Path = args.root
    if args.lost_update:
        print(json.dumps(lost_update(root)))
        return 0
    if args.build:
        build_store(root, args.n)
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
    saves = [timed(partial(store.save_label, f"img_{i:06d}", str(src), "final", {})) for i in odd]
    out["save_label_p50"] = statistics.median(saves)
    out["save_label_p99"] = max(saves)
    out["update_image_info_p50"] = statistics.median(
        [
            timed(partial(store.update_image_info, f"img_{i:06d}", {"k": i}))
            for i in range(args.reps)
        ]
    )
    out["add_image_p50"] = statistics.median(
        [timed(partial(store.add_image, f"new_{i:06d}", str(src), {})) for i in range(args.reps)]
    )
    out["remove_label_p50"] = statistics.median(
        [
            timed(partial(store.remove_label, f"img_{i:06d}", "final"))
            for i in range(0, 2 * args.reps, 2)
        ]
    )
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
