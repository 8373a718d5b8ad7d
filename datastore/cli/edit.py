"""``medstore`` commands that change labels and tags: label, tag, rm, restore.

Examples:
    >>> parse_info(["site=Lyon", "age:=42"])
    {'site': 'Lyon', 'age': 42}
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

from ..errors import LabelNotFoundError
from ..ids import validate_id, validate_tag
from ..store.local import DefaultLabelTag, LocalDatastore
from .arguments import label_tag_option
from .main import UsageError

__all__ = ["parse_classes", "parse_info", "register"]


def parse_info(items: Sequence[str] | None) -> dict[str, Any]:
    """Parse ``KEY=VALUE`` (a string) and ``KEY:=JSON`` (any JSON value) arguments.

    Args:
        items: The raw arguments.

    Returns:
        The info dict.

    Raises:
        UsageError: An item without ``=``, an empty key, or invalid JSON after ``:=``.

    Examples:
        >>> parse_info(["flags:=[1, 2]", "note=a=b"])
        {'flags': [1, 2], 'note': 'a=b'}
    """
    info: dict[str, Any] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"--info {item!r}: expected KEY=VALUE or KEY:=JSON")
        if key.endswith(":"):
            key = key[:-1]
            try:
                parsed: Any = json.loads(value)
            except json.JSONDecodeError as err:
                raise UsageError(f"--info {item!r}: invalid JSON value ({err.msg})") from err
        else:
            parsed = value
        if not key:
            raise UsageError(f"--info {item!r}: empty key")
        info[key] = parsed
    return info


def parse_classes(items: Sequence[str] | None) -> list[dict[str, Any]]:
    """Parse ``NAME=IDX`` class arguments into MONAI Label's ``label_info`` list.

    Args:
        items: The raw arguments.

    Returns:
        ``[{"name": NAME, "idx": IDX}, ...]`` in the given order.

    Raises:
        UsageError: A malformed item, a non-integer or negative index, or a repeated name/index.

    Examples:
        >>> parse_classes(["liver=1", "tumour=2"])
        [{'name': 'liver', 'idx': 1}, {'name': 'tumour', 'idx': 2}]
    """
    out: list[dict[str, Any]] = []
    for item in items or ():
        name, sep, idx = item.rpartition("=")
        if not sep or not name:
            raise UsageError(f"--class {item!r}: expected NAME=INDEX")
        try:
            value = int(idx)
        except ValueError as err:
            raise UsageError(f"--class {item!r}: index must be an integer") from err
        if value < 0:
            raise UsageError(f"--class {item!r}: index must be >= 0")
        if any(c["name"] == name or c["idx"] == value for c in out):
            raise UsageError(f"--class {item!r}: name or index given twice")
        out.append({"name": name, "idx": value})
    return out


def run_label(args: argparse.Namespace, store: LocalDatastore) -> int:
    """Save (or replace) one label file."""
    image_id = validate_id(args.image_id)
    tag = validate_tag(args.tag)
    info = parse_info(args.info)
    classes = parse_classes(args.classes)
    if classes:
        info["label_info"] = classes
    replaced = tag in store.get_labels_by_image_id(image_id)
    store.save_label(image_id, args.file, tag, info, force=args.force)
    kept = " (previous version kept in its history)" if replaced else ""
    print(f"saved label {tag!r} of image {image_id!r}{kept}")
    return 0


def run_tag(args: argparse.Namespace, store: LocalDatastore) -> int:
    """Show, add or remove image tags."""
    image_id = validate_id(args.image_id)
    if args.add or args.remove:
        with store.batch():
            tags = store.add_tags(image_id, args.add or [])
            if args.remove:
                tags = store.remove_tags(image_id, args.remove)
    else:
        tags = list(store.get_image_info(image_id).get("tags", []))
    print(" ".join(tags) if tags else f"image {image_id!r} has no tags")
    return 0


def run_rm(args: argparse.Namespace, store: LocalDatastore) -> int:
    """Remove an image (with its labels) or one label; both stay restorable."""
    image_id = validate_id(args.image_id)
    if args.tag:
        tag = validate_tag(args.tag)
        store.remove_label(image_id, tag)
        print(
            f"removed label {tag!r} of image {image_id!r} "
            f"(restore with: medstore restore {image_id} --label-tag {tag})"
        )
    else:
        store.remove_image(image_id)
        print(f"removed image {image_id!r} (restore with: medstore restore {image_id})")
    return 0


def run_restore(args: argparse.Namespace, store: LocalDatastore) -> int:
    """Restore a removed image, or a kept label version."""
    store.check_writable()
    image_id = validate_id(args.image_id)
    if args.tag is None:
        if args.version is not None:
            raise UsageError("--version needs --label-tag")
        store.restore_image(image_id)
        print(f"restored image {image_id!r}")
        return 0
    tag = validate_tag(args.tag)
    version = args.version
    if version is None:
        kept = [r for r in store.label_history(image_id, tag) if not r.get("current")]
        if not kept:
            raise LabelNotFoundError(f"label {tag!r} of image {image_id!r} has no kept version")
        version = int(kept[-1]["version"])
    store.restore_label(image_id, tag, version)
    print(f"restored version {version} of label {tag!r} of image {image_id!r}")
    return 0


def register(subparsers: Any) -> None:
    """Add this module's commands to the ``medstore`` parser.

    Args:
        subparsers: The object ``ArgumentParser.add_subparsers()`` returned.
    """
    p = subparsers.add_parser("label", help="save a label file for an image")
    p.add_argument("image_id", metavar="IMAGE_ID")
    p.add_argument("file", metavar="FILE", help="the label file (same patterns as images)")
    label_tag_option(p, default=DefaultLabelTag.FINAL, what="label to save")
    p.add_argument(
        "--force",
        action="store_true",
        help="save a label that does not fit its image (float values, another shape or "
        "orientation) instead of refusing it",
    )
    p.add_argument(
        "--class",
        dest="classes",
        action="append",
        metavar="NAME=IDX",
        help="a class of the label map, repeatable (stored as label_info)",
    )
    p.add_argument(
        "--info",
        action="append",
        metavar="KEY=VALUE",
        help="label info; KEY:=JSON for non-string values; repeatable",
    )
    p.set_defaults(handler=run_label, store_mode="write")

    p = subparsers.add_parser("tag", help="show, add or remove an image's tags")
    p.add_argument("image_id", metavar="IMAGE_ID")
    p.add_argument("--add", nargs="+", metavar="T", help="tags to add")
    p.add_argument("--remove", nargs="+", metavar="T", help="tags to remove")
    p.set_defaults(handler=run_tag, store_mode="write")

    p = subparsers.add_parser("rm", help="remove an image (or with --label-tag, one label)")
    p.add_argument("image_id", metavar="IMAGE_ID")
    label_tag_option(p, default=None, what="label to remove (the image stays)")
    p.set_defaults(handler=run_rm, store_mode="write")

    p = subparsers.add_parser("restore", help="bring back a removed image or a label version")
    p.add_argument("image_id", metavar="IMAGE_ID")
    label_tag_option(p, default=None, what="label to restore a version of")
    p.add_argument(
        "--version",
        type=int,
        metavar="N",
        help="label version (see 'medstore history'; default: the newest kept one)",
    )
    p.set_defaults(handler=run_restore, store_mode="write")
