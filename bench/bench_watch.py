"""Watcher backlog benchmark (issue 6 item 4): saves on a large store with ``auto_reload=True``.

Usage:
    .venv/bin/python bench/bench_watch.py --n 10000 --saves 100

Builds N tiny NIfTI images, opens the store with ``auto_reload=True``, calls ``save_label`` S
times, and reports how long the background watcher needs after the last save until it is idle
(MONAI Label 0.8.5 refreshes the whole store per event: about 127 s for this case).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_store import build_store, tiny_nifti_bytes
from medstore.datastore import LocalDatastore


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--saves", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_watch_") as tmp:
        root = build_store(Path(tmp) / "store", args.n)
        LocalDatastore(root).close()
        label = Path(tmp) / "label.nii.gz"
        label.write_bytes(tiny_nifti_bytes())
        with LocalDatastore(root, auto_reload=True) as store:
            watcher = store.watcher
            assert watcher is not None
            watcher.wait_idle(timeout=60)
            before = watcher.refreshes
            times = []
            for i in range(1, 2 * args.saves, 2):
                start = time.perf_counter()
                store.save_label(f"img_{i:06d}", label, "final", {})
                times.append(time.perf_counter() - start)
            last = time.perf_counter()
            idle = watcher.wait_idle(timeout=300)
            backlog = time.perf_counter() - last
            refreshes = watcher.refreshes - before
    print("| N | saves | save_label p50 | background done after last save | refreshes | idle |")
    print("|---:|---:|---:|---:|---:|---|")
    print(
        f"| {args.n:,} | {args.saves} | {statistics.median(times) * 1e3:.1f} ms | "
        f"{backlog:.2f} s | {refreshes} | {idle} |"
    )
    return 0 if idle else 1


if __name__ == "__main__":
    raise SystemExit(main())
