"""nnU-Net v2's own patch loading, timed (run with the nnunetv2 venv's python, not medstore's).

``python bench/nnunet_loader.py OUT --cases cases.json --patch 128 --batches 20 --workers 2``

1. (once, not timed) writes each case the way nnU-Net's ``DefaultPreprocessor.run_case_save``
   stores a preprocessed case: float32 data, int16 seg, class locations from nnU-Net's own
   ``_sample_foreground_locations``, and ``nnUNetDatasetBlosc2.save_case`` with the chunk and
   block shapes of ``comp_blosc2_params`` for the patch size. The data is the CT z-scored (no
   resampling or cropping: the benchmark volumes are already at their target spacing);
2. times ``nnUNetDataLoader`` (batch size 2, 33% foreground oversampling, no transforms) behind
   ``NonDetMultiThreadedAugmenter`` with ``--workers`` processes, as nnU-Net's trainer runs it.

Prints one JSON line: patches per second, preprocessed bytes, and the preparation time.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import nibabel as nib
import numpy as np


def prepare(out: Path, cases: list[dict[str, str]], patch: tuple[int, int, int]) -> float:
    """Write the preprocessed cases nnU-Net's way (skipped when already there); seconds spent."""
    from nnunetv2.preprocessing.preprocessors.default_preprocessor import DefaultPreprocessor
    from nnunetv2.training.dataloading.nnunet_dataset import (
        comp_blosc2_params,
        nnUNetDatasetBlosc2,
    )

    start = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    for case in cases:
        target = out / case["id"]
        if (out / f"{case['id']}.pkl").exists():
            continue
        image = np.asarray(nib.load(case["image"]).dataobj, dtype=np.float32)
        label = np.asarray(nib.load(case["label"]).dataobj)
        data = ((image - image.mean()) / max(float(image.std()), 1e-6))[None].astype(np.float32)
        seg = label[None].astype(np.int16)
        classes = [int(v) for v in np.unique(seg) if v > 0]
        properties = {
            "class_locations": DefaultPreprocessor._sample_foreground_locations(seg, classes),
            "spacing": [1.0, 1.0, 1.0],
            "shape_before_cropping": data.shape[1:],
            "shape_after_cropping_and_before_resampling": data.shape[1:],
        }
        blocks, chunks = comp_blosc2_params(data.shape, patch, data.itemsize)
        blocks_seg, chunks_seg = comp_blosc2_params(seg.shape, patch, seg.itemsize)
        nnUNetDatasetBlosc2.save_case(
            data,
            seg,
            properties,
            str(target),
            chunks=chunks,
            blocks=blocks,
            chunks_seg=chunks_seg,
            blocks_seg=blocks_seg,
        )
    return time.perf_counter() - start


def measure(out: Path, patch: tuple[int, int, int], batches: int, workers: int) -> float:
    """Patches per second of nnU-Net's loader over the prepared cases."""
    from batchgenerators.dataloading.nondet_multi_threaded_augmenter import (
        NonDetMultiThreadedAugmenter,
    )
    from nnunetv2.training.dataloading.data_loader import nnUNetDataLoader
    from nnunetv2.training.dataloading.nnunet_dataset import nnUNetDatasetBlosc2
    from nnunetv2.utilities.label_handling.label_handling import LabelManager

    dataset = nnUNetDatasetBlosc2(str(out))
    labels = LabelManager({"background": 0, "liver": 1, "kidney": 2, "lesion": 3}, None)
    loader = nnUNetDataLoader(
        dataset, 2, patch, patch, labels, oversample_foreground_percent=0.33, transforms=None
    )
    augmenter = NonDetMultiThreadedAugmenter(
        loader,
        None,
        num_processes=workers,
        num_cached=6,
        seeds=None,
        pin_memory=False,
        wait_time=0.002,
    )
    try:
        for _ in range(2):  # workers started, first batches through
            next(augmenter)
        start = time.perf_counter()
        for _ in range(batches):
            batch = next(augmenter)
            assert tuple(batch["data"].shape[2:]) == patch
        return batches * 2 / (time.perf_counter() - start)
    finally:
        augmenter._finish()


def main() -> None:
    """Parse arguments, prepare, measure, print JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", type=Path)
    parser.add_argument("--cases", type=Path, required=True)
    parser.add_argument("--patch", type=int, default=128)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        os.environ.setdefault(name, str(args.out))
    patch = (args.patch,) * 3
    cases = json.loads(args.cases.read_text())
    prepare_s = prepare(args.out, cases, patch)
    rate = measure(args.out, patch, args.batches, args.workers)
    size = sum(p.stat().st_size for p in args.out.glob("*.b2nd"))
    print(json.dumps({"patches_per_s": rate, "bytes": size, "prepare_s": prepare_s}))


if __name__ == "__main__":
    main()
