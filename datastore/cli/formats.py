"""``medstore import-seg | export-seg``: DICOM SEG and RT Structure Sets onto and off images."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Literal

from ..interop.segmentations import export_segmentation, import_segmentation
from ..store.local import LocalDatastore

__all__ = ["register"]


def run_import_seg(args: argparse.Namespace, store: LocalDatastore) -> int:
    """Rasterise a SEG or RTSTRUCT onto the image of its referenced series; save it as a label."""
    result = import_segmentation(store, args.file, tag=args.tag)
    names = ", ".join(str(e["name"]) for e in result.label_info)
    print(
        f"imported {result.kind} {Path(args.file).name} as label {result.tag!r} of image "
        f"{result.image_id!r}: {names}"
    )
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    return 0


def run_export_seg(args: argparse.Namespace, store: LocalDatastore) -> int:
    """Write a label as a DICOM SEG (or RTSTRUCT) referencing its DICOM series."""
    kind: Literal["SEG", "RTSTRUCT"] = "RTSTRUCT" if args.rtstruct else "SEG"
    out = args.out or f"{args.id}.{args.tag}.{kind.lower()}.dcm"
    path = export_segmentation(store, args.id, args.tag, out, kind=kind)
    print(f"wrote {kind} {path}")
    return 0


def register(subparsers: Any) -> None:
    """Add the segmentation commands to the ``medstore`` parser.

    Args:
        subparsers: The object ``ArgumentParser.add_subparsers()`` returned.
    """
    p = subparsers.add_parser(
        "import-seg", help="import a DICOM SEG or RTSTRUCT as a label of its referenced series"
    )
    p.add_argument("file", metavar="FILE")
    p.add_argument("--tag", default="seg", help="label tag (default: seg)")
    p.set_defaults(handler=run_import_seg)

    p = subparsers.add_parser(
        "export-seg", help="write a label of a DICOM series image as DICOM SEG (or RTSTRUCT)"
    )
    p.add_argument("id", metavar="ID")
    p.add_argument("--tag", required=True, help="the label's tag")
    p.add_argument("--out", metavar="FILE", help="output file (default: ID.TAG.seg.dcm)")
    p.add_argument("--rtstruct", action="store_true", help="write an RT Structure Set instead")
    p.set_defaults(handler=run_export_seg, store_mode="read")
