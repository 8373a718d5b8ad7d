"""Memory of a DataLoader epoch over a store's warm cache, measured from outside the process.

Each measurement runs in a fresh child process (``--child``), so no earlier work of the benchmark
(open memory maps, allocator state) leaks into it. The parent samples the child and its DataLoader
workers every few milliseconds from ``/proc/<pid>/smaps_rollup`` and keeps the peak of the
*instantaneous sum* over the processes:

- PSS (proportional set size) counts each shared page once across the processes, so the decode-
  once cache mapped by several workers, or a batch in shared memory seen by a worker and the main
  process, is not counted twice;
- RSS is reported as well, as ``top`` would add it up (shared pages counted in every process);
- per worker, the peak of anonymous plus shared-memory pages it holds privately: the copies of
  volumes a worker makes (page cache of the mapped cache files is excluded; it is shared).

What the volumes cost is the difference from the same measurement on a store of as many tiny
volumes: the same code runs in the same processes, only the volume size differs.

Usage: ``python bench/loader_memory.py STORE --workers 2`` prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import psutil

MIB = 1024 * 1024


def rollup(pid: int) -> dict[str, int]:
    """Fields of ``/proc/<pid>/smaps_rollup`` in bytes (``Rss``, ``Pss``, ``Anonymous``...)."""
    fields: dict[str, int] = {}
    with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as handle:
        for line in handle:
            key, _, rest = line.partition(":")
            parts = rest.split()
            if len(parts) == 2 and parts[1] == "kB":
                fields[key] = int(parts[0]) * 1024
    return fields


def worker_copies(pid: int) -> int:
    """Private bytes of anonymous and shared-memory (``/dev/shm``, ``memfd``) mappings of ``pid``.

    Pages inherited from the parent by ``fork`` and not written since are shared, not counted.
    """
    total = 0
    counting = False
    with open(f"/proc/{pid}/smaps", encoding="utf-8", errors="replace") as handle:
        for line in handle:
            head = line.split(maxsplit=6)
            if head and "-" in head[0] and not head[0].endswith(":"):
                name = head[5].strip() if len(head) > 5 else ""
                shared_memory = name.startswith(("/dev/shm/", "/memfd:"))
                counting = name in ("", "[heap]") or shared_memory
            elif counting and head and head[0] in ("Private_Clean:", "Private_Dirty:"):
                total += int(head[1]) * 1024
    return total


def sample_peaks(child: subprocess.Popen[str], period: float = 0.004) -> dict[str, float]:
    """Sample a child and its descendants until it exits; peaks in MiB."""
    proc = psutil.Process(child.pid)
    peak_pss = peak_rss = 0
    copies: dict[int, int] = {}
    while child.poll() is None:
        pss = rss = 0
        try:
            family = [proc, *proc.children(recursive=True)]
        except psutil.Error:
            break
        for member in family:
            try:
                fields = rollup(member.pid)
                if member.pid != child.pid:
                    copies[member.pid] = max(copies.get(member.pid, 0), worker_copies(member.pid))
            except OSError:
                continue
            pss += fields.get("Pss", 0)
            rss += fields.get("Rss", 0)
        peak_pss, peak_rss = max(peak_pss, pss), max(peak_rss, rss)
        time.sleep(period)
    return {
        "total_pss": peak_pss / MIB,
        "total_rss": peak_rss / MIB,
        "worker_copies": max(copies.values(), default=0) / MIB,
    }


def measure(store: Path, workers: int) -> dict[str, float]:
    """Run one epoch in a fresh child process and return its memory peaks (MiB).

    Args:
        store: The store folder (its cache already warm).
        workers: DataLoader workers.

    Returns:
        ``total_pss``, ``total_rss`` (peak sums over main + workers) and ``worker_copies`` (the
        largest per-worker peak of anonymous + shared-memory pages).

    Raises:
        RuntimeError: The child process failed.
    """
    cmd = [sys.executable, __file__, str(store), "--workers", str(workers), "--child"]
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peaks = sample_peaks(child)
    out, err = child.communicate()
    if child.returncode != 0:
        raise RuntimeError(f"memory child failed ({child.returncode}): {err[-2000:]}")
    return {**peaks, **json.loads(out.strip().splitlines()[-1])}


def _child(store: Path, workers: int) -> None:
    """The measured process: one DataLoader epoch, batch size 1, ``get_dataloader`` defaults."""
    from datasets import VolumeDataset

    dataset = VolumeDataset(store, return_segmentations=False)
    loader = dataset.get_dataloader(batch_size=1, num_workers=workers)
    start = time.perf_counter()
    batches = 0
    for batch in loader:
        batches += 1
        # A training step reads its batch (so its shared-memory pages count in this process's
        # PSS, as they would in training) and takes some time, so the workers run ahead.
        float(batch["image"].sum())
        time.sleep(0.005)
    print(json.dumps({"batches": batches, "seconds": time.perf_counter() - start}))


def main() -> None:
    """Command line: measure, or be the measured child."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("store", type=Path)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.store, args.workers)
    else:
        print(json.dumps(measure(args.store, args.workers)))


if __name__ == "__main__":
    main()
