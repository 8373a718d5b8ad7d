"""``medstore`` commands that create or inspect a store: init, status, ls, info, history, archive.

Examples:
    >>> import argparse
    >>> sub = argparse.ArgumentParser().add_subparsers()
    >>> register(sub)
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Any

from ..errors import ReadOnlyError
from ..ids import validate_id, validate_tag
from ..store.layout import StoreLayout
from ..store.local import DefaultLabelTag, LocalDatastore
from .arguments import image_tag_option, label_tag_option
from .describe import geometry_json, geometry_lines, label_line
from .main import StoreOptions, open_store

__all__ = ["format_status", "print_json", "register", "status_summary"]


def print_json(value: Any) -> None:
    """Print ``value`` as indented JSON (non-ASCII kept readable)."""
    print(json.dumps(value, indent=2, ensure_ascii=False, default=str))


def status_summary(store: LocalDatastore) -> dict[str, Any]:
    """The store's status with per-tag labelled/unlabelled counts.

    Args:
        store: An open store.

    Returns:
        ``{"root", "name", "description", "images", "labelled", "unlabelled", "tags":
        {tag: {"labelled", "unlabelled"}}}``; ``labelled``/``unlabelled`` refer to ``final``.

    Examples:
        >>> import tempfile
        >>> status_summary(LocalDatastore(tempfile.mkdtemp()))["images"]
        0
    """
    status = store.status()
    total = int(status["total"])
    counts = {DefaultLabelTag.FINAL: 0, DefaultLabelTag.ORIGINAL: 0}
    counts.update(status["label_tags"])
    return {
        "root": str(store.root),
        "name": store.name(),
        "description": store.description(),
        "images": total,
        "labelled": int(status["completed"]),
        "unlabelled": total - int(status["completed"]),
        "tags": {
            tag: {"labelled": n, "unlabelled": total - n} for tag, n in sorted(counts.items())
        },
    }


def format_status(summary: dict[str, Any]) -> str:
    """A readable table of :func:`status_summary`.

    Args:
        summary: The summary.

    Returns:
        Several lines of text.
    """
    lines = [
        f"Store       {summary['root']}",
        f"Name        {summary['name']}"
        + (f" - {summary['description']}" if summary["description"] else ""),
        f"Images      {summary['images']}",
        f"Labelled    {summary['labelled']}  (tag 'final')",
        f"Unlabelled  {summary['unlabelled']}",
        "",
    ]
    width = max([len("Label tag"), *(len(t) for t in summary["tags"])])
    lines.append(f"{'Label tag':<{width}}  {'Labelled':>8}  {'Unlabelled':>10}")
    for tag, row in summary["tags"].items():
        lines.append(f"{tag:<{width}}  {row['labelled']:>8}  {row['unlabelled']:>10}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- init
def run_init(args: argparse.Namespace, store: None) -> int:
    """Create (or adopt) a store folder, indexing the files already in it."""
    if args.read_only:
        raise ReadOnlyError("cannot initialise a store with --read-only")
    root = Path(args.path if args.path is not None else args.store)
    if root.exists() and not root.is_dir():
        raise NotADirectoryError(f"{root} exists and is not a folder")
    existed = StoreLayout.at(root).manifest.is_file()
    root.mkdir(parents=True, exist_ok=True)
    ext = tuple(args.ext) if args.ext else None
    kwargs: dict[str, Any] = {"extensions": ext} if ext else {}
    with LocalDatastore(root, lock_timeout=args.lock_timeout, **kwargs) as new, new.batch():
        name = args.name if args.name is not None else (None if existed else root.absolute().name)
        if name is not None:
            new.set_name(name)
        if args.description is not None:
            new.set_description(args.description)
    verb = "Store already existed at" if existed else "Initialised store at"
    count = len(new.list_images())
    print(f"{verb} {new.root}: {count} image{'' if count == 1 else 's'}")
    return 0


# ---------------------------------------------------------------------------- status / ls
def run_status(args: argparse.Namespace, store: LocalDatastore) -> int:
    """Print the store's status table (or JSON)."""
    summary = status_summary(store)
    if args.json:
        print_json(summary)
    else:
        print(format_status(summary))
    return 0


def run_ls(args: argparse.Namespace, store: LocalDatastore) -> int:
    """List image ids, optionally filtered by label tag and image tag."""
    tag = validate_tag(args.tag) if args.tag else DefaultLabelTag.FINAL
    labelled = args.labelled
    if labelled is None and args.tag:
        labelled = True
    rows = []
    for image_id, obj in store.json()["objects"].items():
        has = tag in obj["labels"]
        if labelled is not None and has != labelled:
            continue
        tags = list(obj["image"]["info"].get("tags", []))
        if args.image_tag and args.image_tag not in tags:
            continue
        rows.append({"id": image_id, "labels": sorted(obj["labels"]), "tags": tags})
    if args.json:
        print_json(rows)
    elif args.long:
        width = max([2, *(len(r["id"]) for r in rows)])
        print(f"{'ID':<{width}}  {'LABELS':<24}  TAGS")
        for r in rows:
            line = f"{r['id']:<{width}}  {','.join(r['labels']) or '-':<24}  {','.join(r['tags'])}"
            print(line.rstrip())
    else:
        for r in rows:
            print(r["id"])
    return 0


def run_info(args: argparse.Namespace, store: LocalDatastore) -> int:
    """Print an image's info: a readable summary, or (``--json``) its info and labels as JSON.

    The summary gives shape, spacing and axis directions both in the file's own voxel order
    (what 3D Slicer shows) and in medstore's canonical (D, H, W) order, labelled.
    """
    from ..imaging import probe_image

    image_id = validate_id(args.image_id)
    if args.tag:
        info = store.get_label_info(image_id, validate_tag(args.tag))
        info["path"] = store.get_label_uri(image_id, args.tag)
        print_json(info)
        return 0
    image = store.get_image_info(image_id)
    tags = store.get_labels_by_image_id(image_id)
    labels = {tag: store.get_label_info(image_id, tag) for tag in tags}
    header = probe_image(store.get_image_uri(image_id))
    if args.json:
        print_json(
            {"id": image_id, "image": image, "labels": labels, "geometry": geometry_json(header)}
        )
        return 0
    fmt = ", ".join(str(x) for x in (image.get("format") or header.format, header.dtype) if x)
    print(f"{'Image':<9} {image_id}  ({fmt})")
    print(f"{'File':<9} {store.get_image_uri(image_id)}")
    for line in geometry_lines(header):
        print(line)
    for tag, info in sorted(labels.items()):
        path = Path(store.get_label_uri(image_id, tag))
        print(label_line(tag, info, path.relative_to(store.root).as_posix()))
    if not labels:
        print(f"{'Label':<9} none")
    image_tags = image.get("tags") or []
    if image_tags:
        print(f"{'Tags':<9} {' '.join(map(str, image_tags))}")
    return 0


def run_history(args: argparse.Namespace, store: LocalDatastore) -> int:
    """Print every kept version of one label."""
    records = store.label_history(validate_id(args.image_id), validate_tag(args.tag))
    if args.json:
        print_json(records)
        return 0
    if not records:
        print(f"no versions of label {args.tag!r} for image {args.image_id!r}")
        return 0
    print(f"{'VERSION':>7}  {'SAVED AT':<27}  {'REASON':<8}  CHECKSUM")
    for r in records:
        checksum = str(r.get("checksum") or "-").removeprefix("SHA256:")[:16]
        reason = "current" if r.get("current") else str(r.get("reason", "-"))
        print(f"{r['version']:>7}  {r.get('saved_at') or '-':<27}  {reason:<8}  {checksum}")
    return 0


# ---------------------------------------------------------------------------- refresh / archive
def run_refresh(args: argparse.Namespace, store: None) -> int:
    """Reconcile the manifest with the files on disk."""
    options = StoreOptions.from_args(args)
    before = set(open_store(options, mode="read").list_images())  # opening to write refreshes
    with open_store(options, mode="write") as live:
        state = live.refresh()
        after = set(live.list_images())
    print(
        f"{len(after)} images ({len(after - before)} new, {len(before - after)} gone); "
        f"{len(state.orphans)} label files without an image; {len(state.skipped)} skipped"
    )
    return 0


def run_archive(args: argparse.Namespace, store: LocalDatastore) -> int:
    """Zip the ``final``-labelled cases in MONAI Label's archive layout."""
    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit must be >= 1, got {args.limit}")
    out = Path(args.out) if args.out else None
    if out is not None and out.exists() and not args.force:
        raise FileExistsError(f"{out} already exists (use --force to replace it)")
    path = Path(store.get_dataset_archive(args.limit))
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        path = Path(shutil.move(path, out))
    print(path)
    return 0


# ---------------------------------------------------------------------------- registration
def register(subparsers: Any) -> None:
    """Add this module's commands to the ``medstore`` parser.

    Args:
        subparsers: The object ``ArgumentParser.add_subparsers()`` returned.
    """
    p = subparsers.add_parser("init", help="create a store (or adopt a folder of images)")
    p.add_argument("path", nargs="?", metavar="PATH", help="the folder (default: --store)")
    p.add_argument("--name", help="store name (default: the folder's name)")
    p.add_argument("--description", help="store description")
    p.set_defaults(handler=run_init, store_mode="none")

    p = subparsers.add_parser("status", help="images, labelled per tag, unlabelled")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=run_status, store_mode="read")

    p = subparsers.add_parser("ls", help="list image ids")
    p.add_argument(
        "--label-tag",
        "--tag",
        dest="tag",
        metavar="LABEL_TAG",
        help="label tag for --labeled/--unlabeled (implies "
        "--labeled when given alone; default: final)",
    )
    which = p.add_mutually_exclusive_group()
    which.add_argument(
        "--labeled",
        "--labelled",
        dest="labelled",
        action="store_true",
        default=None,
        help="only images with a label under --label-tag",
    )
    which.add_argument(
        "--unlabeled",
        "--unlabelled",
        dest="labelled",
        action="store_false",
        help="only images without a label under --label-tag",
    )
    image_tag_option(p, what="only images with this tag")
    p.add_argument("-l", "--long", action="store_true", help="show labels and image tags")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=run_ls, store_mode="read")

    p = subparsers.add_parser(
        "info", help="an image's geometry (file order and medstore's) and labels, or --json"
    )
    p.add_argument("image_id", metavar="IMAGE_ID")
    label_tag_option(p, default=None, what="label whose info to show instead")
    p.add_argument("--json", action="store_true", help="the full info as JSON")
    p.set_defaults(handler=run_info, store_mode="read")

    p = subparsers.add_parser("history", help="kept versions of a label")
    p.add_argument("image_id", metavar="IMAGE_ID")
    label_tag_option(p, default=DefaultLabelTag.FINAL, what="label")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=run_history, store_mode="read")

    p = subparsers.add_parser("refresh", help="index files added or removed by hand")
    p.set_defaults(handler=run_refresh, store_mode="none")

    p = subparsers.add_parser("archive", help="zip the final-labelled cases (MONAI Label layout)")
    p.add_argument("--limit", type=int, metavar="N", help="at most N cases")
    p.add_argument("--out", metavar="FILE", help="where to put the zip (default: a temp folder)")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.set_defaults(handler=run_archive, store_mode="read")
