"""Where a store's document lives on disk: ``datastore_v2.json``, plus the journal on large stores.

:class:`DocumentStorage` reads the state (the manifest with the journal applied, consistently
even while another process compacts), tells whether another process changed it, and makes a
committed change durable: one journal record on the journal path, the whole manifest otherwise.
The session decides *when* (under its lock); this module decides *where* and *how*.

Examples:
    >>> import tempfile, pathlib
    >>> from medstore.datastore.store.layout import StoreLayout
    >>> storage = DocumentStorage(
    ...     StoreLayout(pathlib.Path(tempfile.mkdtemp())), file_mode=None,
    ...     options=JournalOptions(mode="direct"))
    >>> storage.load() is None  # no manifest yet
    True
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import time
from collections.abc import Collection
from pathlib import Path
from typing import Any

from ..errors import ManifestCorruptError, UnsafePathError
from .fs_probe import timestamp_granularity_ns
from .journal import ManifestJournal
from .journal_options import JournalOptions
from .label_counts import LabelCounts
from .layout import StoreLayout
from .manifest import ManifestFile, gc_paused, keep_out_of_gc
from .store_lock import StoreLock

__all__ = ["DocumentStorage", "read_settled"]

# A manifest that fails to parse but was modified this recently may be half-way through an
# in-place rewrite (MONAI Label truncates, then writes): it is re-read for up to _SETTLE_S.
_YOUNG_S = 2.0
_SETTLE_S = 1.0
_SETTLE_STEP_S = 0.02


def read_settled(manifest: ManifestFile) -> dict[str, Any] | None:
    """Read the manifest, waiting briefly if it is corrupt but was just modified.

    Args:
        manifest: The manifest file.

    Returns:
        The manifest dict, or ``None`` when the file does not exist.

    Raises:
        ManifestCorruptError: Still unreadable after the wait, or not recently modified.
    """
    deadline = time.monotonic() + _SETTLE_S
    while True:
        try:
            return manifest.read()
        except ManifestCorruptError:
            try:
                age = time.time() - os.stat(manifest.path).st_mtime
            except FileNotFoundError:
                continue
            if age > _YOUNG_S or time.monotonic() > deadline:
                raise
            time.sleep(_SETTLE_STEP_S)


class DocumentStorage:
    """The manifest file and the journal of one store.

    Args:
        layout: The store's layout.
        file_mode: Permission bits of new files (``None``: the umask).
        options: The write path and when the journal is folded in.

    Attributes:
        manifest: ``datastore_v2.json``.
        journal: ``.medstore/journal/``.
    """

    def __init__(
        self, layout: StoreLayout, *, file_mode: int | None, options: JournalOptions
    ) -> None:
        self.manifest = ManifestFile(layout.manifest, file_mode=file_mode)
        self.journal = ManifestJournal(layout.side, file_mode=file_mode, options=options)
        self._counts: LabelCounts | None = None
        self._clock_probed = False
        self.froze = False
        """Whether a state this storage loaded was frozen out of the garbage collector."""

    def probe_clock(self, lock_file: Path) -> None:
        """Once: trust the manifest's stat signature only when older than two timestamp ticks.

        Args:
            lock_file: The held lock file (probed in place: nothing is created).
        """
        if self._clock_probed:
            return
        self._clock_probed = True
        with contextlib.suppress(OSError):
            tick = timestamp_granularity_ns(lock_file)
            self.manifest.racy_window_ns = max(self.manifest.racy_window_ns, 2 * tick)

    def counts(self, doc: dict[str, Any]) -> LabelCounts:
        """The label counts of ``doc``: the state last loaded, with every change since.

        Taken while the manifest is checked at a load (and moved along by the journal's
        records), otherwise counted once (O(images)); then kept by :meth:`persist` and the
        journal's catch-up.
        """
        if self._counts is None:
            self._counts = LabelCounts.of(doc["objects"])
        return self._counts

    def forget_counts(self) -> None:
        """The state was changed in place outside :meth:`persist` (a repair): count it again."""
        self._counts = None

    def _on_replace(self, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        if self._counts is not None:
            self._counts.replace(old, new)

    def load(self) -> dict[str, Any] | None:
        """The state on disk: the manifest with the journal applied (``None``: no manifest).

        Without the lock a compaction may run meanwhile: the manifest is read again until it
        did not change while the journal was read.

        Raises:
            ManifestCorruptError: The manifest or the journal cannot be trusted.
        """
        with gc_paused():  # a large state is frozen before the collector ever walks it
            return self._load()

    def _load(self) -> dict[str, Any] | None:
        for _ in range(20):
            doc = read_settled(self.manifest)
            tags = self.manifest.last_tag_counts  # counted while the manifest was checked
            if doc is None or tags is None:
                self._counts = None
            else:
                self._counts = LabelCounts.from_tags(len(doc["objects"]), tags)
            try:
                state = self.journal.load(doc, self.manifest, self._on_replace)
            except FileNotFoundError:  # the base copy a first-format log named was just replaced
                continue
            if self.journal.merged:
                self._counts = None  # counted again when first asked
            if not self.manifest.changed(strict=False):
                self.froze = keep_out_of_gc(state) or self.froze
                return state
        raise ManifestCorruptError(f"manifest {self.manifest.path} keeps changing while read")

    def clear_stale_temps(self, root_names: Collection[str] | None = None) -> None:
        """Delete temp files of manifest writes killed mid-way (call with the lock held: then
        none is in use).

        Args:
            root_names: Names the manifest's folder was just found to hold, among them any such
                temp (spares listing a folder that holds 10^6 images again); ``None``: list it.
        """
        folder = self.manifest.path.parent
        pattern = f".{self.manifest.path.name}.*.tmp"
        names = os.listdir(folder) if root_names is None else root_names
        for name in fnmatch.filter(names, pattern):
            (folder / name).unlink(missing_ok=True)

    def moved_for_read(self, doc: dict[str, Any]) -> bool:
        """Catch ``doc`` up with new journal records; ``True``: read it all again (:meth:`load`).

        A ``.medstore`` planted as a link is never gone through: reads keep the state read so
        far (every write refuses the link, so no acknowledged save can hide behind it).
        """
        if self.manifest.changed(strict=False):
            return True
        try:
            return self.journal.catch_up(doc, self._on_replace) is None
        except UnsafePathError:
            return False

    def moved_for_write(self, doc: dict[str, Any]) -> tuple[bool, bool]:
        """With the lock held: ``(manifest changed, read it all again)``; catches ``doc`` up.

        The manifest is compared byte for byte when its timestamp is too recent to trust.
        """
        changed = self.manifest.changed(strict=True)
        return changed, changed or self.journal.catch_up(doc, self._on_replace) is None

    def uses_journal(self, doc: dict[str, Any]) -> bool:
        """Whether a save to ``doc`` goes to the journal (it needs a manifest to start from)."""
        return self.manifest.last_bytes is not None and self.journal.options.uses_journal(
            images=len(doc["objects"])
        )

    def persist(self, doc: dict[str, Any], touched: dict[str, Any], *, lock: StoreLock) -> bool:
        """Make a committed change durable: one journal record, or the whole manifest.

        Args:
            doc: The state, the change applied.
            touched: Each image the change touched, with its object before the change
                (``None``: it did not exist).
            lock: The store lock (held).

        Returns:
            ``True`` when the change waits in the journal (not yet in the manifest).

        Raises:
            OSError: Nothing was made durable; ``manifest_landed = True`` when the record may
                have landed (it is then rolled forward, never back).
        """
        if self._counts is not None:
            for image_id, old in touched.items():
                self._counts.replace(old, doc["objects"].get(image_id))
        if not self.uses_journal(doc):
            self.fold(doc, lock=lock)
            return False
        try:
            self.journal.append(doc, touched, lock=lock, manifest=self.manifest)
        except OSError as err:
            if getattr(err, "record_landed", False) is None:  # it may be replayed: roll forward
                err.manifest_landed = True  # type: ignore[attr-defined]
            raise
        if self.journal.due():
            self.fold(doc, lock=lock)
            return False
        return True

    def write_full(self, doc: dict[str, Any], *, lock: StoreLock) -> None:
        """Write the whole state as the manifest, folding the journal (if any) into it.

        ``doc`` may have been changed in place since the counts were kept: they are dropped.
        """
        self.forget_counts()
        self.fold(doc, lock=lock)

    def fold(self, doc: dict[str, Any], *, lock: StoreLock) -> None:
        """Write the state, unchanged since it was last read or persisted, as the manifest."""
        self.journal.compact(doc, self.manifest, lock=lock, keep=self.uses_journal(doc))
