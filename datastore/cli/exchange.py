"""``medstore import``, ``export`` (Decathlon, nnU-Net v2, datalist) and ``preview`` (three planes).

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
from ..interop.export_options import ChannelChoice, ExportSelection
from ..store.local import LocalDatastore
from .arguments import image_tag_option, label_tag_option
from .main import StoreOptions, UsageError, open_store

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
        args.target or args.store,
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


def _selection(args: argparse.Namespace) -> ExportSelection:
    ids = tuple(i for chunk in args.ids or () for i in chunk.split(",") if i) or None
    return ExportSelection(ids=ids, image_tag=args.image_tag, split=args.split)


def _channels(args: argparse.Namespace) -> ChannelChoice:
    names = tuple(n.strip() for n in (args.channel_names or "").split(",") if n.strip())
    return ChannelChoice(modality=args.modality, channel_names=names)


def run_export(args: argparse.Namespace, store: None) -> int:
    """Export STORE (or a subset) as a Decathlon task, an nnU-Net raw dataset or a datalist."""
    from ..interop.datalist import export_datalist
    from ..interop.decathlon import export_decathlon
    from ..interop.nnunet import export_nnunet

    options = StoreOptions.from_args(args)
    path = Path(args.source) if args.source else options.path
    options = StoreOptions(path, options.lock_timeout, options.extensions, True)
    selection = _selection(args)
    with open_store(options, mode="read") as source:
        if args.format == "datalist":
            if args.modality or args.channel_names:
                raise UsageError("--modality/--channel-names do not apply to --format datalist")
            doc = export_datalist(
                source, args.out, label_tag=args.tag, selection=selection, force=args.force
            )
            counts = ", ".join(f"{name} {len(items)}" for name, items in doc.items()) or "empty"
            print(f"wrote {args.out}: {counts} (load_decathlon_datalist reads it)")
            return 0
        common: dict[str, Any] = {
            "label_tag": args.tag,
            "force": args.force,
            "selection": selection,
            "channels": _channels(args),
            "progress": True,
        }
        if args.format == "decathlon":
            doc = export_decathlon(source, args.out, **common)
        else:
            doc = export_nnunet(source, args.out, folds=args.folds, seed=args.seed, **common)
    total = doc["numTraining"] + doc.get("numTest", 0)
    which = "" if selection == ExportSelection() else f" ({selection.describe()})"
    print(f"exported {doc['numTraining']} training case(s){which} to {args.out} ({args.format})")
    names = doc.get("channel_names") or doc.get("modality") or {}
    print("channels: " + ", ".join(f"{k}={v}" for k, v in names.items()))
    if args.format == "nnunet":
        splits = Path(args.out) / "splits_final.json"
        print(f"splits_final.json: {'written' if splits.exists() else 'not written'}")
    elif total > doc["numTraining"]:
        print(f"{total - doc['numTraining']} unlabelled image(s) in imagesTs")
    return 0


def run_preview(args: argparse.Namespace, store: LocalDatastore) -> int:
    """Write a PNG of the three planes of image ID with its label and say what it shows."""
    from ..preview import PreviewOptions, parse_window, write_preview

    window = parse_window(args.window) if args.window else None
    result = write_preview(
        store,
        args.image_id,
        tag=args.tag,
        out=args.out,
        options=PreviewOptions(panel_px=args.size, window=window, channel=args.channel),
    )
    try:
        shown: Path = result.path.relative_to(Path.cwd())
    except ValueError:
        shown = result.path
    print(f"Wrote {shown} ({result.describe()})")
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
    p.add_argument(
        "target",
        metavar="STORE",
        nargs="?",
        help="the store (created if missing; default: --store)",
    )
    p.add_argument("--link", action="store_true", help="symlink images instead of copying them")
    p.add_argument(
        "--splits",
        metavar="FILE",
        help="nnU-Net splits_final.json (default: SRC/splits_final.json when present)",
    )
    p.set_defaults(handler=run_import, store_mode="none")

    p = subparsers.add_parser(
        "export",
        help="export a store (or a subset) as a Decathlon task, an nnU-Net raw dataset or a "
        "MONAI datalist JSON (read-only: works on any studies folder)",
    )
    p.add_argument("--format", required=True, choices=(*_FORMATS, "datalist"))
    p.add_argument("source", metavar="STORE", nargs="?", help="the store (default: --store)")
    p.add_argument(
        "out",
        metavar="OUT",
        help="the folder to write (empty or absent); for datalist, the JSON file",
    )
    label_tag_option(p, default="final", what="labels to export")
    p.add_argument("--ids", action="append", metavar="ID,ID...", help="only these images")
    image_tag_option(p, what="only images with this tag")
    p.add_argument("--split", metavar="NAME", help="only images of this persisted split")
    p.add_argument(
        "--modality",
        help="the images' modality (CT, MR...; default: the images' info, else guessed with a "
        "warning); nnU-Net normalises CT differently",
    )
    p.add_argument(
        "--channel-names", metavar="A,B,...", help="one name per channel (overrides --modality)"
    )
    p.add_argument("--folds", type=int, default=5, help="nnU-Net folds without saved splits")
    p.add_argument("--seed", type=int, default=0, help="seed of those folds")
    p.add_argument("--force", action="store_true", help="write into a non-empty OUT")
    p.set_defaults(handler=run_export, store_mode="none", writes_no_store=True)

    p = subparsers.add_parser("preview", help="PNG of axial, coronal and sagittal planes")
    p.add_argument("image_id", metavar="ID")
    label_tag_option(p, default=None, what="label drawn (default: final, else the first one)")
    p.add_argument(
        "--out",
        metavar="FILE.png",
        help="where (default: ./<ID>-<LABEL_TAG>-preview.png in the current folder)",
    )
    p.add_argument("--size", type=int, default=256, help="pixels of the longest plane extent")
    p.add_argument(
        "--window",
        metavar="PRESET|C,W",
        help="display window: soft-tissue, lung, bone, brain, or CENTRE,WIDTH "
        "(default: soft-tissue for CT, the 0.5-99.5 percentiles otherwise)",
    )
    p.add_argument(
        "--channel", type=int, default=0, metavar="N", help="channel of a 4-D image (default: 0)"
    )
    p.set_defaults(handler=run_preview, store_mode="read")
