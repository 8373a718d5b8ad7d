"""Benchmark the dataset classes: cold/warm slicing, the mmap floor, MONAI baselines, worker memory.

Run ``.venv/bin/python bench/bench_datasets.py`` (20 volumes of 256x256x128 int16 .nii.gz with
labels) or ``--small`` for a quick check. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import gc
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import psutil
import torch

from datasets import VolumeDataset
from datastore.imaging import read_image
from datastore.local import LocalDatastore

LABEL_INFO = [{"name": "organ", "idx": 1}, {"name": "lesion", "idx": 2}]


def make_store(root: Path, n: int, shape: tuple[int, int, int]) -> LocalDatastore:
    """Write ``n`` synthetic int16 CT-like volumes with two-class labels and index them."""
    rng = np.random.default_rng(0)
    x, y, z = np.meshgrid(*(np.linspace(-1, 1, s, dtype=np.float32) for s in shape), indexing="ij")
    radius = np.sqrt(x**2 + y**2 + z**2)
    (root / "labels" / "final").mkdir(parents=True, exist_ok=True)
    affine = np.diag([0.8, 0.8, 2.5, 1.0])
    for i in range(n):
        noise = rng.normal(0, 20, size=shape).astype(np.float32)
        image = (np.where(radius < 0.7, 40.0, -1000.0) + noise).astype(np.int16)
        label = (radius < 0.6).astype(np.uint8) + (radius < 0.15 + 0.01 * i).astype(np.uint8)
        nib.save(nib.Nifti1Image(image, affine), str(root / f"vol_{i:02d}.nii.gz"))
        nib.save(
            nib.Nifti1Image(label, affine), str(root / "labels" / "final" / f"vol_{i:02d}.nii.gz")
        )
    store = LocalDatastore(root)
    with store.batch():
        for image_id in store.list_images():
            store.update_label_info(image_id, "final", {"label_info": LABEL_INFO})
    return store


def timed(fn: Callable[[], Any]) -> float:
    """Wall seconds of one call."""
    gc.collect()
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def consume(items: Any) -> None:
    """Iterate to the end (a dataset, a DataLoader...)."""
    for _ in items:
        pass


def drop_page_cache_hint(paths: Iterable[Path]) -> None:
    """Ask the kernel to drop cached pages of ``paths`` (best effort; cold-ish reads)."""
    import os

    for path in paths:
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def smaps(pid: int) -> tuple[int, int]:
    """``(PSS, USS)`` bytes of a process from ``/proc/<pid>/smaps_rollup``."""
    pss = uss = 0
    with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as handle:
        for line in handle:
            key, _, rest = line.partition(":")
            if key == "Pss":
                pss = int(rest.split()[0]) * 1024
            elif key in ("Private_Clean", "Private_Dirty"):
                uss += int(rest.split()[0]) * 1024
    return pss, uss


class _NoImages(torch.utils.data.Dataset):
    """As many items as a dataset, each a one-element tensor: a worker's cost without images."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> dict:
        return {"image": torch.zeros(1)}

    def get_dataloader(self, **kwargs: Any) -> torch.utils.data.DataLoader:
        return torch.utils.data.DataLoader(self, **kwargs)


def loader_memory(ds: Any, workers: int) -> dict[str, float]:
    """Peak PSS/USS (MiB) of the main process and each worker over one DataLoader epoch."""
    me = psutil.Process()
    peaks: dict[int, tuple[int, int]] = {}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            for proc in [me, *me.children(recursive=True)]:
                try:
                    pss, uss = smaps(proc.pid)
                except OSError:
                    continue
                old = peaks.get(proc.pid, (0, 0))
                peaks[proc.pid] = (max(old[0], pss), max(old[1], uss))
            time.sleep(0.01)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    consume(ds.get_dataloader(batch_size=1, num_workers=workers))
    stop.set()
    thread.join()
    mib = 1024 * 1024
    workers_pids = [p for p in peaks if p != me.pid]
    return {
        "main_pss": peaks[me.pid][0] / mib,
        "worker_pss": sum(peaks[p][0] for p in workers_pids) / mib,
        "worker_uss": sum(peaks[p][1] for p in workers_pids) / mib,
        "n": len(workers_pids),
    }


def run(n: int, shape: tuple[int, int, int], seed_sample: int, keep: Path | None) -> None:
    """Build the store, run every measurement, print the table."""
    base = keep or Path(tempfile.mkdtemp(prefix="medstore-bench-"))
    root = base / "store"
    if root.exists():
        shutil.rmtree(root)
    t_make = timed(lambda: make_store(root, n, shape))
    store = LocalDatastore(root)
    rows: list[tuple[str, float, str]] = []
    images = [Path(store.get_image_uri(i)) for i in store.list_images()]

    # 1. cold slice() pass (empty cache) vs decoding the whole volume per requested slice
    drop_page_cache_hint(images)
    ds_cold = VolumeDataset(store, return_segmentations=False)
    ds_cold.cache.clear()
    holder: dict[str, Any] = {}

    def cold_pass() -> None:
        holder["sliced"] = VolumeDataset(store, return_segmentations=False).slice("axial")
        consume(holder["sliced"])

    t_cold = timed(cold_pass)
    n_slices = len(holder["sliced"])
    sample = images[: max(1, min(len(images), seed_sample))]
    t_seed_sample = timed(
        lambda: [np.asarray(read_image(str(p)).array[:, 0], np.float32) for p in sample]
    )
    t_seed = t_seed_sample / len(sample) * n_slices
    rows.append(("cold axial slice() pass (decode once + slices)", t_cold, f"{n_slices} slices"))
    rows.append(
        (
            "seed approach: decode whole volume per slice (extrapolated)",
            t_seed,
            f"{len(sample)} decodes timed; speed-up ×{t_seed / t_cold:.0f}",
        )
    )

    # 2. warm pass vs the mmap floor over the same slices
    t_warm = timed(lambda: consume(VolumeDataset(store, return_segmentations=False).slice(0)))
    floor_dir = base / "floor"
    floor_dir.mkdir(exist_ok=True)
    floor_files = []
    for path in images:
        target = floor_dir / (path.name.split(".")[0] + ".npy")
        np.save(target, np.asarray(read_image(str(path)).array[0]))
        floor_files.append((target, int(np.load(target, mmap_mode="r").shape[0])))

    def floor_pass() -> None:
        for p, depth in floor_files:
            for k in range(depth):
                np.array(np.load(p, mmap_mode="r")[k], dtype=np.float32)

    t_floor = timed(floor_pass)
    rows.append(
        ("warm axial slice() pass (image only)", t_warm, f"{t_warm / t_floor:.2f}× the floor")
    )
    rows.append(("floor: np.load(mmap)[k] → float32", t_floor, ""))
    with_labels = VolumeDataset(store)
    t_label_fill = timed(lambda: with_labels.prefetch(progress=False))  # decodes the labels
    t_warm_labels = timed(lambda: consume(with_labels.slice(0)))
    rows.append(
        (
            "warm axial slice() pass with instance segmentations",
            t_warm_labels,
            f"after prefetch() of the labels ({t_label_fill:.1f} s)",
        )
    )

    # 3. VolumeDataset warm epoch vs MONAI Dataset and warm PersistentDataset
    from monai.data import Dataset, PersistentDataset
    from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged, Orientationd

    volume_ds = VolumeDataset(store, return_segmentations=False)
    consume(volume_ds)  # warm-up epoch, like PersistentDataset's fill pass below
    t_vol = timed(lambda: consume(volume_ds))
    datalist = [{"image": str(p)} for p in images]
    transform = Compose(
        [
            LoadImaged(keys="image"),
            EnsureChannelFirstd(keys="image"),
            Orientationd(keys="image", axcodes="RAS"),
        ]
    )
    t_monai = timed(lambda: consume(Dataset(datalist, transform)))
    persistent = PersistentDataset(datalist, transform, cache_dir=base / "persistent")
    consume(persistent)  # fill
    t_persist = timed(lambda: consume(persistent))
    rows.append(("VolumeDataset warm epoch (image only)", t_vol, ""))
    rows.append(
        (
            "MONAI Dataset LoadImaged+EnsureChannelFirstd+Orientationd",
            t_monai,
            f"VolumeDataset ×{t_monai / t_vol:.1f} faster",
        )
    )
    rows.append(
        (
            "MONAI PersistentDataset, warm",
            t_persist,
            f"VolumeDataset ×{t_persist / t_vol:.2f} (≥1 = not slower)",
        )
    )

    # 4. memory of DataLoader epochs over the warm cache. A worker process costs memory before it
    # loads anything (interpreter, torch, copy-on-write pages): measure that with the same loader
    # over tiny items, and report what the volumes add beyond it.
    volume_mib = float(np.prod(shape)) * 4 / 2**20
    one = loader_memory(volume_ds, 1)
    two = loader_memory(volume_ds, 2)
    empty = _NoImages(len(volume_ds))
    base_one = loader_memory(empty, 1)
    base_two = loader_memory(empty, 2)
    # Shared pages are split between more processes when a worker is added, so per-process PSS
    # shifts around; the sum over main + workers is the footprint that really grew.
    def total(m: dict[str, float]) -> float:
        return m["main_pss"] + m["worker_pss"]

    extra = total(two) - total(one)
    idle_extra = total(base_two) - total(base_one)
    rows.append(
        (
            "1-worker epoch: peak PSS main / worker (MiB)",
            0.0,
            f"{one['main_pss']:.0f} / {one['worker_pss']:.0f} (USS {one['worker_uss']:.0f})",
        )
    )
    rows.append(
        (
            "2-worker epoch: peak PSS main / workers (MiB)",
            0.0,
            f"{two['main_pss']:.0f} / {two['worker_pss']:.0f} (USS {two['worker_uss']:.0f})",
        )
    )
    rows.append(
        (
            "extra worker: growth of total PSS, main + workers (MiB)",
            0.0,
            f"{extra:.0f}; an idle extra worker alone (same loader, tiny items): {idle_extra:.0f}",
        )
    )
    rows.append(
        (
            "extra worker: growth due to the volumes (MiB)",
            0.0,
            f"{extra - idle_extra:.0f} vs one float32 volume = {volume_mib:.1f} "
            f"(get_dataloader's default: one item in flight per worker)",
        )
    )

    print(f"\n{n} volumes {shape} int16 .nii.gz with labels; store built in {t_make:.1f} s\n")
    print("| measurement | seconds | note |")
    print("|---|---:|---|")
    for name, secs, note in rows:
        print(f"| {name} | {secs:.3f} | {note} |" if secs else f"| {name} | – | {note} |")
    if keep is None:
        shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    """Parse arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--small", action="store_true", help="4 volumes of 64x64x32")
    parser.add_argument("--volumes", type=int, default=None)
    parser.add_argument(
        "--seed-sample",
        type=int,
        default=3,
        help="whole-volume decodes timed for the seed approach",
    )
    parser.add_argument("--keep", type=Path, default=None, help="work folder to keep")
    args = parser.parse_args()
    shape = (64, 64, 32) if args.small else (256, 256, 128)
    n = args.volumes or (4 if args.small else 20)
    run(n, shape, args.seed_sample, args.keep)


if __name__ == "__main__":
    main()
