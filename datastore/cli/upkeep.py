"""``medstore verify | doctor | gc | compact | import-archive``: store upkeep, archive import."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..interop.archive_import import ArchiveLimits, import_archive
from ..store.local import LocalDatastore
from ..upkeep import collect_garbage, doctor, verify

__all__ = ["register"]


def run_verify(args: argparse.Namespace, store: LocalDatastore) -> int:
    """Re-hash files, read images, fit labels; exit 1 when any differs, is missing or fails."""
    report = verify(store)
    for name in report.mismatched:
        print(f"CHANGED  {name}")
    for name in report.missing:
        print(f"MISSING  {name}")
    for name in report.unreadable:
        print(f"UNREADABLE  {name}: {report.reasons[name]}")
    for name in report.misfit:
        print(f"MISFIT  {name}: {report.reasons[name]}")
    print(
        f"{report.checked} file(s) checked, {len(report.mismatched)} changed, "
        f"{len(report.missing)} missing, {len(report.unreadable)} unreadable, "
        f"{len(report.misfit)} misfit label(s), {report.unrecorded} without a recorded checksum"
    )
    return 0 if report.ok else 1


def run_doctor(args: argparse.Namespace, store: None) -> int:
    """Complete interrupted saves; with --rebuild, rebuild a corrupt manifest from the files."""
    report = doctor(Path(args.store), rebuild=args.rebuild, lock_timeout=args.lock_timeout)
    print(f"completed {report.completed_saves} interrupted save(s)")
    if report.rebuilt_manifest:
        print(
            f"rebuilt the manifest from the files; the corrupt one is kept at {report.corrupt_copy}"
        )
    return 0


def run_gc(args: argparse.Namespace, store: LocalDatastore) -> int:
    """Prune label history, trash and cache by the retention setting."""
    report = collect_garbage(
        store,
        keep_versions=args.keep_versions,
        older_than_days=args.older_than_days,
        dry_run=args.dry_run,
    )
    verb = "would free" if args.dry_run else "freed"
    print(
        f"{verb} {report.bytes_freed / 1e6:.1f} MB: {report.history_versions} label version(s), "
        f"{report.trash_entries} trash entr(ies), {report.cache_files} cache file(s)"
    )
    return 0


def run_compact(args: argparse.Namespace, store: LocalDatastore) -> int:
    """Fold the journal of recent saves into ``datastore_v2.json`` (what MONAI Label reads)."""
    folded = store.compact()
    print(f"folded {folded} journal record(s) into {store.layout.manifest.name}")
    return 0


def run_import_archive(args: argparse.Namespace, store: LocalDatastore) -> int:
    """Import a MONAI Label dataset archive (all or nothing)."""
    limits = ArchiveLimits(max_total_bytes=int(args.max_gb * (1 << 30)))
    ids = import_archive(store, args.archive, limits=limits)
    print(f"imported {len(ids)} image(s) from {Path(args.archive).name}", file=sys.stderr)
    return 0


def register(subparsers: Any) -> None:
    """Add the upkeep commands to the ``medstore`` parser.

    Args:
        subparsers: The object ``ArgumentParser.add_subparsers()`` returned.
    """
    p = subparsers.add_parser("verify", help="re-hash files against their recorded checksums")
    p.set_defaults(handler=run_verify, store_mode="read")

    p = subparsers.add_parser("doctor", help="complete interrupted saves, rebuild a manifest")
    p.add_argument(
        "--rebuild",
        action="store_true",
        help="rebuild a corrupt manifest from the files (a copy is kept)",
    )
    p.set_defaults(handler=run_doctor, store_mode="none")

    p = subparsers.add_parser("gc", help="prune label history, trash and cache")
    p.add_argument(
        "--keep-versions",
        type=int,
        default=10,
        metavar="N",
        help="versions always kept per label (default 10)",
    )
    p.add_argument(
        "--older-than-days",
        type=float,
        default=30.0,
        metavar="D",
        help="only prune what is older than D days (default 30)",
    )
    p.add_argument("--dry-run", action="store_true", help="report without deleting")
    p.set_defaults(handler=run_gc)

    p = subparsers.add_parser(
        "compact", help="fold the journal of recent saves into datastore_v2.json now"
    )
    p.set_defaults(handler=run_compact)

    p = subparsers.add_parser("import-archive", help="import a MONAI Label dataset zip")
    p.add_argument("archive", metavar="ZIP")
    p.add_argument("--max-gb", type=float, default=64.0, help="uncompressed size cap (GiB)")
    p.set_defaults(handler=run_import_archive)
