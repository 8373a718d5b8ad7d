"""``medstore annotate``: import (NML / Nucleus / Datamint, detected), export and list annotations.

Examples:
    >>> import argparse
    >>> parser = argparse.ArgumentParser(prog="medstore")
    >>> register(parser.add_subparsers())
    >>> parser.parse_args(["annotate", "ls", "case_1"]).annotate_command
    'ls'
"""

from __future__ import annotations

import argparse
import sys
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

from ..annotations.base import Annotation
from ..annotations.grid import ImageGrid
from ..annotations.skeleton import SkeletonAnnotation
from ..annotations.storage import AnnotationStore
from ..durable import atomic_write_bytes
from ..errors import AnnotationError, DatastoreError, UnsupportedFormatError
from ..interop.datamint import from_datamint, to_datamint
from ..interop.nml import dump_nml, load_nml, save_nml
from ..interop.nucleus import NUCLEUS_KEYS, from_nucleus, to_nucleus
from ..interop.wk_coords import voxel_size_of
from ..interop.wk_labels import volume_layer_to_label

__all__ = ["MAX_JSON_BYTES", "detect_and_load", "register", "run"]

#: Largest JSON annotation file imported.
MAX_JSON_BYTES = 256 * 1024 * 1024
_FORMATS = ("nml", "nucleus", "datamint")


def register(subparsers: Any) -> None:
    """Add the ``annotate`` command and its ``import``/``export``/``ls`` sub-commands.

    Args:
        subparsers: The object ``ArgumentParser.add_subparsers()`` returned.
    """
    parser = subparsers.add_parser(
        "annotate", help="import, export and list entity annotations of an image"
    )
    sub = parser.add_subparsers(dest="annotate_command", required=True)
    imp = sub.add_parser("import", help="import an NML, Nucleus JSON or Datamint JSON file")
    imp.add_argument("file", type=Path, help="the annotation file (format detected)")
    imp.add_argument("--image", required=True, help="image id the annotations belong to")
    imp.add_argument("--created-by", help="annotator recorded on annotations that name none")
    imp.add_argument(
        "--allow-external", action="store_true", help="accept annotations outside the schema"
    )
    imp.set_defaults(handler=run, store_mode="write")
    exp = sub.add_parser("export", help="write an image's annotations in another tool's format")
    exp.add_argument("image_id")
    exp.add_argument("--format", required=True, choices=_FORMATS)
    exp.add_argument("--out", type=Path, help="output file (default: standard output)")
    exp.add_argument("--id", dest="ann_id", help="the skeleton to export as NML")
    exp.set_defaults(handler=run, store_mode="read")
    ls = sub.add_parser("ls", help="list an image's annotations as a table")
    ls.add_argument("image_id")
    ls.add_argument("--all", action="store_true", help="include soft-deleted annotations")
    ls.set_defaults(handler=run, store_mode="read")


def run(args: argparse.Namespace, store: Any) -> int:
    """Run one ``annotate`` sub-command.

    Args:
        args: Parsed arguments.
        store: The opened store.

    Returns:
        The exit status (0).

    Raises:
        AnnotationError: Bad file or annotation. UnsupportedFormatError: unknown file format.
    """
    anns = store.annotations
    command = args.annotate_command
    if command == "import":
        return _import(args, store)
    if command == "export":
        return _export(args, store)
    return _ls(args, anns)


# ------------------------------------------------------------------------------------ import


def _json_items(data: Any) -> list[dict[str, Any]]:
    if isinstance(data, list):
        items = data
    elif isinstance(data, dict) and not ({"type", "annotation_type", "identifier"} & set(data)):
        # One Datamint wrapper, or a dict of named payloads (like the test fixtures).
        items = [data] if "model_dump_json" in data else list(data.values())
    else:
        items = [data]
    if not all(isinstance(item, dict) for item in items):
        raise AnnotationError("every annotation in the JSON file must be an object")
    return items


def _from_json_item(item: dict[str, Any], image: ImageGrid | None) -> Annotation:
    if {"identifier", "annotation_type", "model_dump_json"} & set(item):
        return from_datamint(item, image=image)
    if item.get("type") in NUCLEUS_KEYS and {"label", "labels", "mask_url"} & set(item):
        return from_nucleus(item)
    raise UnsupportedFormatError(
        f"cannot tell the format of an annotation with keys {sorted(item)[:6]} "
        "(expected Nucleus or Datamint)"
    )


def detect_and_load(path: Path, *, image: ImageGrid | None = None) -> tuple[str, list[Annotation]]:
    """Read an annotation file of any supported format.

    Args:
        path: ``.nml`` / ``.zip`` (WEBKNOSSOS) or ``.json`` (Nucleus or Datamint, one object, a
            list, or a dict of named payloads).
        image: The grid of the image the annotations belong to (Datamint pixel coordinates
            index the image file's own voxels).

    Returns:
        ``(format name, annotations)``.

    Raises:
        AnnotationError: Unreadable or invalid. UnsupportedFormatError: format not recognised.
    """
    try:
        with path.open("rb") as handle:
            head = handle.read(64).lstrip(b"\xef\xbb\xbf \t\r\n")
        size = path.stat().st_size
    except OSError as err:
        raise AnnotationError(f"cannot read {path}: {err.strerror or err}") from err
    if path.suffix.lower() == ".nml" or head.startswith(b"<") or zipfile.is_zipfile(path):
        return "nml", [load_nml(path)]
    if not head.startswith((b"{", b"[")):
        raise UnsupportedFormatError(f"{path.name} is neither NML nor JSON")
    if size > MAX_JSON_BYTES:
        raise AnnotationError(f"{path.name} is larger than {MAX_JSON_BYTES} bytes")
    try:
        data = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as err:
        raise AnnotationError(f"{path.name} is not valid JSON: {err}") from err
    anns = [_from_json_item(item, image) for item in _json_items(data)]
    kinds = {a.origin.format for a in anns if a.origin is not None}
    return "/".join(sorted(kinds)) or "json", anns


def _grid(store: Any, image_id: str) -> ImageGrid | None:
    """The image's voxel grid, or ``None`` when it cannot be read (pixel imports then fail)."""
    try:
        return ImageGrid.of_image(store, image_id)
    except DatastoreError:
        return None


def _import(args: argparse.Namespace, store: Any) -> int:
    anns: AnnotationStore = store.annotations
    kind, loaded = detect_and_load(args.file, image=_grid(store, args.image))
    if args.created_by:
        loaded = [
            a
            if a.created_by
            else type(a).model_validate({**a.model_dump(), "created_by": args.created_by})
            for a in loaded
        ]
    before = {a.id for a in anns.list(args.image, include_deleted=True)}
    ids = anns.add_many(args.image, loaded, allow_external=args.allow_external)
    new = len(set(ids) - before)
    print(f"imported {len(ids)} {kind} annotation(s) into {args.image!r} ({new} new)")
    for skeleton in (a for a in loaded if isinstance(a, SkeletonAnnotation)):
        for layer in (v for v in skeleton.volumes if v.location and zipfile.is_zipfile(args.file)):
            tag = args.created_by or skeleton.owner_name or "final"
            volume_layer_to_label(store, args.image, args.file, layer.name, label_tag=tag)
            print(f"volume layer {layer.name!r} saved as label {tag!r} of {args.image!r}")
    return 0


# ------------------------------------------------------------------------------------ export


def _convert(anns: Iterable[Annotation], fmt: str, image: ImageGrid | None) -> list[dict[str, Any]]:
    out, skipped = [], 0
    for ann in anns:
        try:
            out.append(to_nucleus(ann) if fmt == "nucleus" else to_datamint(ann, image=image))
        except AnnotationError:
            skipped += 1
    if skipped:
        print(f"skipped {skipped} annotation(s) with no {fmt} equivalent", file=sys.stderr)
    return out


def _export(args: argparse.Namespace, store: Any) -> int:
    anns: AnnotationStore = store.annotations
    listed = anns.list(args.image_id)
    if args.format == "nml":
        skeletons = [a for a in listed if isinstance(a, SkeletonAnnotation)]
        if args.ann_id:
            skeletons = [a for a in skeletons if a.id == args.ann_id]
        if len(skeletons) != 1:
            raise AnnotationError(
                f"image {args.image_id!r} has {len(skeletons)} matching skeleton annotations; "
                "NML holds exactly one (choose with --id)"
            )
        skeleton = skeletons[0]
        grid = _grid(store, args.image_id) if skeleton.voxel_size is None else None
        if grid is not None:  # WEBKNOSSOS needs the voxel size: the image's spacing
            skeleton = skeleton.model_copy(update={"voxel_size": voxel_size_of(grid)})
        if args.out:
            save_nml(skeleton, args.out)
        else:
            sys.stdout.write(dump_nml(skeleton))
        return 0
    grid = _grid(store, args.image_id) if args.format == "datamint" else None
    data = orjson.dumps(_convert(listed, args.format, grid), option=orjson.OPT_INDENT_2) + b"\n"
    if args.out:
        atomic_write_bytes(args.out, data, point="export")
    else:
        sys.stdout.write(data.decode("utf-8"))
    return 0


# ------------------------------------------------------------------------------------ ls


def _ls(args: argparse.Namespace, anns: AnnotationStore) -> int:
    listed = anns.list(args.image_id, include_deleted=args.all)
    header = ("ID", "TYPE", "IDENTIFIER", "SCOPE", "FRAME", "CREATED_BY", "STATUS", "DELETED")
    rows = [
        (
            str(a.id),
            a.annotation_type,
            a.identifier,
            a.scope,
            "" if a.frame_index is None else str(a.frame_index),
            a.created_by or "",
            a.status or "",
            "yes" if a.deleted else "",
        )
        for a in listed
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
    print(f"{len(rows)} annotation(s)")
    return 0
