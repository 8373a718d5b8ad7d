"""``LocalDatastore``: MONAI Label's local datastore API on crash-safe, multi-process-safe files.

Every mutation follows one protocol: take the store lock, re-read the manifest if another process
changed it, apply the change to that fresh state, write durably, then return. Reads use the
in-memory manifest, re-read whenever the file's identity changed.

Examples:
    >>> import tempfile
    >>> with LocalDatastore(tempfile.mkdtemp()) as store:
    ...     store.status()["total"]
    0
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import filelock

from ..durable import crashpoint
from ..errors import (
    ReadOnlyError,
    StoreLockedError,
)
from .catalog import FINAL_TAG, QueriesMixin
from .history import LabelHistory
from .image_writes import MutationsMixin
from .label_writes import LabelMutationsMixin
from .layout import StoreLayout
from .manifest import ManifestFile, empty_manifest
from .reconcile import reconcile
from .scan import DiskState, scan_disk
from .staging import StagingArea
from .transaction import PendingRecords, Transaction, apply_patches

if TYPE_CHECKING:
    from ..annotations.storage import AnnotationStore
    from ..watch.watcher import WatchOptions

__all__ = ["DEFAULT_EXTENSIONS", "DefaultLabelTag", "LocalDatastore"]

logger = logging.getLogger(__name__)
logging.getLogger("filelock").setLevel(logging.ERROR)

DEFAULT_EXTENSIONS: tuple[str, ...] = ("*.nii.gz", "*.nii", "*.dcm")


class DefaultLabelTag:
    """MONAI Label's reserved tags."""

    FINAL = FINAL_TAG
    ORIGINAL = "original"


class LocalDatastore(QueriesMixin, MutationsMixin, LabelMutationsMixin):
    """A MONAI Label studies folder, opened for reading and durable writing.

    Args:
        datastore_path: The store folder (created unless ``read_only``).
        images_dir: Images folder relative to the root (a manifest's own value wins).
        labels_dir: Labels folder relative to the root (a manifest's own value wins).
        datastore_config: Manifest file name.
        extensions: File-name patterns of images and labels (MONAI Label's meaning).
        auto_reload: Watch the folders and index files that appear.
        read_only: Never write anything: no lock file, no folders; mutators raise.
        lock_timeout: Seconds to wait for the store lock before ``StoreLockedError``.
        watch: ``"native"`` (inotify/FSEvents) or ``"poll"`` (NFS/SMB) when ``auto_reload``.
        file_mode: Permission bits for new files (e.g. ``0o600`` for patient data); ``None``
            follows the process umask. Replaced files always keep their own mode.
        refresh: Reconcile with the disk on opening (MONAI Label does). ``False`` opens the
            manifest as it is and writes nothing until a mutator is called (what datasets,
            DataLoader workers and torch.distributed ranks use).
        watch_options: Timing of the watcher (debounce, stability window, poll interval...).

    Raises:
        ManifestCorruptError: The manifest cannot be trusted (it is never overwritten).
        StoreLockedError: The lock is held elsewhere past ``lock_timeout``.
        FileNotFoundError: ``read_only`` and the folder does not exist.

    Examples:
        >>> import tempfile
        >>> store = LocalDatastore(tempfile.mkdtemp(), lock_timeout=5.0)
        >>> store.list_images()
        []
    """

    def __init__(
        self,
        datastore_path: str | os.PathLike[str],
        images_dir: str = ".",
        labels_dir: str = "labels",
        datastore_config: str = "datastore_v2.json",
        extensions: Sequence[str] | str = DEFAULT_EXTENSIONS,
        auto_reload: bool = False,
        read_only: bool = False,
        *,
        lock_timeout: float = 30.0,
        watch: Literal["native", "poll"] = "native",
        file_mode: int | None = None,
        refresh: bool = True,
        watch_options: WatchOptions | None = None,
    ) -> None:
        root = Path(datastore_path).absolute()
        self._extensions: tuple[str, ...] = (
            (extensions,) if isinstance(extensions, str) else tuple(extensions)
        )
        self._read_only = read_only
        self._lock_timeout = lock_timeout
        self._file_mode = file_mode
        self._mutex = threading.RLock()
        self._txn: Transaction | None = None
        self._txn_thread: int | None = None
        self._watcher: Any = None
        self._annotations: AnnotationStore | None = None
        self._manifest = ManifestFile(root / datastore_config, file_mode=file_mode)
        if read_only and not root.is_dir():
            raise FileNotFoundError(f"store folder {root} does not exist")
        self._lock = None if read_only else filelock.FileLock(root / ".lock", timeout=lock_timeout)
        doc = self._manifest.read()
        self._doc: dict[str, Any] = doc or empty_manifest(images_dir, labels_dir)
        self._layout = StoreLayout(root, self._doc["images_dir"] or ".", self._doc["labels_dir"])
        self._history = LabelHistory(self._layout)
        self._staging = StagingArea(self._layout.side_path("pending"), file_mode=file_mode)
        self._pending = PendingRecords(root, self._layout.side_path("pending"))
        if not read_only and refresh:
            for folder in (self._layout.images, self._layout.labels):
                folder.mkdir(parents=True, exist_ok=True)
            for tag in (DefaultLabelTag.FINAL, DefaultLabelTag.ORIGINAL):
                (self._layout.labels / tag).mkdir(exist_ok=True)
            self.refresh()
        elif doc is None:
            self._reconcile_in_memory()
        if auto_reload:
            self._start_watcher(watch, watch_options)

    # ------------------------------------------------------------------ plumbing
    @property
    def root(self) -> Path:
        """The store folder."""
        return self._layout.root

    @property
    def read_only(self) -> bool:
        """Whether the store was opened read-only."""
        return self._read_only

    @property
    def layout(self) -> StoreLayout:
        """Where the store's files live."""
        return self._layout

    @property
    def extensions(self) -> tuple[str, ...]:
        """The configured file-name patterns."""
        return self._extensions

    @property
    def annotations(self) -> AnnotationStore:
        """Entity annotations (boxes, lines, skeletons...) of this store's images."""
        from ..annotations.storage import AnnotationStore

        if self._annotations is None:
            self._annotations = AnnotationStore(self)
        return self._annotations

    def side_path(self, *parts: str) -> Path:
        """A path under ``<root>/.medstore/`` (not created)."""
        return self._layout.side_path(*parts)

    def check_writable(self) -> None:
        """Raise ``ReadOnlyError`` when the store is read-only."""
        if self._read_only:
            raise ReadOnlyError(f"store {self.root} is open read-only")

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the store lock (shared with MONAI Label's ``.lock``), re-entrantly.

        Raises:
            ReadOnlyError: The store is read-only.
            StoreLockedError: Another process holds the lock past the timeout.
        """
        self.check_writable()
        assert self._lock is not None
        try:
            self._lock.acquire()
        except filelock.Timeout as err:
            raise StoreLockedError(
                f"store {self.root} is locked by another process "
                f"(waited {self._lock_timeout:g} s for {self._layout.lock})"
            ) from err
        try:
            crashpoint("lock.acquired")
            with self._mutex:
                yield
        finally:
            self._lock.release()

    def _sync_for_read(self) -> None:
        """Re-read the manifest if its identity changed (no lock: replaces are atomic)."""
        if self._txn_thread != threading.get_ident() and self._manifest.changed(strict=False):
            with self._mutex:
                doc = self._manifest.read()
                if doc is not None:
                    self._doc = doc

    def _sync_locked(self) -> None:
        """With the lock held: complete interrupted saves and load the latest manifest."""
        if self._manifest.changed(strict=True):
            doc = self._manifest.read()
            self._doc = (
                doc
                if doc is not None
                else empty_manifest(self._layout.images_dir, self._layout.labels_dir)
            )
        if self._pending.exist():
            self._pending.recover(self._doc, self._manifest.write)
        if self._staging.has_leftovers():
            self._staging.clear_orphans()

    @contextlib.contextmanager
    def _mutation(self) -> Iterator[Transaction]:
        """Run one change under the write protocol (or join the open ``batch()``)."""
        self.check_writable()
        if self._txn is not None and self._txn_thread == threading.get_ident():
            yield self._txn
            return
        with self.locked():
            self._sync_locked()
            txn = Transaction()
            try:
                yield txn
                if txn:
                    self._pending.commit(txn, self._doc, self._manifest.write)
            except BaseException:
                txn.discard()
                self._doc = self._manifest.read() or self._doc
                raise

    def _patch(self, txn: Transaction, op: str, **args: Any) -> None:
        txn.patch(op, **args)
        apply_patches(self._doc, [txn.patches[-1]])

    @contextlib.contextmanager
    def batch(self) -> Iterator[LocalDatastore]:
        """Group many changes into one locked transaction and one manifest write.

        An exception inside the block discards every change of the batch.

        Examples:
            >>> import tempfile
            >>> store = LocalDatastore(tempfile.mkdtemp())
            >>> with store.batch():
            ...     store.set_name("a")
            ...     store.set_description("b")
            >>> store.name(), store.description()
            ('a', 'b')
        """
        if self._txn is not None and self._txn_thread == threading.get_ident():
            yield self
            return
        with self._mutation() as txn:
            self._txn, self._txn_thread = txn, threading.get_ident()
            try:
                yield self
            finally:
                self._txn, self._txn_thread = None, None

    def close(self) -> None:
        """Stop the watcher, if any. The store stays readable."""
        if self._watcher is not None:
            self._watcher.stop()
            self._watcher = None

    def __enter__(self) -> LocalDatastore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _start_watcher(
        self, watch: Literal["native", "poll"], options: WatchOptions | None
    ) -> None:
        from ..watch.watcher import StoreWatcher

        self._watcher = StoreWatcher(self, mode=watch, options=options)
        self._watcher.start()

    # ------------------------------------------------------------------ refresh
    def _linked_ids(self) -> set[str]:
        return {k for k, v in self._doc["objects"].items() if v["image"]["info"].get("source_path")}

    def _scan(self) -> DiskState:
        from .imaging_hooks import series_sniffer

        return scan_disk(
            self._layout,
            self._extensions,
            linked=self._linked_ids(),
            is_series=series_sniffer(self._extensions),
        )

    def _reconcile_in_memory(self) -> None:
        reconcile(self._doc, self._scan(), [])

    def refresh(self, *, accept: Callable[[Path], bool] | None = None) -> DiskState:
        """Reconcile the manifest with the files on disk; write only if something changed.

        One directory scan per folder and set differences. Label files without an image are
        reported in the log, never deleted; links pointing outside the root are not indexed.

        Args:
            accept: Optional test a *new* file must pass to be indexed now (the watcher's
                stability rule); files failing it are left for a later refresh.

        Returns:
            What the scan found (``orphans``: label files without an image; ``skipped``).

        Raises:
            ReadOnlyError: On a read-only store.
        """
        self.check_writable()
        with self._mutation() as txn:
            patches: list[dict[str, Any]] = []
            state = self._scan()
            if accept is not None:
                state = self._filter_new(state, accept)
            reconcile(self._doc, state, patches)
            txn.patches.extend(patches)
            if state.orphans:
                logger.warning("label files without an image: %s", ", ".join(state.orphans[:20]))
            self._clear_stale_manifest_temps()
        return state

    def _clear_stale_manifest_temps(self) -> None:
        """Delete temp files of manifest writes killed mid-way (lock held: none is in use)."""
        for stale in self.root.glob(f".{self._manifest.path.name}.*.tmp"):
            stale.unlink(missing_ok=True)

    def _filter_new(self, state: DiskState, accept: Callable[[Path], bool]) -> DiskState:
        """Drop not-yet-indexed files that ``accept`` refuses (e.g. still being copied)."""
        objects = self._doc["objects"]
        for image_id, ext in list(state.images.items()):
            if image_id not in objects and not accept(self._layout.image_path(image_id, ext)):
                del state.images[image_id]
        for tag, found in state.labels.items():
            for image_id, ext in list(found.items()):
                known = objects.get(image_id, {}).get("labels", {}).get(tag)
                fresh = known is None or known["ext"] != ext
                if image_id not in state.images or (
                    fresh and not accept(self._layout.label_path(tag, image_id, ext))
                ):
                    del found[image_id]
        return state
