"""Benchmark patch training reads: cache size, patches/s vs nnU-Net v2 and MONAI, bytes touched.

``.venv/bin/python bench/bench_patches.py`` runs the issue's setting: 20 phantom CTs of
512 x 512 x 300 int16 with labels (``bench/phantom.py``; generated once under
``~/.cache/medstore/bench`` and reused), random 128^3 patches, 2 DataLoader workers, batch size 2,
a third of the patches centred on a labelled voxel, no augmentation anywhere. ``--n`` and
``--shape`` run it smaller. nnU-Net v2 runs in its own venv (``tests/realenv.py nnunetv2``;
``--nnunet-python`` names another interpreter, ``--nnunet-python ''`` skips it). Prints a
markdown table of figures and ratios with their targets.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from medstore.datasets import PatchDataset, VolumeDataset
from medstore.datasets.item.assembly import image_volume
from medstore.datasets.loading.chunked import ChunkedArray, compressed_nbytes
from medstore.datasets.loading.worker_memory import float32_tensor
from medstore.datastore.store.local import LocalDatastore
from phantom import bench_folder, phantom_store

Row = tuple[str, str, str]
"""(measurement, figure, target / note)."""


def timed(fn: Callable[[], Any]) -> float:
    """Wall seconds of one call."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def source_bytes(store: LocalDatastore) -> int:
    """Bytes of the ``.nii.gz`` images and labels."""
    total = 0
    for image_id in store.list_images():
        total += Path(store.get_image_uri(image_id)).stat().st_size
        total += Path(store.get_label_uri(image_id, "final")).stat().st_size
    return total


QUEUED_BATCHES = 6
"""Batches a loader may hold ready ahead of the consumer: nnU-Net's ``num_cached`` in
``bench/nnunet_loader.py``; medstore's DataLoader gets as many (``prefetch_factor`` per worker)."""


def patch_rate(patches: PatchDataset, batches: int, workers: int) -> float:
    """Patches per second through a DataLoader (batch size 2), after two warm-up batches."""
    extra: dict[str, Any] = {}
    if workers > 0:
        extra["prefetch_factor"] = max(1, QUEUED_BATCHES // workers)
    loader = patches.get_dataloader(
        batch_size=2, num_workers=workers, shuffle=True, persistent_workers=workers > 0, **extra
    )
    done, start = 0, 0.0
    while done < batches + 2:
        for batch in loader:
            assert tuple(batch["image"].shape[2:]) == patches.patch_options.size
            done += 1
            if done == 2:
                start = time.perf_counter()
            if done == batches + 2:
                break
    return batches * 2 / (time.perf_counter() - start)


def consume(items: Any) -> None:
    """Read every item, dropping each before the next."""
    for _ in items:
        pass


def bytes_touched(patches: PatchDataset, count: int) -> tuple[float, float]:
    """Mean compressed bytes of the chunks a patch overlaps, and of the patch compressed alone."""
    touched, own = [], []
    for index in range(min(count, len(patches))):
        origin, _ = patches.patch_origin(index)
        record, _ = patches.index.item(index)
        array = image_volume(patches.cache, record).array
        assert isinstance(array, ChunkedArray)
        size = patches.patch_options.size
        region = [slice(0, array.shape[0])]
        region += [
            slice(max(0, o), min(n, o + s))
            for o, s, n in zip(origin, size, array.shape[1:], strict=True)
        ]
        touched.append(array.chunk_bytes_touched(region))
        own.append(compressed_nbytes(array[tuple(region)]))
    return float(np.mean(touched)), float(np.mean(own))


def monai_rate(
    store: LocalDatastore, volumes: int, patch: int, batches: int, workers: int, work: Path
) -> tuple[float, float]:
    """MONAI PersistentDataset (fg/bg indices cached) + RandCropByPosNegLabeld: rate, fill s."""
    from monai.data import DataLoader, PersistentDataset
    from monai.transforms import (
        Compose,
        EnsureChannelFirstd,
        FgBgToIndicesd,
        LoadImaged,
        RandCropByPosNegLabeld,
    )

    ids = store.list_images()[:volumes]
    datalist = [
        {"image": store.get_image_uri(i), "label": store.get_label_uri(i, "final")} for i in ids
    ]
    transform = Compose(
        [
            LoadImaged(keys=["image", "label"]),
            EnsureChannelFirstd(keys=["image", "label"]),
            FgBgToIndicesd(keys="label"),
            RandCropByPosNegLabeld(
                keys=["image", "label"],
                label_key="label",
                spatial_size=(patch,) * 3,
                pos=1,
                neg=2,
                num_samples=1,
                fg_indices_key="label_fg_indices",
                bg_indices_key="label_bg_indices",
            ),
        ]
    )
    dataset = PersistentDataset(datalist, transform, cache_dir=work / "monai")
    fill = timed(lambda: [dataset[i] for i in range(len(dataset))])
    loader = DataLoader(
        dataset, batch_size=2, num_workers=workers, shuffle=True, persistent_workers=workers > 0
    )
    done, start = 0, 0.0
    while done < batches + 2:
        for _ in loader:
            done += 1
            if done == 2:
                start = time.perf_counter()
            if done == batches + 2:
                break
    return batches * 2 / (time.perf_counter() - start), fill


def nnunet_rate(
    python: str, store: LocalDatastore, patch: int, batches: int, workers: int, volumes: int
) -> dict[str, float]:
    """nnU-Net v2's loader over the first ``volumes`` images (``bench/nnunet_loader.py``)."""
    out = Path(str(store.root).rstrip("/") + f"-nnunet-{patch}-{volumes}")
    cases = [
        {
            "id": image_id,
            "image": store.get_image_uri(image_id),
            "label": store.get_label_uri(image_id, "final"),
        }
        for image_id in store.list_images()[:volumes]
    ]
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(cases, handle)
    script = Path(__file__).with_name("nnunet_loader.py")
    cmd = [python, str(script), str(out), "--cases", handle.name, "--patch", str(patch)]
    cmd += ["--batches", str(batches), "--workers", str(workers)]
    run = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=7200)
    Path(handle.name).unlink()
    if run.returncode != 0:
        raise RuntimeError(f"nnU-Net loader failed:\n{run.stderr[-3000:]}")
    result: dict[str, float] = json.loads(run.stdout.strip().splitlines()[-1])
    return result


def whole_volume_rows(store: LocalDatastore, volumes: int, work: Path) -> list[Row]:
    """Warm whole-volume epoch and slice pass: the cache (uncompressed copies) vs format-1 reads."""
    ids = store.list_images()[:volumes]
    ds = VolumeDataset(store, image_ids=ids, return_segmentations=False)
    ds.prefetch(progress=False)
    npys, entries = [], []
    for record in ds.index.image_records():  # the dataset's own cache keys
        array = image_volume(ds.cache, record).array
        assert isinstance(array, ChunkedArray)
        entries.append(array.path)
        target = work / f"{record.image_id}.npy"
        np.save(target, np.asarray(array))
        npys.append(target)

    def old_epoch() -> None:  # what a whole-volume item did before: mmap'd .npy -> float32
        for path in npys:
            float32_tensor(np.load(path, mmap_mode="r"), release_source=True)

    def new_epoch() -> None:  # each item dropped before the next, as old_epoch does
        for index in range(len(ds)):
            ds[index]

    def slice_floor() -> None:
        for path in npys:
            for k in range(np.load(path, mmap_mode="r").shape[1]):
                np.array(np.load(path, mmap_mode="r")[:, k], dtype=np.float32)

    made = sum(not p.with_suffix(".npy").exists() for p in entries)
    # The first epoch writes each entry's uncompressed copy (once; see datasets/loading/contiguous)
    t_first = timed(new_epoch)
    copy_bytes = sum(p.with_suffix(".npy").stat().st_size for p in entries)
    source = sum(Path(store.get_image_uri(i)).stat().st_size for i in ids)
    for fn in (new_epoch, old_epoch):  # warm the page cache
        fn()
    sliced = ds.slice("axial")
    news, olds, slices, floors = [], [], [], []
    for _ in range(5):  # interleaved, best of 5 each: the machine's load drifts between runs
        news.append(timed(new_epoch))
        olds.append(timed(old_epoch))
        slices.append(timed(lambda: consume(sliced)))
        floors.append(timed(slice_floor))
    t_new, t_old, t_slices, t_floor = min(news), min(olds), min(slices), min(floors)
    return [
        (
            "whole-volume warm epoch, the cache vs a bare mmap'd .npy → float32 (format 1)",
            f"{t_new:.2f} s vs {t_old:.2f} s = {t_new / t_old:.2f}×",
            f"≤ 1.0× ({'met' if t_new <= t_old else 'NOT met'}); {len(ids)} volumes, main process; "
            f"read from the entries' uncompressed copies ({copy_bytes / 2**20:.0f} MiB, "
            f"{copy_bytes / source:.2f}× these images' .nii.gz; {made} written by the first "
            f"epoch, {t_first:.1f} s)",
        ),
        (
            "warm axial slice pass vs the mmap floor",
            f"{t_slices:.2f} s vs {t_floor:.2f} s = {t_slices / t_floor:.2f}×",
            f"≤ 2× ({'met' if t_slices <= 2 * t_floor else 'NOT met'}); {len(sliced)} slices",
        ),
    ]


def run(args: argparse.Namespace) -> None:
    """Build or reuse the phantom store, run every measurement, print the table."""
    shape = tuple(args.shape)
    patch = args.patch
    t_make = timed(lambda: phantom_store(args.n, shape))
    store = phantom_store(args.n, shape)
    rows: list[Row] = []
    volumes = VolumeDataset(store)
    t_fill = timed(lambda: volumes.prefetch(progress=False))
    sources = source_bytes(store)
    cached = sum(p.stat().st_size for p in volumes.cache.folder.glob("*.b2nd"))
    raw = sum(image_volume(volumes.cache, r).array.nbytes for r in volumes.index.image_records())
    rows.append(
        (
            "cache size vs the .nii.gz sources (images + labels)",
            f"{cached / 2**20:.0f} MiB vs {sources / 2**20:.0f} MiB = {cached / sources:.2f}×",
            f"≤ 1.0× ({'met' if cached <= sources else 'NOT met'}); an uncompressed int16 "
            f"image cache alone: {raw / sources:.2f}×; fill {t_fill:.0f} s",
        )
    )
    patches = VolumeDataset(store).patches((patch,) * 3, per_volume=64, foreground=0.33, seed=0)
    patches.prefetch(progress=False)  # class locations, as nnU-Net's preprocessing stores them
    ours = patch_rate(patches, args.batches, args.workers)
    rows.append(
        (
            f"medstore patches/s ({patch}³, {args.workers} workers, batch 2)",
            f"{ours:.1f}",
            "image float32 + instance masks per patch",
        )
    )
    if args.nnunet_python:
        nn_volumes = min(args.n, args.nnunet_volumes)
        nn = nnunet_rate(args.nnunet_python, store, patch, args.batches, args.workers, nn_volumes)
        rate = nn["patches_per_s"]
        rows.append(
            (
                "nnU-Net v2 nnUNetDatasetBlosc2 + nnUNetDataLoader patches/s",
                f"{rate:.1f}; medstore {ours / rate:.2f}×",
                f"≥ 1.0× ({'met' if ours >= rate else 'NOT met'}); its preprocessed data: "
                f"{nn['bytes'] / 2**20:.0f} MiB (float32) for {nn_volumes} volumes, "
                f"prepared once in {nn['prepare_s']:.0f} s",
            )
        )
    work = Path(tempfile.mkdtemp(prefix="medstore-bench-patches-", dir=bench_folder()))
    try:
        monai, monai_fill = monai_rate(
            store, args.monai_volumes, patch, args.batches, args.workers, work
        )
        rows.append(
            (
                "MONAI PersistentDataset + FgBgToIndicesd + RandCropByPosNegLabeld patches/s",
                f"{monai:.2f}; medstore {ours / monai:.1f}×",
                f"≥ 10× ({'met' if ours >= 10 * monai else 'NOT met'}); on "
                f"{args.monai_volumes} volumes, cache filled in {monai_fill:.0f} s",
            )
        )
        touched, own = bytes_touched(patches, args.touch_samples)
        rows.append(
            (
                "compressed bytes of the chunks touched per patch vs the patch alone",
                f"{touched / 2**20:.2f} MiB vs {own / 2**20:.2f} MiB = {touched / own:.2f}×",
                f"≤ 2× ({'met' if touched <= 2 * own else 'NOT met'}); "
                f"{args.touch_samples} patches, from the chunk index",
            )
        )
        rows.extend(whole_volume_rows(store, args.whole_volumes, work))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"\n{args.n} phantom CTs {'x'.join(map(str, shape))} int16 .nii.gz with labels "
        f"(store ready in {t_make:.0f} s)\n"
    )
    print("| measurement | figure | target / note |")
    print("|---|---|---|")
    for name, figure, note in rows:
        print(f"| {name} | {figure} | {note} |")


def _nnunet_python() -> str:
    """The nnunetv2 venv's interpreter (built by tests/realenv.py when missing)."""
    realenv = Path(__file__).resolve().parents[1] / "tests" / "realenv.py"
    run = subprocess.run(
        [sys.executable, str(realenv), "nnunetv2"],
        capture_output=True,
        text=True,
        check=True,
        timeout=3600,
    )
    return run.stdout.strip().splitlines()[-1]


def main() -> None:
    """Parse arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=20, help="volumes")
    parser.add_argument("--shape", type=int, nargs=3, default=(512, 512, 300), help="voxels x y z")
    parser.add_argument("--patch", type=int, default=128)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batches", type=int, default=20, help="timed batches of 2 patches")
    parser.add_argument("--monai-volumes", type=int, default=2)
    parser.add_argument("--nnunet-volumes", type=int, default=20)
    parser.add_argument("--whole-volumes", type=int, default=4)
    parser.add_argument("--touch-samples", type=int, default=50)
    parser.add_argument(
        "--nnunet-python", default=None, help="nnunetv2 interpreter ('' skips nnU-Net)"
    )
    args = parser.parse_args()
    if args.nnunet_python is None:
        args.nnunet_python = _nnunet_python()
    run(args)


if __name__ == "__main__":
    main()
