"""The manifest journal: O(1) durable saves on a large store, folded into the manifest later.

Rewriting ``datastore_v2.json`` (hundreds of MB at a million images) at every save costs O(N).
On the journal path a save appends one checksummed record instead — the whole new state of every
image it touched, fsynced — to ``.medstore/journal/changes.log``. ``datastore_v2.json`` stays the
document MONAI Label reads and writes; the journal is folded into it by :meth:`compact` (on
``close()``, when the log grows past a threshold, and when its oldest record is older than a bound).

- The log's first record (the *header*) names its *base*: the SHA-256 and size of the manifest
  bytes the records apply to, and the base's store-level fields. Readers apply the records to the
  manifest when the manifest still is that base.
- Each record also carries, for every image it is the first in this journal to touch, that
  image's object in the base (``before``). Base plus records is thus known for every image the
  journal changed, without a copy of the whole base (which would make a save O(N)).
- When another program (MONAI Label) rewrote the manifest in between, the base (as far as the
  journal touched it), the manifest on disk and base + records are merged three ways
  (:mod:`.journal_merge`): neither side's changes are lost, and the writer that notices folds the
  result into the manifest at once.
- Records hold whole objects, so applying one twice changes nothing: a compaction killed after the
  new manifest landed but before the log was replaced leaves a state that reads the same.
- Compaction: the new manifest (atomic replace), then a new log holding only the header naming it
  (atomic replace). A crash at any step leaves either the old manifest with the complete journal,
  or the new manifest with a journal it already contains.

Examples:
    >>> JournalOptions(mode="journal").uses_journal(images=3)
    True
    >>> JournalOptions().uses_journal(images=3)
    False
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import nofollow
from ..crashpoints import crashpoint
from ..durable import atomic_write_bytes, fsync_dir, new_file_mode
from ..errors import ManifestCorruptError
from .journal_merge import merge_document
from .journal_options import JournalOptions
from .json_values import dump_json, load_json
from .manifest import ManifestFile, gc_paused, parse_manifest
from .manifest_schema import validate_manifest
from .record_log import RecordLog, frame
from .store_lock import StoreLock

__all__ = ["ManifestJournal"]

FORMAT_VERSION = 2
_BASE_FILE_VERSION = 1  # the first format: a whole copy of the base beside the log
LOG_NAME = "changes.log"
_BASE_PREFIX = "base-"


OnReplace = Callable[[dict[str, Any] | None, dict[str, Any] | None], None] | None
"""Told an image's object before and after a journal record replaced it."""


def _digest(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def _top_fields(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The store-level fields of a manifest (everything but its objects)."""
    return {k: v for k, v in doc.items() if k != "objects"}


@dataclass(frozen=True)
class _Header:
    version: int
    base: str
    size: int
    top: dict[str, Any]

    def encode(self) -> bytes:
        fields = {"journal": self.version, "base": self.base, "size": self.size, "top": self.top}
        return dump_json(fields)


class ManifestJournal:
    """The journal of one store (``.medstore/journal/``).

    Args:
        side: The store's ``.medstore`` folder.
        file_mode: Permission bits of new journal files (``None``: the umask).
        options: Thresholds and the write path.
    """

    def __init__(self, side: Path, *, file_mode: int | None, options: JournalOptions) -> None:
        self.folder = side / "journal"
        self.options = options
        self._file_mode = file_mode
        self._log = RecordLog(self.folder / LOG_NAME, file_mode=new_file_mode(file_mode))
        self._base_top: dict[str, Any] | None = None  # the manifest's fields, while no log runs
        self._forget()
        self.merged = False
        """Whether the last :meth:`load` merged a manifest another program wrote."""

    def _forget(self) -> None:
        self._signature: tuple[int, int] | None = None
        self._offset = 0
        self._base: str | None = None
        self._records = 0
        self._oldest: float | None = None
        self._seen: set[str] = set()  # images whose base object a record already carries

    # ------------------------------------------------------------------ state on disk
    @property
    def records(self) -> int:
        """Change records not yet folded into the manifest (as last read or written here)."""
        return self._records

    def _stat(self) -> tuple[int, int] | None:
        try:
            st = nofollow.lstat(self._log.path)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_size)

    def due(self, now: float | None = None) -> bool:
        """Whether the journal should be folded into the manifest now."""
        if not self._records:
            return False
        now = time.time() if now is None else now
        return (
            self._records >= self.options.max_records
            or self._offset >= self.options.max_bytes
            or (self._oldest is not None and now - self._oldest >= self.options.compact_after_s)
        )

    # ------------------------------------------------------------------ reading
    def load(
        self, doc: dict[str, Any] | None, manifest: ManifestFile, on_replace: OnReplace = None
    ) -> dict[str, Any] | None:
        """The store's state: the manifest ``doc`` (as ``manifest`` read it), journal applied.

        Args:
            doc: The manifest as read (``None``: no manifest file).
            manifest: The manifest file (its bytes as read name the base).
            on_replace: Told each image's object before and after a record replaced it (not
                when the journal is merged with a manifest another program wrote: see
                :attr:`merged`).

        Returns:
            The state (``doc`` itself, changed in place, unless it was ``None``).

        Raises:
            ManifestCorruptError: The journal cannot be trusted.
            FileNotFoundError: The base copy a first-format log names is gone (a compaction ran
                meanwhile: read the manifest again).
        """
        self.merged = False
        self._forget()
        self._base_top = None if doc is None else _top_fields(doc)
        self._signature = self._stat()
        contents = self._log.read()
        if not contents.records:
            self._offset = contents.end
            return doc
        header = self._parse_header(contents.records[0])
        changes = [self._parse_change(r) for r in contents.records[1:]]
        raw = manifest.last_bytes
        if doc is not None and raw is not None and len(raw) == header.size:
            is_base = manifest.last_digest == header.base
        else:
            is_base = False
        if is_base:
            assert doc is not None
            self._apply_all(doc, changes, on_replace)
        else:
            doc = self._merge_with_base(doc, header, changes)
            self.merged = True
        self._base, self._offset, self._records = header.base, contents.end, len(changes)
        self._oldest = changes[0]["t"] if changes else None
        if not is_base:
            for change in changes:
                self._seen.update(change["objects"])
        return doc

    def catch_up(self, doc: dict[str, Any], on_replace: OnReplace = None) -> bool | None:
        """Apply records other processes appended since the last look (O(new records)).

        Args:
            doc: The state, changed in place.
            on_replace: Told each image's object before and after a record replaced it.

        Returns:
            ``True`` if records were applied, ``False`` if the log is unchanged, ``None`` when
            it was replaced or cut (a compaction): read the whole state again.
        """
        signature = self._stat()
        if signature == self._signature:
            return False
        if (
            signature is None
            or self._signature is None
            or signature[0] != self._signature[0]
            or signature[1] < self._offset
        ):
            return None
        contents = self._log.read(offset=self._offset)
        changes = [self._parse_change(r) for r in contents.records]
        self._apply_all(doc, changes, on_replace)
        if changes and self._oldest is None:
            self._oldest = changes[0]["t"]
        self._records += len(changes)
        self._offset = contents.end
        self._signature = (signature[0], contents.end) if not contents.torn else signature
        return True

    def _merge_with_base(
        self, theirs: dict[str, Any] | None, header: _Header, changes: list[dict[str, Any]]
    ) -> dict[str, Any]:
        base = self._base_document(header, changes)
        ours: dict[str, Any] = {"objects": {}}
        for change in changes:
            ours["objects"].update(change["objects"])
            ours["name"], ours["description"] = change["name"], change["description"]
        if theirs is None:
            # The manifest itself was deleted: what the journal knows (the base's fields, the
            # images it touched) is kept; a refresh brings back the images found on disk.
            for change in changes:
                self._apply(base, change)
            return base
        return merge_document(base, theirs, ours)

    def _base_document(self, header: _Header, changes: list[dict[str, Any]]) -> dict[str, Any]:
        """The base as far as the journal touched it: its fields and those images' objects."""
        if header.version == _BASE_FILE_VERSION:
            path = self.folder / f"{_BASE_PREFIX}{header.base}.json"
            raw = nofollow.read_bytes(path)  # FileNotFoundError: replaced by a compaction
            if _digest(raw) != header.base:
                raise ManifestCorruptError(f"journal base {path} does not match its checksum")
            return parse_manifest(raw, source=str(path))
        objects: dict[str, Any] = {}
        for change in changes:
            for image_id, obj in change["before"].items():
                objects.setdefault(image_id, obj)
        missing = {i for change in changes for i in change["objects"]} - objects.keys()
        if missing:
            raise ManifestCorruptError(
                f"journal {self._log.path}: no base object for {len(missing)} changed image(s)"
            )
        return {"name": "", "description": "", **header.top, "objects": objects}

    def _parse_header(self, payload: bytes) -> _Header:
        try:
            fields = load_json(payload)
            version, base, size = fields["journal"], fields["base"], fields["size"]
            top = fields.get("top", {})
            ok = version in (FORMAT_VERSION, _BASE_FILE_VERSION) and isinstance(base, str)
            ok = ok and len(base) == 64 and isinstance(size, int) and isinstance(top, dict)
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise ManifestCorruptError(f"journal {self._log.path}: unreadable header") from err
        if not ok:
            raise ManifestCorruptError(f"journal {self._log.path}: unknown header {fields!r}")
        return _Header(version, base, size, top)

    def _parse_change(self, payload: bytes) -> dict[str, Any]:
        """A change record, validated as the manifest is (ids, paths, values)."""
        where = f"journal {self._log.path}"
        try:
            change = load_json(payload)
            objects, t = change["objects"], change["t"]
            name, description = change["name"], change["description"]
            before = change.setdefault("before", {})
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise ManifestCorruptError(f"{where}: unreadable record") from err
        if not (isinstance(objects, dict) and isinstance(before, dict)):
            raise ManifestCorruptError(f"{where}: malformed record")
        if not isinstance(t, (int, float)) or not before.keys() <= objects.keys():
            raise ManifestCorruptError(f"{where}: malformed record")
        with gc_paused():
            for side in (before, objects):
                present = {k: v for k, v in side.items() if v is not None}
                probe = {"name": name, "description": description, "objects": present}
                validate_manifest(probe, source=where)
        change["name"], change["description"] = probe["name"], probe["description"]
        return change

    def _apply_all(
        self, doc: dict[str, Any], changes: list[dict[str, Any]], on_replace: OnReplace
    ) -> None:
        objects = doc["objects"]
        for change in changes:
            if on_replace is not None:
                for image_id, obj in change["objects"].items():
                    on_replace(objects.get(image_id), obj)
            self._apply(doc, change)
            self._seen.update(change["objects"])

    @staticmethod
    def _apply(doc: dict[str, Any], change: Mapping[str, Any]) -> None:
        objects = doc["objects"]
        for image_id, obj in change["objects"].items():
            if obj is None:
                objects.pop(image_id, None)
            else:
                objects[image_id] = obj
        doc["name"], doc["description"] = change["name"], change["description"]

    # ------------------------------------------------------------------ writing
    def append(
        self,
        doc: dict[str, Any],
        before: Mapping[str, dict[str, Any] | None],
        *,
        lock: StoreLock,
        manifest: ManifestFile,
    ) -> None:
        """Durably record the current state of the images in ``before`` (and the store's fields).

        The first record after a compaction (or ever) also writes the header.

        Args:
            doc: The state, the change applied.
            before: Each image the change touched, with its object before the change (``None``:
                it did not exist).
            lock: The store lock (held).
            manifest: The manifest file; its bytes as last read or written are the base.

        Raises:
            OSError: Nothing was recorded (``record_landed = None``: it may have been).
        """
        if self._base is None:
            self._start(manifest)
        objects = doc["objects"]
        record = {
            "t": time.time(),
            "objects": {i: objects.get(i) for i in before},
            "before": {i: obj for i, obj in before.items() if i not in self._seen},
            "name": doc["name"],
            "description": doc["description"],
        }
        self._offset = self._log.append(dump_json(record), lock=lock)
        self._signature = self._stat()
        self._seen.update(before)
        if self._oldest is None:
            self._oldest = record["t"]
        self._records += 1

    def _start(self, manifest: ManifestFile) -> None:
        raw, digest = manifest.last_bytes, manifest.last_digest
        if raw is None or digest is None or self._base_top is None:
            raise ManifestCorruptError("the journal needs a manifest on disk to start from")
        nofollow.makedirs(self.folder)
        header = frame(_Header(FORMAT_VERSION, digest, len(raw), self._base_top).encode())
        atomic_write_bytes(self._log.path, header, mode=self._file_mode, point="journal")
        self._forget()
        self._base, self._offset = digest, len(header)

    def compact(
        self, doc: dict[str, Any], manifest: ManifestFile, *, lock: StoreLock, keep: bool
    ) -> None:
        """Fold the journal into the manifest: write ``doc`` as the manifest, then reset.

        Args:
            doc: The full state.
            manifest: The manifest file.
            lock: The store lock (held).
            keep: Start the next journal at once (its header written now, so the next save
                stays O(1)); ``False`` removes the journal (direct path).

        Raises:
            OSError: A step failed; what is on disk still reads as the full state.
        """
        had_journal = self._base is not None or self._stat() is not None
        manifest.write(doc)
        self._base_top = _top_fields(doc)
        if not had_journal and not keep:
            return
        crashpoint("journal.compact_manifest")
        if keep:
            self._start(manifest)
        else:
            with contextlib.suppress(FileNotFoundError):
                nofollow.unlink(self._log.path)
                fsync_dir(self.folder)
            self._forget()
        crashpoint("journal.compact_log")
        self._signature = self._stat()
        self._drop_base_copies()

    def _drop_base_copies(self) -> None:
        """Delete whole base copies the first format kept beside its log."""
        try:
            names = nofollow.listdir(self.folder)
        except FileNotFoundError:
            return
        for name in names:
            if name.startswith(_BASE_PREFIX):
                with contextlib.suppress(FileNotFoundError):
                    nofollow.unlink(self.folder / name)
