"""``medstore add``: import files, folders (recursively) and glob matches in one transaction.

Examples:
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> (folder / "a.nii.gz").write_bytes(b"")
    0
    >>> [p.name for p in collect_sources([str(folder)], ("*.nii.gz",))]
    ['a.nii.gz']
"""

from __future__ import annotations

import argparse
import glob
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from ..errors import InvalidIdError, UnsupportedFormatError
from ..ids import derive_id, is_hidden, is_inside, validate_id
from ..store.image_writes import source_kind
from ..store.imaging_hooks import series_sniffer, why_misfit
from ..store.local import LocalDatastore
from ..store.staging import file_checksum
from .edit import parse_info
from .id_templates import ID_FROM, check_template, is_template, render_id
from .main import UsageError

__all__ = ["collect_sources", "register", "source_ids"]

logger = logging.getLogger(__name__)

_LISTED = 20  # ids printed one per line up to this many (all of them with -v)


def _expand(arg: str) -> list[Path]:
    """One argument as paths: itself if it exists, else its glob matches."""
    if os.path.lexists(arg) or not glob.has_magic(arg):
        return [Path(arg)]
    matches = sorted(glob.glob(arg, recursive=True))
    if not matches:
        raise FileNotFoundError(f"no files match {arg!r}")
    return [Path(m) for m in matches]


def _inside(path: Path, folder: Path | None) -> bool:
    return folder is not None and is_inside(folder, path)


def _walk(
    folder: Path,
    patterns: Sequence[str],
    is_series: Callable[[Path], bool] | None,
    exclude: Path | None,
) -> list[Path]:
    """Matching files under ``folder`` (recursively); series folders count as one source."""
    found: list[Path] = []
    for current, dirs, files in os.walk(folder):
        here = Path(current)
        dirs[:] = sorted(d for d in dirs if not is_hidden(d) and not _inside(here / d, exclude))
        if is_series is not None:
            series = [d for d in dirs if is_series(here / d)]
            found.extend(here / d for d in series)
            dirs[:] = [d for d in dirs if d not in series]
        data_files: set[str] = set()  # a .nhdr's data file is part of its image, not one
        if any(name.lower().endswith(".nhdr") for name in files):
            from ..imaging.nrrd_files import data_names_in

            data_files = data_names_in(here, files)
        for name in sorted(files):
            if derive_id(name, patterns) is None or name in data_files:
                continue
            if not os.path.isfile(here / name):
                logger.warning(
                    "skipping %s: not a regular file (a FIFO, device or socket)", here / name
                )
                continue
            found.append(here / name)
    return found


def collect_sources(
    args: Sequence[str], patterns: Sequence[str], *, exclude: Path | None = None
) -> list[Path]:
    """Expand the ``add`` arguments into image sources.

    Files must match a pattern; folders are searched recursively for matching files, except that a
    folder of DICOM files is one series image when the patterns include ``*.dcm``. Globs are
    expanded here too (for shells that do not, or quoted patterns). Hidden entries are skipped.

    Args:
        args: Files, folders and glob patterns.
        patterns: The store's file-name patterns.
        exclude: A folder never searched (the store itself, so ``add .`` inside a store works).

    Returns:
        The sources, in argument order, without duplicates.

    Raises:
        FileNotFoundError: A path does not exist or a glob matches nothing.
        UnsupportedFormatError: A named file matches no pattern.
        ImageReadError: A named path is neither a folder nor a regular file (a FIFO, a device).
    """
    is_series = series_sniffer(patterns)
    out: dict[Path, None] = {}
    for arg in args:
        for path in _expand(arg):
            if not path.exists():
                raise FileNotFoundError(f"{path} does not exist")
            if path.is_dir():
                if _inside(path, exclude):
                    logger.warning("not searching %s: it is inside the store", path)
                    continue
                if is_series is not None and is_series(path):
                    out[path] = None
                    continue
                found = _walk(path, patterns, is_series, exclude)
                if not found:
                    logger.warning("no files matching %s in %s", " ".join(patterns), path)
                out.update(dict.fromkeys(found))
            elif derive_id(path.name, patterns) is None:
                raise UnsupportedFormatError(
                    f"{path} matches none of the store's patterns ({' '.join(patterns)})"
                )
            else:
                source_kind(path)  # a FIFO or device is refused before anything is copied
                out[path] = None
    return list(out)


def source_ids(
    sources: Sequence[Path],
    patterns: Sequence[str],
    *,
    image_id: str | None,
    template: str | None = None,
) -> list[str]:
    """The id each source will get, validated, with clashes refused before anything is written.

    Args:
        sources: From :func:`collect_sources`.
        patterns: The store's file-name patterns.
        image_id: An explicit id (only with exactly one source), or an id template such as
            ``{parent}_{stem}`` (any number of sources; see :mod:`.id_templates`).
        template: An id template from ``--id-from`` (``image_id`` wins when both are given).

    Returns:
        One id per source.

    Raises:
        UsageError: A plain ``image_id`` with several sources; a template with an unknown field.
        InvalidIdError: An id breaks the naming rules.
        ValueError: Two sources would get the same id.
    """
    if image_id is not None and is_template(image_id):
        image_id, template = None, image_id
    if image_id is not None:
        if len(sources) != 1:
            raise UsageError(
                f"--id needs exactly one source, got {len(sources)}; for one folder per "
                "patient use a template: --id '{parent}_{stem}' or --id-from parent"
            )
        return [validate_id(image_id)]
    if template is not None:
        check_template(template)
    ids: list[str] = []
    seen: dict[str, Path] = {}
    for src in sources:
        derived = (src.name, "") if src.is_dir() else derive_id(src.name, patterns)
        if derived is None:  # pragma: no cover - collect_sources only returns matching files
            raise UnsupportedFormatError(f"{src} matches none of the store's patterns")
        raw = render_id(template, src, derived[0]) if template is not None else derived[0]
        new = validate_id(raw)
        if new in seen:
            hint = (
                "; use a template that tells them apart, e.g. --id '{grandparent}_{parent}_{stem}'"
                if template is not None
                else "; for one folder per patient use --id-from parent (ids like P001_t1)"
                " or --id '{parent}_{stem}'"
            )
            raise ValueError(f"{seen[new]} and {src} would both get id {new!r}{hint}")
        seen[new] = src
        ids.append(new)
    return ids


def run_add(args: argparse.Namespace, store: LocalDatastore) -> int:
    """Import images in one batch: all or nothing.

    An id already in the store is refused unless ``--replace`` (or the source holds exactly the
    stored bytes); each replaced image's labels are listed with whether they fit the new image.
    """
    info = parse_info(args.info)
    sources = collect_sources(args.paths, store.extensions, exclude=store.root)
    if not sources:
        raise FileNotFoundError("no image files found in the given paths")
    template = ID_FROM[args.id_from] if args.id_from else None
    ids = source_ids(sources, store.extensions, image_id=args.image_id, template=template)
    present = set(store.list_images())
    replaced = [
        i
        for i, src in zip(ids, sources, strict=True)
        if i in present and not _same_bytes(store, i, src)
    ]
    if replaced and not args.replace:
        raise InvalidIdError(
            f"id {replaced[0]!r} is already in the store"
            + (f" (and {len(replaced) - 1} more)" if len(replaced) > 1 else "")
            + "; add --replace to replace the image (it stays restorable; labels are kept)"
        )
    tags = args.tags or []
    bar = tqdm(
        list(zip(ids, sources, strict=True)),
        desc="adding",
        unit="image",
        file=sys.stderr,
        disable=None,
        leave=False,
    )
    with store.batch():
        for image_id, src in bar:
            store.add_image(image_id, src, info, link=args.link)
            if tags:
                store.add_tags(image_id, tags)
    bar.close()
    if len(ids) <= _LISTED or args.verbose:
        for image_id, src in zip(ids, sources, strict=True):
            print(f"{image_id}\t{src}")
    for image_id in replaced:
        _report_replaced(store, image_id)
    how = "linked" if args.link else "added"
    print(f"{how} {len(ids)} image{'s' if len(ids) != 1 else ''} to {store.root}")
    return 0


def _same_bytes(store: LocalDatastore, image_id: str, src: Path) -> bool:
    """Whether ``src`` holds exactly the stored image's bytes (re-adding it replaces nothing)."""
    recorded = store.get_image_info(image_id).get("checksum")
    return bool(recorded) and src.is_file() and file_checksum(src) == recorded


def _report_replaced(store: LocalDatastore, image_id: str) -> None:
    """Say that ``image_id`` was replaced and what became of each of its labels."""
    print(f"replaced image {image_id} (the old one: medstore restore {image_id})")
    image = Path(store.get_image_uri(image_id))
    for tag in sorted(store.get_labels_by_image_id(image_id)):
        reason = why_misfit(Path(store.get_label_uri(image_id, tag)), image)
        if reason is None:
            print(f"kept label {tag}/{image_id} (it fits the new image)")
        else:
            print(f"kept label {tag}/{image_id}, but it no longer fits the new image: {reason}")


def register(subparsers: Any) -> None:
    """Add ``medstore add`` to the parser.

    Args:
        subparsers: The object ``ArgumentParser.add_subparsers()`` returned.
    """
    p = subparsers.add_parser("add", help="import image files, folders or globs")
    p.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        help="files, folders (searched recursively) or glob patterns",
    )
    ids = p.add_mutually_exclusive_group()
    ids.add_argument(
        "--id",
        dest="image_id",
        metavar="ID",
        help="the id (one source only), or an id template for many: '{parent}_{stem}' "
        "(fields: {stem} the file's own id, {parent} its folder, {grandparent}, {name})",
    )
    ids.add_argument(
        "--id-from",
        choices=sorted(ID_FROM),
        help="build ids from the folders: 'parent' gives patients/P001/t1.nii the id P001_t1",
    )
    p.add_argument(
        "--link", action="store_true", help="record a symlink to the file instead of copying it"
    )
    p.add_argument(
        "--replace",
        action="store_true",
        help="replace the image of an id already in the store (the old one stays restorable)",
    )
    p.add_argument(
        "--info",
        action="append",
        metavar="KEY=VALUE",
        help="image info; KEY:=JSON for non-string values; repeatable",
    )
    p.add_argument(
        "--image-tag",
        "--tag",
        dest="tags",
        action="append",
        metavar="IMAGE_TAG",
        help="image tag to set on every added image (see 'medstore tag'), repeatable",
    )
    p.set_defaults(handler=run_add, store_mode="write")
