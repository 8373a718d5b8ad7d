"""``medstore import``, ``export`` (Decathlon, nnU-Net v2) and ``preview`` (a PNG of three planes).

Examples:
    >>> import argparse
    >>> parser = argparse.ArgumentParser()
    >>> register(parser.add_subparsers())
    >>> parser.parse_args(["export", "--format", "nnunet", "store", "out"]).format
    'nnunet'
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..errors import UnsupportedFormatError
from ..store.local import LocalDatastore
from .main import StoreOptions, open_store

__all__ = ["register", "run_export", "run_import", "run_preview"]

_FORMATS = ("decathlon", "nnunet")


def run_import(args: argparse.Namespace, store: None) -> int:
    """Import a Decathlon task or nnU-Net raw dataset into STORE (created if missing).

    Every problem of the folder is printed, one per line, and nothing is imported. An nnU-Net
    import is resumable: run again after an interruption, it completes what is missing (cases
    already in STORE with the same content are kept as they are), splits included.
    """
    from ..interop.decathlon import import_decathlon
    from ..interop.nnunet import import_nnunet

    if args.splits and args.format != "nnunet":
        raise UnsupportedFormatError("--splits applies to --format nnunet only")
    with LocalDatastore(
        args.target,
        extensions=StoreOptions.from_args(args).extensions,
        lock_timeout=args.lock_timeout,
    ) as target:
        try:
            if args.format == "decathlon":
                result: Any = import_decathlon(args.source, target, link=args.link)
            else:
                result = import_nnunet(args.source, target, link=args.link, splits_file=args.splits)
        except UnsupportedFormatError as err:
            print(f"medstore: error: {err}", file=sys.stderr)
            return 1
    how = "linked" if args.link else "copied"
    done = set(getattr(result, "already_present", ()))
    new = [c for c in result.cases if c.case_id not in done]
    print(
        f"imported {len(new)} image(s) ({how}), {sum(c.label is not None for c in new)} with a "
        f"'final' label, into {target.root}"
    )
    if done:
        print(f"{len(done)} case(s) already in the store with the same content: kept as they are")
    if result.label_info:
        names = ", ".join(f"{c['idx']}={c['name']}" for c in result.label_info)
        print(f"classes: {names}")
    if getattr(result, "assignments", None):
        folds = sorted(set(result.assignments.values()))
        kept = len(result.assignments) - result.splits_saved
        print(
            f"split assignments saved: {result.splits_saved} ({', '.join(folds)})"
            + (f", {kept} already saved" if kept else "")
        )
    return 0


def run_export(args: argparse.Namespace, store: None) -> int:
    """Export STORE as a Decathlon task or an nnU-Net raw dataset into OUT."""
    from ..interop.decathlon import export_decathlon
    from ..interop.nnunet import export_nnunet

    options = StoreOptions.from_args(args)
    options = StoreOptions(Path(args.source), options.lock_timeout, options.extensions, True)
    with open_store(options, mode="read") as source:
        if args.format == "decathlon":
            doc = export_decathlon(source, args.out, label_tag=args.tag, force=args.force)
        else:
            doc = export_nnunet(
                source,
                args.out,
                label_tag=args.tag,
                folds=args.folds,
                seed=args.seed,
                force=args.force,
            )
    total = doc["numTraining"] + doc.get("numTest", 0)
    print(f"exported {doc['numTraining']} training case(s) to {args.out} ({args.format})")
    if args.format == "nnunet":
        splits = Path(args.out) / "splits_final.json"
        print(f"splits_final.json: {'written' if splits.exists() else 'not written'}")
    elif total > doc["numTraining"]:
        print(f"{total - doc['numTraining']} unlabelled image(s) in imagesTs")
    return 0


def run_preview(args: argparse.Namespace, store: LocalDatastore) -> int:
    """Write a PNG of the three planes of image ID with its label and print its path."""
    from ..preview import PreviewOptions, preview_image

    path = preview_image(
        store,
        args.image_id,
        tag=args.tag,
        out=args.out,
        options=PreviewOptions(panel_px=args.size),
    )
    print(path)
    return 0


def register(subparsers: Any) -> None:
    """Add ``import``, ``export`` and ``preview`` to the parser.

    Args:
        subparsers: The object ``ArgumentParser.add_subparsers()`` returned.
    """
    p = subparsers.add_parser(
        "import",
        help="import a Decathlon task folder or an nnU-Net v2 raw dataset (all or nothing; "
        "an nnU-Net import run again after an interruption completes it)",
    )
    p.add_argument("--format", required=True, choices=_FORMATS)
    p.add_argument("source", metavar="SRC", help="the task / dataset folder")
    p.add_argument("target", metavar="STORE", help="the store (created if missing)")
    p.add_argument("--link", action="store_true", help="symlink images instead of copying them")
    p.add_argument(
        "--splits",
        metavar="FILE",
        help="nnU-Net splits_final.json (default: SRC/splits_final.json when present)",
    )
    p.set_defaults(handler=run_import, store_mode="none")

    p = subparsers.add_parser("export", help="export a store as a Decathlon or nnU-Net dataset")
    p.add_argument("--format", required=True, choices=_FORMATS)
    p.add_argument("source", metavar="STORE", help="the store")
    p.add_argument("out", metavar="OUT", help="the folder to write (empty or absent)")
    p.add_argument("--tag", default="final", help="label tag to export (default: final)")
    p.add_argument("--folds", type=int, default=5, help="nnU-Net folds without saved splits")
    p.add_argument("--seed", type=int, default=0, help="seed of those folds")
    p.add_argument("--force", action="store_true", help="write into a non-empty OUT")
    p.set_defaults(handler=run_export, store_mode="none")

    p = subparsers.add_parser("preview", help="PNG of axial, coronal and sagittal planes")
    p.add_argument("image_id", metavar="ID")
    p.add_argument("--tag", help="label tag (default: final, else the image's first tag)")
    p.add_argument("--out", metavar="FILE.png", help="where (default: ./<ID>-<TAG>-preview.png)")
    p.add_argument("--size", type=int, default=256, help="pixels of the longest plane extent")
    p.set_defaults(handler=run_preview, store_mode="read")
