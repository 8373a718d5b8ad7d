"""``medstore demo``: open a temporary copy of ``sample_store/`` and show its status and datalist.

Examples:
    >>> sample_store_path().name
    'sample_store'
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path
from typing import Any

from datastore.cli_store import format_status, status_summary
from datastore.local import LocalDatastore

__all__ = ["copy_store", "register", "sample_store_path"]

_SHOWN = 5  # datalist entries printed


def sample_store_path() -> Path:
    """Where the repository's ``sample_store/`` is: next to the ``datastore`` package."""
    return Path(__file__).resolve().parents[1] / "sample_store"


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


def run_demo(args: argparse.Namespace, store: None) -> int:
    """Show the status table and the MONAI datalist of a throw-away copy of the sample store."""
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
    p = subparsers.add_parser("demo", help="status and datalist of a copy of the sample store")
    p.add_argument(
        "source",
        nargs="?",
        metavar="STORE",
        help="the store to copy (default: the repository's sample_store/)",
    )
    p.add_argument("--keep", action="store_true", help="keep the temporary copy")
    p.set_defaults(handler=run_demo, store_mode="none")
