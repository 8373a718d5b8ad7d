"""Multi-file saves made atomic with redo records in ``.medstore/pending/``.

A change that touches several files (a label and its manifest entry; an old version kept in
history) is described by a :class:`Transaction`: file *steps* and manifest *patches*. It is
committed by staging new files, writing and fsyncing a redo record, performing the steps, writing
the manifest, and deleting the record. Whoever takes the lock next replays leftover records first,
so a crash at any point ends in the old state or, after recovery, the new one. Every step is
idempotent and guarded by the existence of the file it consumes.

Steps (paths relative to the store root):

- ``{"src": staged, "dest": final, "keep": history_or_null}``: while ``staged`` exists, hard-link
  the current ``final`` to ``keep`` (if given and not yet there), then replace ``final`` with
  ``staged``.
- ``{"src": null, "dest": final, "keep": history}``: move ``final`` to ``keep`` (a removal that
  can be undone).
- ``{"src": null, "dest": link, "keep": null, "unlink": true}``: remove a symlink, never its
  target.

Examples:
    >>> txn = Transaction()
    >>> txn.patch("set_name", name="demo")
    >>> txn.patches
    [{'op': 'set_name', 'name': 'demo'}]
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import nofollow
from ..crashpoints import crashpoint
from ..durable import (
    atomic_copy,
    atomic_write_bytes,
    chmod_if_supported,
    fsync_dir,
    new_file_mode,
)
from ..errors import ManifestCorruptError, UnsafePathError
from .json_values import dump_json, load_json
from .manifest_patches import apply_patches

__all__ = ["PendingRecords", "Transaction"]

logger = logging.getLogger(__name__)
FORMAT_VERSION = 1
RECORD_PREFIX = "record-"


def _is_record(name: str) -> bool:
    return name.startswith(RECORD_PREFIX) and name.endswith(".json")


@dataclass
class Transaction:
    """File steps and manifest patches that must take effect together."""

    steps: list[dict[str, Any]] = field(default_factory=list)
    patches: list[dict[str, Any]] = field(default_factory=list)
    staged: dict[Path, None] = field(default_factory=dict)  # an ordered set
    reserved: dict[tuple[str, str], int] = field(default_factory=dict)
    sources: dict[Path, Path] = field(default_factory=dict)

    def replace(self, staged: Path, dest: Path, keep: Path | None, root: Path) -> None:
        """Add a step putting ``staged`` at ``dest``, keeping the old ``dest`` at ``keep``."""
        self.staged[staged] = None
        self.sources[dest] = staged
        self.steps.append(
            {
                "src": _rel(staged, root),
                "dest": _rel(dest, root),
                "keep": _rel(keep, root) if keep else None,
            }
        )

    def source_of(self, dest: Path) -> Path:
        """Where ``dest``'s content is now: its staged file if this transaction replaces it."""
        return self.sources.get(dest, dest)

    def discard_one(self, staged: Path) -> None:
        """Delete one staged file that will not be used."""
        nofollow.unlink(staged, missing_ok=True)

    def retire(self, dest: Path, keep: Path, root: Path) -> None:
        """Add a step moving ``dest`` to ``keep`` (a removal that can be undone)."""
        self.steps.append({"src": None, "dest": _rel(dest, root), "keep": _rel(keep, root)})

    def unlink(self, link: Path, root: Path) -> None:
        """Add a step removing the symlink ``link`` (its target is never touched)."""
        self.steps.append({"src": None, "dest": _rel(link, root), "keep": None, "unlink": True})

    def patch(self, op: str, **args: Any) -> None:
        """Add a manifest patch (see :func:`~.manifest_patches.apply_patches`)."""
        self.patches.append({"op": op, **args})

    def discard(self) -> None:
        """Delete staged files of a transaction that will not be committed."""
        for path in self.staged:
            with contextlib.suppress(FileNotFoundError, UnsafePathError):
                if nofollow.is_real_dir(path):  # a staged DICOM series folder
                    nofollow.rmtree(path, ignore_errors=True)
                else:
                    nofollow.unlink(path)
        self.staged.clear()

    def __bool__(self) -> bool:
        return bool(self.steps or self.patches)


def _rel(path: Path, root: Path) -> str:
    return Path(os.path.relpath(path, root)).as_posix()


def _under(root: Path, rel: str) -> Path:
    if Path(rel).is_absolute() or ".." in Path(rel).parts:
        raise ManifestCorruptError(f"pending record names a path outside the store: {rel!r}")
    return root / rel


def _keep_copy(dest_dir: nofollow.Folder, dest_name: str, keep: Path) -> bool:
    """Keep the current ``dest`` at ``keep`` (a hard link, else a copy) unless already kept."""
    with nofollow.parent(keep, create=True) as (keep_dir, keep_name):
        if keep_dir.lexists(keep_name):
            return False
        dest = dest_dir.path / dest_name
        if dest_dir.is_real_dir(dest_name):
            nofollow.copy_tree(dest, keep, mode=new_file_mode())
            return True
        try:
            os.link(
                dest_dir.name(dest_name),
                keep_dir.name(keep_name),
                src_dir_fd=dest_dir.fd,
                dst_dir_fd=keep_dir.fd,
                follow_symlinks=False,
            )
        except OSError:  # no hard links here (exFAT)
            atomic_copy(dest, keep, point="history")
        return True


def _inherit_mode(dest_dir: nofollow.Folder, dest: str, src_dir: nofollow.Folder, src: str) -> None:
    """Give ``src`` the permission bits and group of the regular file it is about to replace."""
    try:
        st = dest_dir.lstat(dest)
    except FileNotFoundError:
        return
    if not stat.S_ISREG(st.st_mode) or not stat.S_ISREG(src_dir.lstat(src).st_mode):
        return
    fd = src_dir.open(src, os.O_RDONLY)
    try:
        target: int | str = fd if os.chmod in os.supports_fd else src_dir.name(src)
        chmod_if_supported(target, stat.S_IMODE(st.st_mode))
        if hasattr(os, "chown"):
            with contextlib.suppress(OSError):
                os.chown(target, -1, st.st_gid)
    finally:
        os.close(fd)


def _replace_in(src_dir: nofollow.Folder, src: str, dest_dir: nofollow.Folder, dest: str) -> None:
    os.replace(
        src_dir.name(src), dest_dir.name(dest), src_dir_fd=src_dir.fd, dst_dir_fd=dest_dir.fd
    )


def run_step(root: Path, step: dict[str, Any], touched: set[Path]) -> None:
    """Perform one step idempotently (see the module docstring).

    Args:
        root: The store root.
        step: The step.
        touched: Receives the folders whose entries changed (fsynced once by the caller).
    """
    dest = _under(root, step["dest"])
    keep = _under(root, step["keep"]) if step.get("keep") else None
    if step.get("src"):
        src = _under(root, step["src"])
        if not nofollow.lexists(src):
            return
        # Each folder is walked once from the root (no link followed) and held for the step.
        with (
            nofollow.parent(src) as (src_dir, src_name),
            nofollow.parent(dest, create=True) as (dest_dir, dest_name),
        ):
            if (
                keep is not None
                and dest_dir.lexists(dest_name)
                and _keep_copy(dest_dir, dest_name, keep)
            ):
                touched.add(keep.parent)
            _inherit_mode(dest_dir, dest_name, src_dir, src_name)
            if dest_dir.is_real_dir(dest_name):
                nofollow.rmtree(dest)
            _replace_in(src_dir, src_name, dest_dir, dest_name)
        touched.update((dest.parent, src.parent))
        return
    if step.get("unlink"):
        if nofollow.is_link(dest):
            nofollow.unlink(dest)
            touched.add(dest.parent)
        return
    if keep is not None and nofollow.lexists(dest):
        with (
            nofollow.parent(dest) as (dest_dir, dest_name),
            nofollow.parent(keep, create=True) as (keep_dir, keep_name),
        ):
            if keep_dir.lexists(keep_name):
                return
            _replace_in(dest_dir, dest_name, keep_dir, keep_name)
        touched.update((keep.parent, dest.parent))


def _sync_dirs(touched: set[Path]) -> None:
    for folder in sorted(touched):
        with contextlib.suppress(FileNotFoundError):
            fsync_dir(folder)


def _undo_step(root: Path, step: dict[str, Any]) -> None:
    dest = _under(root, step["dest"])
    keep = _under(root, step["keep"]) if step.get("keep") else None
    if step.get("src"):
        src = _under(root, step["src"])
        if nofollow.lexists(src):
            return
        if keep is not None and nofollow.lexists(keep):
            nofollow.replace(dest, src)
            try:
                nofollow.link(keep, dest)
            except UnsafePathError:
                raise
            except OSError:  # no hard links here (exFAT): the kept copy is moved back instead
                nofollow.replace(keep, dest)
            else:
                nofollow.unlink(keep)
        else:
            nofollow.replace(dest, src)
        fsync_dir(dest.parent)
    elif keep is not None and nofollow.lexists(keep) and not nofollow.lexists(dest):
        nofollow.replace(keep, dest)
        fsync_dir(dest.parent)


def _roll_back(root: Path, done: list[dict[str, Any]]) -> bool:
    """Undo finished steps in reverse order; ``False`` when that fails too."""
    try:
        for step in reversed(done):
            _undo_step(root, step)
    except OSError:
        logger.exception("roll-back failed; the next writer completes the save instead")
        return False
    return True


class PendingRecords:
    """The redo records of one store.

    Args:
        root: The store root.
        folder: ``<root>/.medstore/pending``.
    """

    def __init__(self, root: Path, folder: Path) -> None:
        self.root = root
        self.folder = folder

    def exist(self) -> bool:
        """Whether any record is waiting to be completed."""
        try:
            return any(_is_record(name) for name in nofollow.listdir(self.folder))
        except FileNotFoundError:
            return False

    def commit(
        self,
        txn: Transaction,
        doc: dict[str, Any],
        write_manifest: Callable[[dict[str, Any]], None],
    ) -> None:
        """Commit ``txn``: record, steps, manifest, then forget the record.

        If a step or the manifest write fails, the steps already done are rolled back and the
        record deleted; if even the roll-back fails the record stays, and the next writer rolls
        the transaction forward. An interrupt (``KeyboardInterrupt``, ``SystemExit``) once the
        record is written leaves the record and its staged files for the next writer to
        complete. Either way no acknowledged state is lost.

        Args:
            txn: The transaction (its files already staged).
            doc: The manifest dict with ``txn.patches`` already applied.
            write_manifest: Durable manifest writer.
        """
        record = None
        if txn.steps:
            nofollow.makedirs(self.folder)
            for folder in {p.parent for p in txn.staged} - {self.folder}:
                fsync_dir(folder)
            # Staged files normally live in this folder: the record's own folder fsync below
            # makes their names durable too, before anything depends on them.
            record = self.folder / f"{RECORD_PREFIX}{uuid.uuid4().hex}.json"
            payload = {"format_version": FORMAT_VERSION, "steps": txn.steps, "patches": txn.patches}
            try:
                atomic_write_bytes(record, dump_json(payload), point="pending")
            except BaseException:
                # Nothing ran yet: a record that did land (the folder fsync failed) must not be
                # rolled forward by the next writer after the caller was told the save failed.
                nofollow.unlink(record, missing_ok=True)
                raise
        done: list[dict[str, Any]] = []
        touched: set[Path] = set()
        try:
            if record is not None:
                crashpoint("txn.after_record")
            for step in txn.steps:
                run_step(self.root, step, touched)
                done.append(step)
                crashpoint("txn.after_step")
            _sync_dirs(touched)
            write_manifest(doc)
        except Exception as err:
            if getattr(err, "manifest_landed", False):
                # The new manifest is on disk after all: keep the record (all steps are done);
                # the next writer completes it rather than undoing files the manifest names.
                txn.staged.clear()
            elif record is not None and _roll_back(self.root, done):
                nofollow.unlink(record)
                txn.discard()
            elif record is not None:
                # The record stays and the next writer rolls it forward: it needs the staged files.
                txn.staged.clear()
            raise
        except BaseException:
            # Interrupted (Ctrl-C, SIGTERM turned into SystemExit): undo nothing now, since a
            # second interrupt could cut a roll-back short. The record stays with every staged
            # file it needs, and the next writer completes the save.
            txn.staged.clear()
            raise
        txn.staged.clear()
        try:
            crashpoint("txn.after_manifest")
        finally:  # the save is complete: an interrupt from here on must not undo it
            if record is not None:
                nofollow.unlink(record)

    def recover(self, doc: dict[str, Any], write_manifest: Callable[[dict[str, Any]], None]) -> int:
        """Complete every leftover record (call with the lock held).

        Args:
            doc: The fresh manifest dict, patched in place.
            write_manifest: Durable manifest writer.

        Returns:
            How many records were completed.
        """
        try:
            records = sorted(
                (self.folder / name for name in nofollow.listdir(self.folder) if _is_record(name)),
                key=lambda p: nofollow.lstat(p).st_mtime_ns,
            )
        except FileNotFoundError:
            return 0
        if not records:
            return 0
        for record in records:
            try:
                payload = load_json(nofollow.read_bytes(record))
            except ValueError:
                # The record itself never became durable: its transaction never started.
                logger.warning("discarding incomplete pending record %s", record.name)
                nofollow.unlink(record)
                continue
            touched: set[Path] = set()
            for step in payload["steps"]:
                run_step(self.root, step, touched)
            _sync_dirs(touched)
            apply_patches(doc, payload["patches"])
        write_manifest(doc)
        for record in records:
            with contextlib.suppress(FileNotFoundError):
                nofollow.unlink(record)
        logger.info("completed %d interrupted save(s)", len(records))
        return len(records)
