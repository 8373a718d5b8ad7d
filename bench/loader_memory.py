"""Memory of a DataLoader epoch over a store's warm cache, measured from outside the process.

Each measurement runs in a fresh child process (``--child``), so no earlier work of the benchmark
(open memory maps, allocator state) leaks into it. The child runs one epoch like a training loop:
it reads every batch and spends ``--step`` seconds on it, so the workers run ahead and their
batches wait in the queue. The parent samples the child and its DataLoader workers every few
milliseconds and keeps the peak of the *instantaneous* footprint:

- the PSS (proportional set size, ``/proc/<pid>/smaps_rollup``) of every process without its
  shared-memory part, so pages several processes map (libraries, the decode-once cache files)
  count once;
- plus the machine's shared memory (``Shmem`` in ``/proc/meminfo``) above what it was before the
  child started: every batch on its way through shared memory, whether a worker still maps it,
  it waits in the queue mapped by nobody, or the main process holds it. This figure is
  machine-wide: run on an otherwise idle machine.

RSS summed over the processes is reported as ``top`` would add it up (shared pages counted in
every process), and, per worker, the PSS of its anonymous and shared-memory pages.

What the volumes cost is the difference from the same measurement on a store of as many tiny
volumes: the same code runs in the same processes, only the volume size differs.

Usage: ``python bench/loader_memory.py STORE --workers 2`` prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

MIB = 1024 * 1024


def rollup(pid: int) -> dict[str, int]:
    """Read ``/proc/<pid>/smaps_rollup``.

    Args:
        pid: A process id.

    Returns:
        Its fields in bytes (``Rss``, ``Pss``, ``Pss_Anon``, ``Pss_Shmem``...).

    Raises:
        OSError: The process is gone.
    """
    fields: dict[str, int] = {}
    with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as handle:
        for line in handle:
            key, _, rest = line.partition(":")
            parts = rest.split()
            if len(parts) == 2 and parts[1] == "kB":
                fields[key] = int(parts[0]) * 1024
    return fields


def machine_shmem() -> int:
    """Bytes of shared memory (tmpfs, ``/dev/shm``, memfd) in use on the machine.

    Returns:
        ``Shmem`` of ``/proc/meminfo`` in bytes.
    """
    with open("/proc/meminfo", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("Shmem:"):
                return int(line.split()[1]) * 1024
    return 0


def sample_peaks(child: subprocess.Popen[bytes], period: float = 0.002) -> dict[str, float]:
    """Sample a child and its descendants until it exits.

    Args:
        child: The measured process, just started.
        period: Pause between samples (seconds).

    Returns:
        Peaks in MiB: ``total`` (PSS without shared memory, plus the machine's shared memory
        above its level at the start), ``total_rss`` and ``worker_anon_shmem`` (the largest
        per-worker PSS of anonymous and shared-memory pages); ``samples`` taken.
    """
    shmem_before = machine_shmem()
    proc = psutil.Process(child.pid)
    peak_total = peak_rss = 0
    worker_peak = 0
    samples = 0
    while child.poll() is None:
        private = rss = 0
        try:
            family = [proc, *proc.children(recursive=True)]
        except psutil.Error:
            break
        for member in family:
            try:
                fields = rollup(member.pid)
            except OSError:
                continue
            private += fields.get("Pss", 0) - fields.get("Pss_Shmem", 0)
            rss += fields.get("Rss", 0)
            if member.pid != child.pid:
                mine = fields.get("Pss_Anon", 0) + fields.get("Pss_Shmem", 0)
                worker_peak = max(worker_peak, mine)
        total = private + max(0, machine_shmem() - shmem_before)
        peak_total, peak_rss = max(peak_total, total), max(peak_rss, rss)
        samples += 1
        time.sleep(period)
    return {
        "total": peak_total / MIB,
        "total_rss": peak_rss / MIB,
        "worker_anon_shmem": worker_peak / MIB,
        "samples": samples,
    }


def measure(store: Path, workers: int, *, step: float = 0.05) -> dict[str, float]:
    """Run one epoch in a fresh child process and return its memory peaks.

    Args:
        store: The store folder (its cache already warm).
        workers: DataLoader workers.
        step: Seconds the child spends on each batch, like a training step.

    Returns:
        The peaks of :func:`sample_peaks` and the child's ``batches`` and ``seconds``.

    Raises:
        RuntimeError: The child process failed.
    """
    cmd = [sys.executable, __file__, str(store), "--workers", str(workers), "--step", str(step)]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        child = subprocess.Popen([*cmd, "--child"], stdout=out, stderr=err)
        peaks = sample_peaks(child)
        child.wait()
        out.seek(0)
        err.seek(0)
        if child.returncode != 0:
            tail = err.read()[-2000:].decode(errors="replace")
            raise RuntimeError(f"memory child failed ({child.returncode}): {tail}")
        report = json.loads(out.read().decode().strip().splitlines()[-1])
    return {**peaks, **report}


def _child(store: Path, workers: int, step: float) -> None:
    """The measured process: one DataLoader epoch, batch size 1, ``get_dataloader`` defaults."""
    from medstore.datasets import VolumeDataset

    dataset = VolumeDataset(store, return_segmentations=False)
    loader = dataset.get_dataloader(batch_size=1, num_workers=workers)
    start = time.perf_counter()
    batches = 0
    for batch in loader:
        batches += 1
        float(batch["image"].sum())  # a training step reads its batch...
        time.sleep(step)  # ...and takes a while, so the workers' batches wait in the queue
    print(json.dumps({"batches": batches, "seconds": time.perf_counter() - start}))


def main() -> None:
    """Command line: measure, or be the measured child."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("store", type=Path)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--step", type=float, default=0.05, help="seconds per training step")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.store, args.workers, args.step)
    else:
        print(json.dumps(measure(args.store, args.workers, step=args.step)))


if __name__ == "__main__":
    main()
