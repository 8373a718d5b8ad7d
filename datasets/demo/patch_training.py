"""The demo's patch training: a small MONAI UNet learns the ``final`` labels from random patches.

``medstore demo --patches`` trains on ``VolumeDataset(...).patches(...)`` instead of whole
resampled volumes: fixed-size patches at the volumes' own voxel size, a third of them centred
on a labelled voxel, read from the chunked cache by two DataLoader workers and windowed
(CT: [-200, 300] HU → [0, 1]) per batch. Each epoch draws new positions (``set_epoch``); the
loss and the patches read per second are printed per epoch.

Examples:
    >>> PatchTrainConfig().patch
    (16, 32, 32)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["PatchEpoch", "PatchTrainConfig", "train_on_patches"]


@dataclass(frozen=True)
class PatchTrainConfig:
    """Options of a patch training run.

    Args:
        epochs: Passes over the patches.
        patch: Patch size (D, H, W) in voxels, each divisible by 4 (two UNet down-samplings).
        per_volume: Patches per volume and epoch.
        foreground: Fraction of patches centred on a labelled voxel.
        batch_size: Patches per step.
        workers: DataLoader worker processes.
        channels: UNet feature channels per level.
        learning_rate: Adam's learning rate.
        seed: Seed of the weights and of the patch positions.
        threads: ``torch.set_num_threads``.
        window: Intensity window mapped to [0, 1].
    """

    epochs: int = 2
    patch: tuple[int, int, int] = (16, 32, 32)
    per_volume: int = 4
    foreground: float = 0.33
    batch_size: int = 2
    workers: int = 2
    channels: tuple[int, ...] = (8, 16, 32)
    learning_rate: float = 5e-3
    seed: int = 0
    threads: int = 2
    window: tuple[float, float] = (-200.0, 300.0)


@dataclass(frozen=True)
class PatchEpoch:
    """One epoch: mean loss, steps, patches, seconds."""

    epoch: int
    loss: float
    steps: int
    patches: int
    seconds: float


def train_on_patches(
    dataset: Any, cfg: PatchTrainConfig, *, report: Callable[[str], None] = print
) -> list[PatchEpoch]:
    """Train a small 3-D UNet on patches of ``dataset``'s volumes; one line per epoch.

    Args:
        dataset: A ``VolumeDataset`` with semantic, merged segmentations.
        cfg: Options.
        report: Called with each epoch's line.

    Returns:
        The per-epoch figures.
    """
    import torch
    from monai.losses import DiceCELoss
    from monai.networks.nets import UNet

    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    classes = list(dataset.segmentation_labels_set)
    patches = dataset.patches(
        cfg.patch, per_volume=cfg.per_volume, foreground=cfg.foreground, seed=cfg.seed
    )
    loader = patches.get_dataloader(
        batch_size=cfg.batch_size,
        shuffle=True,
        num_workers=cfg.workers,
        persistent_workers=cfg.workers > 0,
        generator=torch.Generator().manual_seed(cfg.seed),
    )
    model = UNet(
        spatial_dims=3,
        in_channels=1,
        out_channels=len(classes) + 1,
        channels=cfg.channels,
        strides=(2,) * (len(cfg.channels) - 1),
        num_res_units=1,
    )
    loss_fn = DiceCELoss(softmax=True, include_background=False)
    optimiser = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate)
    lo, hi = cfg.window
    history: list[PatchEpoch] = []
    for epoch in range(1, cfg.epochs + 1):
        patches.set_epoch(epoch)
        start = time.perf_counter()
        losses: list[float] = []
        seen = 0
        model.train()
        for batch in loader:
            images = ((batch["image"] - lo) / (hi - lo)).clamp(0.0, 1.0)
            targets = batch["segmentations"].float()
            optimiser.zero_grad()
            loss = loss_fn(model(images), targets)
            loss.backward()
            optimiser.step()
            losses.append(float(loss.detach()))
            seen += int(images.shape[0])
        seconds = time.perf_counter() - start
        stats = PatchEpoch(epoch, sum(losses) / len(losses), len(losses), seen, seconds)
        history.append(stats)
        report(
            f"patch epoch {epoch:>3}/{cfg.epochs}  loss {stats.loss:.4f}  {stats.steps} steps of "
            f"{cfg.batch_size} x {'x'.join(map(str, cfg.patch))} patches  "
            f"{stats.patches / seconds:.1f} patches/s"
        )
    return history


def patch_demo(
    store: Any, *, epochs: int, seed: int, report: Callable[[str], None] = print
) -> list[PatchEpoch]:
    """``medstore demo --patches``: train on patches of the store's training part.

    Args:
        store: The (writable) demo store; its persisted splits are used or created.
        epochs: Training epochs.
        seed: Seed of the split, the weights and the patch positions.
        report: Called with each line to show.

    Returns:
        The per-epoch figures.
    """
    from .training import demo_splits

    train, _, how = demo_splits(store, seed=seed)
    cfg = PatchTrainConfig(epochs=epochs, seed=seed)
    report(f"\nSplits: {how}: training on patches of {len(train)} image(s)")
    report(
        f"Training a MONAI UNet (3-D) on the CPU on random {'x'.join(map(str, cfg.patch))} "
        f"patches ({cfg.per_volume} per volume and epoch, {cfg.foreground:.0%} centred on a "
        f"labelled voxel, {cfg.workers} DataLoader workers)..."
    )
    return train_on_patches(train, cfg, report=report)
