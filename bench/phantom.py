"""Synthetic CT phantoms with labels, written once as ``.nii.gz`` and reused between runs.

``phantom_ct(shape, seed)`` draws a torso: air (-1000 HU) around an elliptic body of soft tissue
(40 HU) with a fat rim (-100 HU), two lungs (-850 HU), a spine (700 HU), a liver (60 HU, label 1),
two kidneys (30 HU, label 2) and a lesion in the liver (90 HU, label 3); positions and sizes vary
with the seed; Gaussian noise of sigma = 20 HU on top; int16. ``phantom_store`` writes ``n`` of
them with nibabel at its default gzip level into a medstore store folder under
``~/.cache/medstore/bench`` and reuses it while the same ``n`` and shape are asked for.
"""

from __future__ import annotations

import os
from pathlib import Path

import nibabel as nib
import numpy as np
from medstore.datastore.store.local import LocalDatastore

LABEL_INFO = [
    {"name": "liver", "idx": 1},
    {"name": "kidney", "idx": 2},
    {"name": "lesion", "idx": 3},
]
SPACING = (0.8, 0.8, 1.5)
_SLAB = 16


def _ellipsoid(x: np.ndarray, y: np.ndarray, z: np.ndarray, c: tuple, r: tuple) -> np.ndarray:
    return ((x - c[0]) / r[0]) ** 2 + ((y - c[1]) / r[1]) ** 2 + ((z - c[2]) / r[2]) ** 2 < 1


def phantom_ct(shape: tuple[int, int, int], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """One phantom CT ``(X, Y, Z)`` int16 and its uint8 label (0 background, 1-3 organs).

    Args:
        shape: Voxels along x, y, z (file order).
        seed: Varies positions, sizes and the noise.

    Returns:
        ``(image, label)``.
    """
    rng = np.random.default_rng(seed)
    jitter = rng.uniform(-0.04, 0.04, size=8)
    image = np.empty(shape, np.int16)
    label = np.empty(shape, np.uint8)
    xs = np.linspace(-1, 1, shape[0], dtype=np.float32)[:, None, None]
    ys = np.linspace(-1, 1, shape[1], dtype=np.float32)[None, :, None]
    for start in range(0, shape[2], _SLAB):
        stop = min(shape[2], start + _SLAB)
        zs = np.linspace(-1, 1, shape[2], dtype=np.float32)[None, None, start:stop]
        hu = np.full((shape[0], shape[1], stop - start), -1000.0, np.float32)
        lab = np.zeros(hu.shape, np.uint8)
        body = (xs / 0.85) ** 2 + ((ys + 0.05) / 0.6) ** 2 < 1
        body = np.broadcast_to(body, hu.shape)
        hu[body] = -100.0
        inner = np.broadcast_to((xs / 0.8) ** 2 + ((ys + 0.05) / 0.55) ** 2 < 1, hu.shape)
        hu[inner] = 40.0
        for side in (-1, 1):
            lung = _ellipsoid(xs, ys, zs, (side * 0.4, -0.05, 0.6 + jitter[0]), (0.28, 0.35, 0.5))
            hu[lung] = -850.0
            kidney = _ellipsoid(
                xs, ys, zs, (side * 0.35, 0.25, -0.25 + jitter[1]), (0.09, 0.12, 0.18)
            )
            hu[kidney], lab[kidney] = 30.0, 2
        spine = np.broadcast_to((xs / 0.08) ** 2 + ((ys - 0.4) / 0.08) ** 2 < 1, hu.shape)
        hu[spine] = 700.0
        liver = _ellipsoid(
            xs, ys, zs, (-0.3 + jitter[2], 0.0, 0.05 + jitter[3]), (0.35, 0.3, 0.3 + jitter[4])
        )
        hu[liver], lab[liver] = 60.0, 1
        lesion = _ellipsoid(
            xs, ys, zs, (-0.35 + jitter[5], 0.02 + jitter[6], 0.1 + jitter[7]), (0.05,) * 3
        )
        hu[lesion], lab[lesion] = 90.0, 3
        hu += rng.normal(0.0, 20.0, size=hu.shape).astype(np.float32)
        image[:, :, start:stop] = np.clip(np.rint(hu), -1024, 3071).astype(np.int16)
        label[:, :, start:stop] = lab
    return image, label


def bench_folder() -> Path:
    """``$XDG_CACHE_HOME/medstore/bench`` or ``~/.cache/medstore/bench``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "medstore" / "bench"


def phantom_store(n: int, shape: tuple[int, int, int]) -> LocalDatastore:
    """A store of ``n`` phantoms of ``shape`` with ``final`` labels, generated once and reused.

    Args:
        n: Number of volumes.
        shape: Voxels along x, y, z.

    Returns:
        The store (its cache may be warm from an earlier run).
    """
    root = bench_folder() / f"phantoms-{n}x{'x'.join(map(str, shape))}"
    done = root / ".medstore-bench-complete"
    if not done.exists():
        (root / "labels" / "final").mkdir(parents=True, exist_ok=True)
        affine = np.diag([*SPACING, 1.0])
        for i in range(n):
            name = f"ct_{i:03d}.nii.gz"
            if (root / name).exists() and (root / "labels" / "final" / name).exists():
                continue
            image, label = phantom_ct(shape, seed=i)
            nib.save(nib.Nifti1Image(label, affine), str(root / "labels" / "final" / name))
            nib.save(nib.Nifti1Image(image, affine), str(root / name))
        store = LocalDatastore(root)
        with store.batch():
            for image_id in store.list_images():
                store.update_label_info(image_id, "final", {"label_info": LABEL_INFO})
        done.write_text("complete\n")
    return LocalDatastore(root)
