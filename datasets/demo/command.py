"""``medstore demo``: on a temporary copy of ``sample_store/``, show the store, train, preview.

The store is copied (the original is never written), its status table and MONAI datalist are
printed, a ``VolumeDataset`` is split with the store's persisted splits (a seeded split is created
and saved in the copy when there are none), a small MONAI UNet is trained on the CPU with a
progress bar, loss and validation Dice are printed per epoch, and a PNG of a validation case with
the reference and the prediction outlined on three planes is written.

Examples:
    >>> sample_store_path().name
    'sample_store'
"""

from __future__ import annotations

import argparse
import getpass
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from medstore.datastore import LocalDatastore, atomic_write_bytes
from medstore.datastore.cli.store import format_status, status_summary

__all__ = ["copy_store", "register", "sample_store_path"]

_SHOWN = 5  # datalist entries printed
_MIN_LABELLED = 2  # one to train on, one to validate


def sample_store_path() -> Path:
    """Where the repository's ``sample_store/`` is: beside the ``datasets`` folder."""
    return Path(__file__).resolve().parents[2] / "sample_store"


def copy_store(source: Path, parent: Path) -> Path:
    """Copy a store folder (without its lock file) under ``parent``.

    Args:
        source: The store to copy.
        parent: An existing folder.

    Returns:
        The copy's path.

    Raises:
        FileNotFoundError: ``source`` is not a folder.
    """
    if not source.is_dir():
        raise FileNotFoundError(
            f"demo store {source} not found; pass a store folder: 'medstore demo PATH'"
        )
    target = parent / source.name
    shutil.copytree(source, target, symlinks=True, ignore=shutil.ignore_patterns(".lock"))
    return target


def _preview_folder() -> Path:
    """A new folder of this user's, for this run's preview (kept after the demo ends)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for the uid (containers)
        user = str(os.getuid()) if hasattr(os, "getuid") else "user"
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in user)
    return Path(tempfile.mkdtemp(prefix=f"medstore-demo-{safe}-"))


def _train_and_preview(demo: LocalDatastore, args: argparse.Namespace) -> Path:
    """Train on the demo store, print per-epoch lines, write the validation preview."""
    from medstore.datastore.preview import Overlay, PreviewOptions, png_bytes, render_planes

    from .training import TrainConfig, demo_splits, train_demo

    train, val, how = demo_splits(demo, seed=args.seed)
    ids = ", ".join(val.get_image_id(i) for i in range(len(val)))
    print(f"\nSplits: {how}: train {len(train)} image(s), val {len(val)} ({ids})")
    config = TrainConfig(epochs=args.epochs, seed=args.seed, progress=not args.no_progress)
    print(
        f"Training a MONAI UNet (3-D, channels {config.channels}) on the CPU for "
        f"{config.epochs} epoch(s), {config.threads} threads...",
        flush=True,
    )
    result = train_demo(train, val, config)
    best = max(result.history, key=lambda h: h.mean_dice)
    print(
        f"Done in {result.seconds:.1f} s; validation Dice (foreground mean) "
        f"{result.history[-1].mean_dice:.3f} after the last epoch, best {best.mean_dice:.3f} "
        f"(epoch {best.epoch})"
    )
    assert result.preview_case is not None
    image_id, volume, spacing, reference, prediction = result.preview_case
    picture = render_planes(
        volume,
        spacing,
        overlays=[
            Overlay(reference, f"{image_id}: reference (final)", "outline"),
            Overlay(prediction, f"{image_id}: prediction", "outline"),
        ],
        classes=dict(enumerate(result.classes, start=1)),
        modality=str(demo.get_image_info(image_id).get("modality") or "") or None,
        options=PreviewOptions(),
    )
    out = Path(args.out) if args.out else _preview_folder() / "preview.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out, png_bytes(picture), point="preview")
    return out


def run_demo(args: argparse.Namespace, store: None) -> int:
    """Copy the sample store, show its status, train a small UNet and write a preview PNG."""
    source = Path(args.source) if args.source else sample_store_path()
    workdir = Path(tempfile.mkdtemp(prefix="medstore-demo-"))
    try:
        copy = copy_store(source, workdir)
        print(f"Demo on a temporary copy of {source}\n")
        with LocalDatastore(copy, lock_timeout=args.lock_timeout) as demo:
            print(format_status(status_summary(demo)))
            datalist = demo.datalist(full_path=False)
            print(f"\nMONAI datalist (label tag 'final'): {len(datalist)} cases")
            for item in datalist[:_SHOWN]:
                print(f"  image: {item['image']:<32} label: {item['label']}")
            if len(datalist) > _SHOWN:
                print(f"  ... and {len(datalist) - _SHOWN} more")
            labelled = len(demo.get_labeled_images())
            if args.epochs > 0 and labelled < _MIN_LABELLED:
                print(
                    f"\nTraining skipped: it needs at least {_MIN_LABELLED} images with a "
                    f"'final' label, this store has {labelled}."
                )
            elif args.epochs > 0 and args.patches:
                from .patch_training import patch_demo

                patch_demo(demo, epochs=args.epochs, seed=args.seed)
            elif args.epochs > 0:
                path = _train_and_preview(demo, args)
                print(f"\nPreview of a validation case (reference and prediction): {path}")
        if args.keep:
            print(f"\nThe copy is kept at {copy}")
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


def register(subparsers: Any) -> None:
    """Add ``medstore demo`` to the parser.

    Args:
        subparsers: The object ``ArgumentParser.add_subparsers()`` returned.
    """
    p = subparsers.add_parser(
        "demo", help="train a small UNet on a copy of the sample store and preview a prediction"
    )
    p.add_argument(
        "source",
        nargs="?",
        metavar="STORE",
        help="the store to copy (default: the repository's sample_store/)",
    )
    p.add_argument("--epochs", type=int, default=200, help="training epochs (0: no training)")
    p.add_argument("--seed", type=int, default=0, help="seed of the split and the training")
    p.add_argument(
        "--out",
        metavar="FILE.png",
        help="where to write the preview (default: a new folder of yours under the temporary "
        "folder, printed at the end)",
    )
    p.add_argument(
        "--patches",
        action="store_true",
        help="train on random 3-D patches read from the chunked cache (no preview)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--keep", action="store_true", help="keep the temporary copy")
    p.set_defaults(handler=run_demo, store_mode="none", writes_no_store=True)
