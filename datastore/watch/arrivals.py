"""The watcher's admission gate: a new file is indexed only once it is stable and complete.

A file first seen by a refresh becomes a candidate. Once its (size, mtime) signature has stayed
unchanged for ``stability_window`` seconds, :func:`~..imaging.completeness.why_incomplete` checks
its content (outside the store lock); a complete file is *verified* and accepted by the next
refresh as long as its signature still matches. Only the watcher's worker thread changes the gate.

Examples:
    >>> import tempfile
    >>> from pathlib import Path
    >>> gate = ArrivalGate(stability_window=1.0, describe=str)
    >>> path = Path(tempfile.mkdtemp()) / "new.nii"
    >>> _ = path.write_bytes(b"")
    >>> gate.begin_refresh(); gate.accept(path)
    False
    >>> path in gate, gate.settled()
    (True, False)
"""

from __future__ import annotations

import logging
import os
import stat
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from pathlib import Path

from ..ids import is_hidden
from ..imaging.completeness import why_incomplete

__all__ = ["ArrivalGate"]

logger = logging.getLogger(__package__ + ".watcher")  # records keep the watcher's logger


@dataclass
class _Candidate:
    """A new file seen by a refresh but not yet accepted."""

    signature: Hashable
    since: float
    verdict: str | None = None  # why it was found incomplete at ``signature``
    checked: bool = False


def _signature(path: Path) -> Hashable | None:
    """(size, mtime_ns) of a file; for a folder (a DICOM series), that of every file in it.

    Anything else (a FIFO, a device, a socket) gives ``None``, as if it were gone: it is never
    opened, so it cannot block the watcher.
    """
    try:
        st = os.stat(path)
        if stat.S_ISREG(st.st_mode):
            return (st.st_size, st.st_mtime_ns)
        if not stat.S_ISDIR(st.st_mode):
            return None
        entries = []
        for entry in os.scandir(path):
            if not is_hidden(entry.name):
                est = entry.stat()
                entries.append((entry.name, est.st_size, est.st_mtime_ns))
        return tuple(sorted(entries))
    except OSError:
        return None


class ArrivalGate:
    """New files seen by refreshes, admitted once stable and complete.

    Args:
        stability_window: Seconds a new file's signature must stay unchanged.
        describe: How a path is named in log messages (e.g. relative to the store root).

    Examples:
        >>> gate = ArrivalGate(stability_window=0.5, describe=str)
        >>> gate.pending, gate.settled(), gate.dues()
        (False, True, [])
    """

    def __init__(self, *, stability_window: float, describe: Callable[[Path], object]) -> None:
        self._window = stability_window
        self._describe = describe
        self._candidates: dict[Path, _Candidate] = {}
        self._verified: dict[Path, Hashable] = {}
        self._seen: set[Path] = set()

    def __contains__(self, path: object) -> bool:
        """Whether ``path`` is a candidate (seen, not yet accepted)."""
        return path in self._candidates

    @property
    def pending(self) -> bool:
        """Whether some file was verified and awaits a refresh to accept it."""
        return bool(self._verified)

    def settled(self) -> bool:
        """Nothing verified and every candidate checked (a rejected file does not count)."""
        return not self._verified and all(c.checked for c in self._candidates.values())

    def dues(self) -> list[float]:
        """Monotonic times at which candidates should be looked at again."""
        dues: list[float] = []
        if self._verified:
            dues.append(0.0)
        for cand in self._candidates.values():
            # a file not yet stable is looked at once per window; a rejected one every second
            wait = max(self._window, 1.0) if cand.checked else self._window
            dues.append(cand.since + wait)
        return dues

    def check(self) -> bool:
        """Stat every candidate; run the content check on stable ones.

        Returns:
            ``True`` when some candidate passed (a refresh should run to accept it).
        """
        passed = False
        window = self._window
        for path, cand in list(self._candidates.items()):
            now = time.monotonic()
            sig = _signature(path)
            if sig is None:
                del self._candidates[path]  # gone before it was indexed
                continue
            if sig != cand.signature:
                self._candidates[path] = _Candidate(sig, now)
                continue
            if cand.checked:
                cand.since = now  # re-stat later; nothing changed
                continue
            if now - cand.since < window:
                continue
            reason = why_incomplete(path)
            if _signature(path) != sig:
                continue  # it changed under the check; look again next tick
            cand.checked, cand.verdict = True, reason
            if reason is None:
                self._verified[path] = sig
                del self._candidates[path]
                passed = True
            else:
                logger.warning("not indexing %s yet: %s", self._describe(path), reason)
        return passed

    def begin_refresh(self) -> None:
        """Start recording which new files the coming refresh sees."""
        self._seen = set()

    def accept(self, path: Path) -> bool:
        """``refresh``'s test for a new file: only verified files whose stat still matches.

        Args:
            path: A file (or series folder) the refresh found unindexed.

        Returns:
            Whether to index it now; if not, it becomes (or stays) a candidate.
        """
        self._seen.add(path)
        sig = _signature(path)
        if sig is not None and self._verified.get(path) == sig:
            return True
        if path not in self._candidates:
            self._candidates[path] = _Candidate(sig, time.monotonic())
        return False

    def end_refresh(self) -> None:
        """Forget candidates the refresh no longer saw, and every verification."""
        for path in list(self._candidates):
            if path not in self._seen:
                del self._candidates[path]
        self._verified.clear()
