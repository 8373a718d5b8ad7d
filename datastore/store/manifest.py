"""Reading, validating and durably writing ``datastore_v2.json``.

A manifest is refused, never repaired in place, when it is empty, truncated, not JSON, BOM-prefixed,
holds duplicate keys, breaks MONAI Label's schema, or names paths outside the store. The in-memory
form is plain dicts in MONAI Label's shape; :class:`ManifestFile` tracks the file's identity
(inode, size, mtime_ns, bytes) so a writer re-reads it whenever another process changed it.

Examples:
    >>> doc = parse_manifest(b'{"name": "n", "description": "", "objects": {}}', source="m.json")
    >>> doc["labels_dir"]
    'labels'
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from .. import nofollow
from ..durable import atomic_write_bytes
from ..errors import ManifestCorruptError
from . import json_values
from .manifest_schema import validate_manifest

_LOG = logging.getLogger(__name__)

__all__ = [
    "ManifestFile",
    "deep_copy",
    "empty_manifest",
    "freeze_if_large",
    "gc_paused",
    "parse_manifest",
    "serialize_manifest",
]

# A file whose mtime is this close to our last look may have changed again within one
# timestamp tick: compare its bytes instead of trusting the stat signature (racy-git rule).
_RACY_WINDOW_NS = 50_000_000


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while building large acyclic JSON-shaped data.

    Such data allocates many containers that cannot form cycles; a full collection triggered
    halfway only adds a pause proportional to the whole heap.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


FREEZE_FROM_IMAGES = 50_000
"""From this many images a loaded state is moved out of the garbage collector's sight."""


def keep_out_of_gc(doc: dict[str, Any] | None) -> bool:
    """Spare a large loaded state the cyclic collector's full passes (``gc.freeze``).

    A state of N images is ~10 N containers, none in a cycle (they are freed by reference
    counting when replaced). Left to the collector, the first full collection after a load walks
    them all, a pause of about 1 s per 10^5 images in whatever call happens to trigger it (a
    save's p99 at 10^6 images: 10 s). Frozen, they are never walked. Freezing applies to every
    object alive in the process at that moment, which is why it is kept to large states; a
    store's ``close()`` gives them back to the collector (``gc.unfreeze``).

    Returns:
        Whether the state was frozen.
    """
    return doc is not None and freeze_if_large(len(doc["objects"]))


def freeze_if_large(count: int) -> bool:
    """``gc.freeze()`` when ``count`` (images, or records built for as many) reaches
    :data:`FREEZE_FROM_IMAGES`: call it before the collector runs again after building them.

    Returns:
        Whether everything alive was frozen.

    Example:
        >>> freeze_if_large(10)
        False
    """
    if count < FREEZE_FROM_IMAGES:
        return False
    gc.freeze()
    return True


def deep_copy(value: Any) -> Any:
    """A deep copy of JSON-shaped data (an order of magnitude faster than ``copy.deepcopy``)."""
    with gc_paused():
        return json_values.deep_copy(value)


def empty_manifest(images_dir: str, labels_dir: str) -> dict[str, Any]:
    """A new manifest with MONAI Label's defaults.

    Args:
        images_dir: Images folder relative to the root.
        labels_dir: Labels folder relative to the root.

    Returns:
        The manifest dict.
    """
    return {
        "name": "new-dataset",
        "description": "New Dataset",
        "images_dir": images_dir,
        "labels_dir": labels_dir,
        "objects": {},
    }


# msgspec builds the dicts of a large manifest about twice as fast as orjson; what it reads
# differently (duplicate keys, huge integers) fails the re-serialisation check below.
_JSON_DECODER = msgspec.json.Decoder()


def _decode(raw: bytes, source: str) -> Any:
    if not raw.strip():
        raise ManifestCorruptError(f"manifest {source} is empty")
    if raw.startswith(b"\xef\xbb\xbf"):
        raise ManifestCorruptError(f"manifest {source} starts with a byte-order mark")
    try:
        doc = _JSON_DECODER.decode(raw)
    except (msgspec.DecodeError, RecursionError):
        # NaN, Infinity (Python's json writes them), numbers out of range, deep nesting, or not
        # JSON at all: Python's exact reading decides (and names what is wrong).
        return json_values.loads_exact(raw, source=source)
    # Fast proof of no duplicate keys and exact values: our own (and MONAI Label's) formatting
    # re-serialises to the same bytes only when nothing was dropped or rounded (integers beyond
    # 64 bits cannot be re-serialised). Anything else takes Python's exact reading.
    try:
        same = serialize_manifest(doc) == raw
    except TypeError:
        same = False
    return doc if same else json_values.loads_exact(raw, source=source)


def parse_manifest(
    raw: bytes, *, source: str, tag_counts: dict[str, int] | None = None
) -> dict[str, Any]:
    """Parse and validate manifest bytes into MONAI Label's dict shape (defaults filled in).

    The bytes are refused here (empty, byte-order mark, duplicate keys, too deep); the content
    is checked by :func:`~.manifest_schema.validate_manifest`, as MONAI Label's models are.

    Args:
        raw: The file's bytes.
        source: The path to name in errors.

    Returns:
        The manifest dict.

    Raises:
        ManifestCorruptError: Any reason the manifest cannot be trusted.
    """
    with gc_paused():  # ~10 containers per image, none in a cycle: no collection needed
        return validate_manifest(_decode(raw, source), source=source, tag_counts=tag_counts)


def serialize_manifest(doc: dict[str, Any]) -> bytes:
    """Serialise like MONAI Label (``json.dumps(indent=2)``), byte-identical for ASCII content.

    Args:
        doc: The manifest dict.

    Returns:
        UTF-8 JSON bytes.
    """
    return json_values.dump_json(doc, indent=True)


@dataclass(frozen=True)
class _Signature:
    inode: int
    size: int
    mtime_ns: int


class _Digest:
    """The SHA-256 of a manifest's bytes, computed once, when first asked.

    Hashing releases the interpreter lock, so a large manifest being read is hashed in a thread
    while its JSON is parsed (``beside_parse``): the journal's first save then finds it ready.
    """

    _THREAD_FROM = 8 << 20

    def __init__(self, raw: bytes, *, beside_parse: bool = False) -> None:
        self._raw: bytes | None = raw
        self._hex: str | None = None
        self._thread: threading.Thread | None = None
        if beside_parse and len(raw) >= self._THREAD_FROM:
            self._thread = threading.Thread(target=self._compute, daemon=True)
            self._thread.start()

    def _compute(self) -> None:
        if self._raw is not None:
            self._hex, self._raw = hashlib.sha256(self._raw).hexdigest(), None

    @property
    def hex(self) -> str:
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._compute()
        assert self._hex is not None
        return self._hex


class ManifestFile:
    """The manifest on disk, with change detection across processes.

    Args:
        path: The manifest's path.
        file_mode: Permission bits for a newly created manifest (``None``: umask).
    """

    def __init__(self, path: Path, *, file_mode: int | None = None) -> None:
        self.path = path
        self._file_mode = file_mode
        self._signature: _Signature | None = None
        self._bytes: bytes | None = None
        self._digest: _Digest | None = None
        self._seen_at_ns = 0
        self.last_tag_counts: dict[str, int] | None = None
        """Images per label tag in the manifest as last read (``None``: not read, or written)."""
        self.racy_window_ns = _RACY_WINDOW_NS
        """How recent (ns) an unchanged signature may be and still need a byte compare."""

    def _stat(self) -> _Signature | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return _Signature(st.st_ino, st.st_size, st.st_mtime_ns)

    def exists(self) -> bool:
        """Whether the manifest file exists."""
        return self._stat() is not None

    @property
    def last_bytes(self) -> bytes | None:
        """The file's bytes as this process last read or wrote them (``None``: no file)."""
        return self._bytes

    @property
    def last_digest(self) -> str | None:
        """The SHA-256 (hex) of :attr:`last_bytes` (``None``: no file)."""
        return None if self._digest is None else self._digest.hex

    def changed(self, *, strict: bool = True) -> bool:
        """Whether the file may differ from what this process last read or wrote.

        Args:
            strict: Also compare the bytes when the signature matches but is too recent to
                trust (a second write within one timestamp tick). Writers use this, under the
                lock; readers skip it.

        Returns:
            ``True`` when the signature differs, or (strict) matches but is too recent to trust
            and the bytes differ.
        """
        sig = self._stat()
        if sig != self._signature:
            return True
        if not strict or sig is None or self._seen_at_ns - sig.mtime_ns > self.racy_window_ns:
            return False
        looked_at = time.time_ns()
        try:
            differs = nofollow.read_bytes(self.path) != self._bytes
        except FileNotFoundError:
            return True
        if not differs and self._stat() == sig:
            # Same bytes, seen now: a later rewrite would carry a later mtime than this look,
            # so the signature alone is trusted from here on (no byte compare at every save).
            self._seen_at_ns = looked_at
        return differs

    def read(self) -> dict[str, Any] | None:
        """Read and validate the manifest; ``None`` when it does not exist.

        Returns:
            The manifest dict, or ``None``.

        Raises:
            ManifestCorruptError: The file cannot be trusted (it is left untouched).
            UnsafePathError: The manifest is a symbolic link (never followed).
        """
        seen_at = time.time_ns()
        for _ in range(3):
            before = self._stat()
            if before is None:
                self._remember(None, None, seen_at)
                return None
            try:
                raw = nofollow.read_bytes(self.path)  # a planted link is refused, never read
            except FileNotFoundError:
                continue
            if self._stat() == before:
                digest = _Digest(raw, beside_parse=True)
                tags: dict[str, int] = {}
                doc = parse_manifest(raw, source=str(self.path), tag_counts=tags)
                self._remember(before, raw, seen_at, digest)
                self.last_tag_counts = tags
                return doc
        raise ManifestCorruptError(f"manifest {self.path} keeps changing while being read")

    def write(self, doc: dict[str, Any]) -> None:
        """Durably replace the manifest with ``doc``.

        Args:
            doc: The manifest dict.

        Raises:
            OSError: The write failed; the previous manifest is intact. If the new one had already
                replaced it (only the folder fsync failed) it is put back; should even that fail,
                the error carries ``manifest_landed = True``: the new manifest is what is on disk.
        """
        raw = serialize_manifest(doc)
        previous = self._bytes
        try:
            atomic_write_bytes(self.path, raw, mode=self._file_mode, point="manifest")
        except OSError as err:
            if self._holds(raw) and not self._put_back(previous):
                err.manifest_landed = True  # type: ignore[attr-defined]
                self._remember(self._stat(), raw, time.time_ns())
            raise
        _announce_change(self.path)
        self._remember(self._stat(), raw, time.time_ns())

    def _holds(self, raw: bytes) -> bool:
        try:
            return self.path.read_bytes() == raw
        except OSError:
            return False

    def _put_back(self, previous: bytes | None) -> bool:
        """Restore the manifest this process last saw on disk; ``False`` if that fails too."""
        try:
            if previous is None:
                nofollow.unlink(self.path, missing_ok=True)
            else:
                atomic_write_bytes(self.path, previous, mode=self._file_mode, point="manifest")
        except OSError:
            return self._holds(previous) if previous is not None else not self.path.exists()
        _announce_change(self.path)
        self._remember(self._stat(), previous, time.time_ns())
        return True

    def _remember(
        self,
        sig: _Signature | None,
        raw: bytes | None,
        seen_at: int,
        digest: _Digest | None = None,
    ) -> None:
        self._signature = sig
        self._bytes = raw
        self.last_tag_counts = None
        self._digest = digest if digest is not None or raw is None else _Digest(raw)
        self._seen_at_ns = seen_at


def _announce_change(path: Path) -> None:
    """Make the replaced manifest also raise a "modified" event for file watchers.

    A replace by rename is seen by inotify-based watchers as a move. A MONAI Label server opened
    with ``auto_reload=True`` reloads its manifest only on a "modified" event of that file, so
    without one it keeps its stale copy and writes it back over ours at its next save. Truncating
    the file to its own size changes no byte (only its mtime) and is reported as a modification
    (an attribute change alone is not: watchdog reports it as "attrib").
    """
    flags = os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as err:  # best effort: the manifest itself is already durable
        _LOG.debug("could not announce the new %s: %s", path.name, err)
        return
    try:
        os.ftruncate(fd, os.fstat(fd).st_size)
    except OSError as err:
        _LOG.debug("could not announce the new %s: %s", path.name, err)
    finally:
        os.close(fd)
