"""The demo's training run: a small MONAI UNet learns the store's ``final`` labels on the CPU.

Data come from ``VolumeDataset`` with the store's persisted splits (created with a
seeded, patient-grouped 75/25 split and saved when the store has none). Volumes are windowed
(CT: [-200, 300] HU → [0, 1]), resampled to one voxel size and centre-padded to one grid;
validation Dice is measured on each case's own grid (logits resampled back), per class and as the
foreground mean. Everything is seeded, so two runs print the same numbers on the same machine.

Examples:
    >>> TrainConfig(epochs=2).grid
    (32, 32, 32)
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch
    from medstore.datastore import LocalDatastore

__all__ = ["EpochStats", "TrainConfig", "TrainResult", "demo_splits", "train_demo"]


@dataclass(frozen=True)
class TrainConfig:
    """Options of the demo training run.

    Args:
        epochs: Passes over the training part.
        spacing: Training voxel size (D, H, W) in mm; volumes are resampled to it.
        grid: Training grid (D, H, W), divisible by 4: resampled volumes are centre-padded or
            cropped to it.
        channels: UNet feature channels per level.
        strides: UNet down-sampling strides.
        learning_rate: Adam's learning rate.
        batch_size: Volumes per step.
        seed: Seed of the split (when one is created), initial weights and shuffling.
        threads: ``torch.set_num_threads``.
        window: Intensity window mapped to [0, 1] for CT (others: 0.5-99.5 percentiles).
        max_shift: Largest random translation (voxels per axis) of a training sample.
        progress: Show a tqdm progress bar (on stderr).
    """

    epochs: int = 200
    spacing: tuple[float, float, float] = (2.5, 1.6, 1.6)
    grid: tuple[int, int, int] = (32, 32, 32)
    channels: tuple[int, ...] = (8, 16, 32)
    strides: tuple[int, ...] = (2, 2)
    learning_rate: float = 5e-3
    batch_size: int = 2
    seed: int = 0
    threads: int = 2
    window: tuple[float, float] = (-200.0, 300.0)
    max_shift: int = 4
    progress: bool = True


@dataclass(frozen=True)
class EpochStats:
    """One epoch: mean training loss, validation Dice per class and their mean, seconds."""

    epoch: int
    loss: float
    dice: dict[str, float]
    mean_dice: float
    seconds: float


@dataclass
class TrainResult:
    """The run: per-epoch stats, the classes, and the validation case used for the preview.

    Attributes:
        history: One :class:`EpochStats` per epoch.
        classes: Class names, code ``i + 1`` each.
        train_ids: Training image ids.
        val_ids: Validation image ids.
        preview_case: ``(image_id, volume (D, H, W), spacing, reference, prediction)``.
        seconds: Wall time of the run.
    """

    history: list[EpochStats]
    classes: list[str]
    train_ids: list[str]
    val_ids: list[str]
    preview_case: tuple[str, np.ndarray, tuple[float, ...], np.ndarray, np.ndarray] | None = None
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


def demo_splits(store: LocalDatastore, *, seed: int = 0) -> tuple[Any, Any, str]:
    """Training and validation datasets from the store's persisted splits (made if absent).

    Args:
        store: A writable store (a new split is saved into it when it has none).
        seed: Seed of a new split.

    Returns:
        ``(train, val, how)``: two ``VolumeDataset`` parts and a sentence saying where they
        came from. ``train``/``val`` parts are used as they are; ``fold<k>`` parts give
        ``fold0`` as validation and the others as training.

    Raises:
        ValueError: The store has no labelled images, or its splits have no usable parts.
    """
    from medstore.datastore import SplitLog

    from .. import VolumeDataset

    ds = VolumeDataset(
        store,
        include_annotators=["final"],
        return_as_semantic_segmentation=True,
        semantic_seg_merge_strategy="union",
        include_unannotated=False,
    )
    if len(ds) < 2:
        raise ValueError(f"the demo needs at least 2 images with a 'final' label, found {len(ds)}")
    how = "persisted splits (.medstore/splits.jsonl)"
    if not SplitLog(store).assignments():
        created = ds.split(train=0.75, val=0.25, seed=seed, by_patient=True)
        created.save()
        how = f"a new seeded split (seed {seed}, grouped by patient), saved to the store"
    parts = ds.split(use_project_splits=True)
    if "train" in parts and ("val" in parts or "validation" in parts):
        return parts["train"], parts.get("val", parts.get("validation")), how
    folds = sorted(n for n in parts if n.startswith("fold"))
    if len(folds) >= 2:
        train = parts[folds[1]]
        for name in folds[2:]:
            train = train + parts[name]
        return train, parts[folds[0]], how + f"; validating on {folds[0]}"
    raise ValueError(f"the store's splits {sorted(parts)} have no train/val or fold parts")


def _centre_fit(x: torch.Tensor, grid: tuple[int, ...], fill: float) -> torch.Tensor:
    """Centre-pad (with ``fill``) or centre-crop the spatial axes of ``(C, ...)`` to ``grid``."""
    from torch.nn import functional

    for axis, want in enumerate(grid, start=1):
        have = x.shape[axis]
        if have > want:
            start = (have - want) // 2
            x = x.narrow(axis, start, want)
        elif have < want:
            before = (want - have) // 2
            pad = [0, 0] * (x.dim() - 1)
            pad[2 * (x.dim() - 1 - axis)] = before
            pad[2 * (x.dim() - 1 - axis) + 1] = want - have - before
            x = functional.pad(x, pad, value=fill)
    return x


def _uncentre_fit(x: torch.Tensor, size: tuple[int, ...], fill: torch.Tensor) -> torch.Tensor:
    """Undo :func:`_centre_fit`: back to ``size``; cropped-away voxels get logits ``fill``."""
    import torch

    out = fill.reshape(-1, *([1] * len(size))).expand(x.shape[0], *size).clone()
    src, dst = [slice(None)], [slice(None)]
    for have, want in zip(x.shape[1:], size, strict=True):
        if have >= want:
            start = (have - want) // 2
            src.append(slice(start, start + want))
            dst.append(slice(None))
        else:
            start = (want - have) // 2
            src.append(slice(None))
            dst.append(slice(start, start + have))
    out[tuple(dst)] = x[tuple(src)]
    return torch.as_tensor(out)


def _prepare(item: dict[str, Any], cfg: TrainConfig) -> dict[str, Any]:
    """Window, resample to the training spacing, fit the grid; keep native data for validation."""
    import torch
    from torch.nn import functional

    image = item["image"][0].float()  # (C, D, H, W)
    seg = item["segmentations"][0].float()  # (L + 1, D, H, W)
    modality = str(item["metainfo"]["modality"][0])
    if modality.upper() in ("CT", ""):
        lo, hi = cfg.window
    else:
        lo, hi = (float(v) for v in np.percentile(image.numpy(), [0.5, 99.5]))
    scaled = ((image - lo) / max(hi - lo, 1e-6)).clamp(0.0, 1.0)
    spacing = tuple(float(s) for s in item["metainfo"]["spacing"][0])
    size = tuple(
        max(1, round(n * s / t))
        for n, s, t in zip(image.shape[1:], spacing, cfg.spacing, strict=True)
    )
    resampled = functional.interpolate(
        scaled[None], size=size, mode="trilinear", align_corners=False
    )[0]
    seg_resampled = functional.interpolate(seg[None], size=size, mode="nearest-exact")[0]
    background = torch.zeros(seg.shape[0])
    background[0] = 1.0
    return {
        "id": item["metainfo"]["id"][0],
        "image": _centre_fit(resampled, cfg.grid, 0.0),
        "seg": _centre_fit(seg_resampled - background[:, None, None, None], cfg.grid, 0.0)
        + background[:, None, None, None],
        "size": size,
        "raw": image[0].numpy(),
        "native_codes": torch.argmax(seg, dim=0),
        "spacing": spacing,
    }


def _augment(
    images: torch.Tensor, targets: torch.Tensor, generator: torch.Generator, max_shift: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random translation (a circular shift of up to ``max_shift`` voxels per axis) and a small
    intensity scale and offset, the same shift for image and target."""
    import torch

    if max_shift <= 0:
        return images, targets
    shifts = torch.randint(-max_shift, max_shift + 1, (3,), generator=generator).tolist()
    dims = (2, 3, 4)
    images = torch.roll(images, shifts=shifts, dims=dims)
    targets = torch.roll(targets, shifts=shifts, dims=dims)
    scale = 1.0 + 0.1 * (torch.rand(1, generator=generator).item() - 0.5)
    offset = 0.05 * (torch.rand(1, generator=generator).item() - 0.5)
    return images * scale + offset, targets


def _load(ds: Any, cfg: TrainConfig) -> list[dict[str, Any]]:
    loader = ds.get_dataloader(batch_size=1, shuffle=False, num_workers=0)
    return [_prepare(batch, cfg) for batch in loader]


def _predict(model: Any, case: dict[str, Any]) -> torch.Tensor:
    """Class codes on the case's own grid."""
    import torch
    from torch.nn import functional

    with torch.no_grad():
        logits = model(case["image"][None])[0]
        fill = torch.zeros(logits.shape[0])
        fill[0] = 10.0  # voxels cropped away are background
        logits = _uncentre_fit(logits, case["size"], fill)
        native = functional.interpolate(
            logits[None],
            size=tuple(case["native_codes"].shape),
            mode="trilinear",
            align_corners=False,
        )
    return torch.argmax(native[0], dim=0)


def _dice(pred: torch.Tensor, ref: torch.Tensor, classes: int) -> list[float]:
    """Dice per foreground class (1.0 when a class is absent from both)."""
    out = []
    for c in range(1, classes + 1):
        p, r = pred == c, ref == c
        denom = int(p.sum()) + int(r.sum())
        out.append(1.0 if denom == 0 else 2.0 * int((p & r).sum()) / denom)
    return out


def train_demo(
    train_ds: Any,
    val_ds: Any,
    cfg: TrainConfig,
    *,
    report: Callable[[str], None] | None = None,
) -> TrainResult:
    """Train a small 3-D UNet on ``train_ds`` and validate on ``val_ds`` after every epoch.

    Args:
        train_ds: Training ``VolumeDataset`` (semantic, merged segmentations).
        val_ds: Validation ``VolumeDataset``.
        cfg: Options.
        report: Called with one line per epoch (default: ``tqdm.write``).

    Returns:
        The history and the first validation case with its prediction.
    """
    import torch
    from monai.losses import DiceCELoss
    from monai.networks.nets import UNet
    from tqdm import tqdm

    start = time.perf_counter()
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    classes = list(train_ds.segmentation_labels_set)
    train = _load(train_ds, cfg)
    val = _load(val_ds, cfg)
    in_channels = int(train[0]["image"].shape[0])
    model = UNet(
        spatial_dims=3,
        in_channels=in_channels,
        out_channels=len(classes) + 1,
        channels=cfg.channels,
        strides=cfg.strides,
        num_res_units=1,
    )
    loss_fn = DiceCELoss(softmax=True, include_background=False)
    optimiser = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate)
    generator = torch.Generator().manual_seed(cfg.seed)
    steps = -(-len(train) // cfg.batch_size)
    history: list[EpochStats] = []
    bar = tqdm(
        total=cfg.epochs * steps,
        desc="training",
        unit="step",
        file=sys.stderr,
        disable=not cfg.progress,
        leave=False,
    )
    say = report or tqdm.write
    for epoch in range(1, cfg.epochs + 1):
        t0 = time.perf_counter()
        model.train()
        order = torch.randperm(len(train), generator=generator).tolist()
        losses = []
        for s in range(steps):
            batch = [train[i] for i in order[s * cfg.batch_size : (s + 1) * cfg.batch_size]]
            images, targets = _augment(
                torch.stack([b["image"] for b in batch]),
                torch.stack([b["seg"] for b in batch]),
                generator,
                cfg.max_shift,
            )
            optimiser.zero_grad()
            loss = loss_fn(model(images), targets)
            loss.backward()
            optimiser.step()
            losses.append(float(loss.detach()))
            bar.update(1)
            bar.set_postfix(epoch=epoch, loss=f"{losses[-1]:.3f}")
        model.eval()
        scores = np.array([_dice(_predict(model, c), c["native_codes"], len(classes)) for c in val])
        per_class = {name: float(scores[:, i].mean()) for i, name in enumerate(classes)}
        stats = EpochStats(
            epoch, float(np.mean(losses)), per_class, float(scores.mean()), time.perf_counter() - t0
        )
        history.append(stats)
        detail = ", ".join(f"{k} {v:.3f}" for k, v in per_class.items())
        say(
            f"epoch {epoch:>3}/{cfg.epochs}  loss {stats.loss:.4f}  "
            f"val Dice {stats.mean_dice:.3f} ({detail})  {stats.seconds:.1f}s"
        )
    bar.close()
    case = val[0]
    prediction = _predict(model, case).numpy()
    preview = (
        str(case["id"]),
        case["raw"],
        case["spacing"],
        case["native_codes"].numpy(),
        prediction,
    )
    return TrainResult(
        history,
        classes,
        [str(c["id"]) for c in train],
        [str(c["id"]) for c in val],
        preview,
        time.perf_counter() - start,
    )
