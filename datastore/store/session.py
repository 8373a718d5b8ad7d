"""The shared state of one open store: lock, manifest document, sync rules and transactions.

Every collaborator of :class:`~medstore.datastore.LocalDatastore` (catalog, writers, indexer)
works through one :class:`StoreSession`:

- **writes** run inside :meth:`StoreSession.mutation`: take the store lock, re-read the manifest
  if another process changed it, complete interrupted saves, apply the change to that fresh
  document, commit it durably (redo record, file steps, manifest), then release the lock;
- **reads** run inside :meth:`StoreSession.reading`: the in-memory document, re-read first
  whenever the manifest file's identity changed on disk, and never while a writer thread of this
  process is half-way through a change;
- a :meth:`StoreSession.batch` groups the mutations of one thread into one transaction.

Examples:
    >>> import tempfile
    >>> session = StoreSession(StoreLayout.at(tempfile.mkdtemp()))
    >>> with session.mutation() as txn:
    ...     session.patch(txn, "set_name", name="demo")
    >>> with session.reading():
    ...     session.doc["name"]
    'demo'
"""

from __future__ import annotations

import contextlib
import gc
import logging
import threading
from collections.abc import Collection, Iterator
from typing import Any

from .. import nofollow
from ..crashpoints import crashpoint
from ..errors import (
    DatastoreError,
    ImageNotFoundError,
    LabelNotFoundError,
    ReadOnlyError,
    UnsafePathError,
)
from .document_storage import DocumentStorage
from .fold_timer import FoldTimer
from .journal_options import JournalOptions
from .label_counts import LabelCounts
from .layout import StoreLayout
from .manifest import deep_copy, empty_manifest
from .manifest_patches import apply_patches
from .name_index import NameGuard, NameIndex
from .staging import StagingArea
from .stale_repair import AckLog
from .store_lock import StoreLock
from .transaction import PendingRecords, Transaction

__all__ = ["StoreSession"]

logger = logging.getLogger(__name__)


class StoreSession:
    """Lock, manifest file, in-memory document and open transaction of one store.

    Args:
        layout: Where the store's files live (its folder names are replaced by the manifest's
            own ``images_dir``/``labels_dir`` once read: see :attr:`layout`).
        read_only: Never write anything: no lock file; :meth:`mutation` raises.
        lock_timeout: Seconds to wait for the store lock before ``StoreLockedError``.
        file_mode: Permission bits for new files (``None``: the process umask).

    Raises:
        ManifestCorruptError: The manifest cannot be trusted.
    """

    def __init__(
        self,
        layout: StoreLayout,
        *,
        read_only: bool = False,
        lock_timeout: float = 30.0,
        file_mode: int | None = None,
        journal: JournalOptions | None = None,
    ) -> None:
        self._read_only = read_only
        self._lock_timeout = lock_timeout
        self._mutex = threading.RLock()
        self._txn: Transaction | None = None
        self._txn_thread: int | None = None
        self._storage = DocumentStorage(
            layout, file_mode=file_mode, options=journal or JournalOptions.from_env()
        )
        self._journal = self._storage.journal
        self._lock = None if read_only else StoreLock(layout.lock, timeout=lock_timeout)
        nofollow.confine(layout.root)  # no link below the root is followed by any write
        self._name_guard = None if read_only else NameGuard(layout.side)
        self._fold_timer = FoldTimer(
            self._fold_in_background, after_s=self._journal.options.compact_after_s
        )
        doc = self._storage.load()
        self.existed = doc is not None
        """Whether the manifest file existed when the session was opened."""
        self._doc: dict[str, Any] = doc or empty_manifest(layout.images_dir, layout.labels_dir)
        self._layout = StoreLayout(
            layout.root,
            self._doc["images_dir"] or ".",
            self._doc["labels_dir"],
            layout.manifest_name,
        )
        self._staging = StagingArea(self._layout.pending, file_mode=file_mode)
        self._pending = PendingRecords(self._layout.root, self._layout.pending)
        self._acks = AckLog(self._layout)
        self._repair_checked = False
        self._repaired_unsaved = False  # stale entries put back in memory by a read only
        self._repair_for_read(self._doc)
        self._before: dict[str, dict[str, Any] | None] = {}  # per image id, in this transaction

    # ------------------------------------------------------------------ what it holds
    @property
    def layout(self) -> StoreLayout:
        """Where the store's files live (folder names as the manifest records them)."""
        return self._layout

    @property
    def staging(self) -> StagingArea:
        """Where new files are prepared before a transaction puts them in place."""
        return self._staging

    @property
    def read_only(self) -> bool:
        """Whether the store was opened read-only."""
        return self._read_only

    @property
    def doc(self) -> dict[str, Any]:
        """The in-memory manifest: use it inside :meth:`reading` or :meth:`mutation` only.

        Callers never hand it (or any part of it) out without a deep copy.
        """
        return self._doc

    def label_counts(self) -> LabelCounts:
        """Images and images per label tag in :attr:`doc` (use inside :meth:`reading`).

        Kept as the store changes (O(1) per call) except inside this thread's open batch,
        whose uncommitted changes are counted afresh.
        """
        if self._in_batch():
            return LabelCounts.of(self._doc["objects"])
        return self._storage.counts(self._doc)

    def image_entry(self, image_id: str) -> dict[str, Any]:
        """The manifest object (``image`` and ``labels``) of an image.

        Raises:
            ImageNotFoundError: Unknown id.
        """
        obj = self._doc["objects"].get(image_id)
        if obj is None:
            raise ImageNotFoundError(f"image {image_id!r} not found in store {self._layout.root}")
        return obj

    def label_entry(self, image_id: str, tag: str) -> dict[str, Any]:
        """The manifest entry (``ext`` and ``info``) of one label.

        Raises:
            LabelNotFoundError: No such label.
        """
        obj = self._doc["objects"].get(image_id)
        label = obj["labels"].get(tag) if obj else None
        if label is None:
            raise LabelNotFoundError(f"label {tag!r} of image {image_id!r} not found")
        return label

    # ------------------------------------------------------------------ lock and sync
    def check_writable(self) -> None:
        """Raise ``ReadOnlyError`` when the store is read-only."""
        if self._read_only:
            raise ReadOnlyError(f"store {self._layout.root} is open read-only")

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the store lock (shared with MONAI Label's ``.lock``), re-entrantly.

        Raises:
            ReadOnlyError: The store is read-only.
            StoreLockedError: Another process holds the lock past the timeout.
            StoreLockUnsupportedError: The filesystem has no ``flock``: nothing is written.
        """
        self.check_writable()
        assert self._lock is not None
        with self._lock.held():
            crashpoint("lock.acquired")
            with self._mutex:
                yield

    def _reload(self) -> None:
        self._adopt(self._storage.load() or self._empty_doc())

    def _adopt(self, doc: dict[str, Any]) -> None:
        """Hold ``doc`` as the state read from disk, stale-copy repairs put back in memory."""
        self._doc = doc
        self._repaired_unsaved = False
        self._repair_for_read(doc)

    def _repair_for_read(self, doc: dict[str, Any]) -> None:
        """Put back, in memory, medstore's acknowledged entries a stale copy wrote over.

        Readers then see every acknowledged save even before the next writer rewrites them
        (MONAI Label writes back the copy it loaded, without medstore's saves since).
        """
        try:
            repaired = self._acks.repair(doc, record=False)
        except UnsafePathError:  # a planted link: never read through; every write refuses it
            return
        if repaired:
            self._repaired_unsaved = True
            self._storage.forget_counts()

    def _in_batch(self) -> bool:
        return self._txn is not None and self._txn_thread == threading.get_ident()

    @contextlib.contextmanager
    def reading(self) -> Iterator[None]:
        """Read :attr:`doc` consistently: re-read the manifest if its identity changed.

        No lock is taken (manifest replaces are atomic); inside this thread's own batch the
        document already holds the batch's changes and is not re-read.
        """
        with self._mutex:
            if not self._in_batch() and self._storage.moved_for_read(self._doc):
                doc = self._storage.load()
                if doc is not None:  # a deleted manifest: keep what was read (refresh rebuilds)
                    self._adopt(doc)
            yield

    def _sync_locked(self) -> None:
        """With the lock held: load the latest manifest and complete interrupted saves."""
        self._storage.probe_clock(self._layout.lock)
        changed, reload = self._storage.moved_for_write(self._doc)
        if reload:
            self._reload()
        if changed or not self._repair_checked or self._repaired_unsaved:
            self._repair_checked = True
            # A stale copy written over acknowledged entries (put back by a read, or now), or a
            # manifest another program wrote while the journal held changes (merged): fold it
            # all into the manifest now.
            repaired = self._acks.repair(self._doc) or self._repaired_unsaved
            if repaired or self._journal.merged:
                self._write_full(self._doc)
            self._repaired_unsaved = False
        if self._pending.exist():
            self._pending.recover(self._doc, self._write_full)
        if self._journal.due():
            self._fold_in()
        if self._staging.has_leftovers():
            self._staging.clear_orphans()

    def _empty_doc(self) -> dict[str, Any]:
        return empty_manifest(self._layout.images_dir, self._layout.labels_dir)

    def check_new_names(self, *, image_id: str | None = None, tag: str | None = None) -> None:
        """Refuse an id or tag the filesystem cannot keep apart from an existing one.

        The filesystem's name rules (case folding, Unicode normalisation, refused characters)
        are probed once per writable store; read-only stores and unchanged names pass.

        Raises:
            InvalidIdError: The name cannot be stored here or collides with another (both named).
        """
        names = self.name_index()
        if names is None or (image_id is None and tag is None):
            return
        with self.reading():
            objects = self._doc["objects"]
            if image_id is not None and image_id not in objects:
                names.check_id(image_id, objects)
            if tag is not None:
                names.check_tag(tag, objects, self._layout.labels)

    def name_index(self) -> NameIndex | None:
        """The ids and tags by the name the filesystem sees (for the scans' collision checks).

        Returns:
            The index; ``None`` on a read-only store, or where the filesystem keeps every name
            apart and refuses no character.
        """
        return None if self._name_guard is None else self._name_guard.index()

    # ------------------------------------------------------------------ transactions
    @contextlib.contextmanager
    def mutation(self) -> Iterator[Transaction]:
        """Run one change under the write protocol (or join this thread's open batch).

        An exception inside the block discards the change: staged files are deleted and the
        document is re-read from disk.

        Raises:
            ReadOnlyError: The store is read-only.
            StoreLockedError: The lock is held elsewhere past the timeout.
        """
        self.check_writable()
        if self._txn is not None and self._in_batch():
            yield self._txn
            return
        with self.locked():
            self._sync_locked()
            self._before = {}
            txn = Transaction()
            try:
                yield txn
                if txn:
                    self._pending.commit(txn, self._doc, self._persist)
                    if self._before:  # answered from here on: remembered against stale copies
                        self._acks.append(self._before, self._doc)
            except BaseException:
                txn.discard()
                self._reload()  # nothing of it was committed: drop it all
                raise

    def _persist(self, doc: dict[str, Any]) -> None:
        """Make a committed change durable (a journal record or the whole manifest)."""
        assert self._lock is not None
        if self._storage.persist(doc, self._before, lock=self._lock):
            self._fold_timer.arm()  # MONAI Label sees it within the bound, even if nothing follows

    def _fold_in_background(self) -> None:
        """The fold timer's work: compact now; a failure leaves the journal for a later fold."""
        if self._read_only or not self._journal.records:
            return
        try:
            self.compact()
        except (DatastoreError, OSError) as err:
            logger.warning("journal of %s not folded in: %s", self._layout.root, err)

    def _write_full(self, doc: dict[str, Any]) -> None:
        """Write the whole state, changed in place (repaired), as the manifest."""
        assert self._lock is not None
        self._storage.write_full(doc, lock=self._lock)

    def _fold_in(self) -> None:
        """Fold the journal into the manifest (the state itself unchanged)."""
        assert self._lock is not None
        self._storage.fold(self._doc, lock=self._lock)

    def compact(self) -> int:
        """Fold the journal into ``datastore_v2.json`` now (what MONAI Label reads).

        Returns:
            How many journal records were folded in (0: the manifest was already complete).

        Raises:
            ReadOnlyError: The store is read-only.
            StoreLockedError: The lock is held elsewhere past the timeout.
        """
        with self.locked():
            self._sync_locked()
            folded = self._journal.records
            if folded:
                self._fold_in()
            return folded

    def close(self) -> None:
        """Fold the journal into the manifest, if this session left records in it.

        A store that cannot be locked or written now (held elsewhere, a planted link, a corrupt
        manifest, a full disk) keeps its journal: the records are durable and the next writer
        folds them in. ``close()`` only warns then. A large state frozen out of the garbage
        collector at load is given back to it.
        """
        self._fold_timer.cancel()
        try:
            if not self._read_only and self._journal.records:
                self.compact()
        except (DatastoreError, OSError) as err:  # the records stay: durable, folded in later
            logger.warning("journal of %s not folded in at close: %s", self._layout.root, err)
        finally:
            if self._storage.froze:
                self._storage.froze = False
                gc.unfreeze()

    def patch(self, txn: Transaction, op: str, **args: Any) -> None:
        """Record a manifest patch in ``txn`` and apply it to :attr:`doc` at once."""
        image_id = args.get("image_id")
        if isinstance(image_id, str) and image_id not in self._before:
            obj = self._doc["objects"].get(image_id)
            self._before[image_id] = None if obj is None else deep_copy(obj)
        txn.patch(op, **args)
        apply_patches(self._doc, [txn.patches[-1]])

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Group this thread's mutations into one transaction and one manifest write.

        Re-entrant: a batch inside a batch joins the outer one.
        """
        if self._in_batch():
            yield
            return
        with self.mutation() as txn:
            self._txn, self._txn_thread = txn, threading.get_ident()
            try:
                yield
            finally:
                self._txn, self._txn_thread = None, None

    def clear_stale_manifest_temps(self, root_names: Collection[str] | None = None) -> None:
        """See :meth:`~.document_storage.DocumentStorage.clear_stale_temps` (lock held)."""
        self._storage.clear_stale_temps(root_names)
