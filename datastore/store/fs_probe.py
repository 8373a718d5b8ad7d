"""What the filesystem under a store can do: timestamp resolution, name rules, its type.

The name probe creates throw-away files in a folder the caller names (``.medstore/`` of a
writable store; walked without following links, created with ``O_EXCL``) and removes them (files
left by a probe killed midway are cleared by a later probe once a minute old); the timestamp
probe sets times on an existing path; both put the times of what they touched back. The caller
keeps the answer for the life of the open store.

- :func:`timestamp_granularity_ns`: how coarse file mtimes are (1 ns on ext4/tmpfs, 1 s on ext4
  with 128-byte inodes or exFAT through FUSE, 2 s on FAT).
- :func:`probe_names` / :class:`NameRules`: whether names differing only in case, or only in
  Unicode normalisation (NFC vs NFD), are one name there, and which characters it refuses.
- :func:`filesystem_of`: the filesystem type and mount point of a path, for error messages.

Examples:
    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> timestamp_granularity_ns(folder) <= 1_000_000_000
    True
    >>> rules = NameRules(folds_case=True)
    >>> try:
    ...     rules.check("case1", ["Case1", "other"], kind="image id")
    ... except InvalidIdError as err:
    ...     print(err)
    image id 'case1' collides with existing 'Case1': this filesystem ignores letter case
"""

from __future__ import annotations

import contextlib
import math
import os
import secrets
import time
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .. import nofollow
from ..crashpoints import crashpoint
from ..errors import InvalidIdError

__all__ = ["NameRules", "filesystem_of", "probe_names", "timestamp_granularity_ns"]

# Probe mtimes: odd whole seconds plus sub-second parts with no trailing zeros.
_PROBE_TIMES_NS = (1_700_000_001_123_456_789, 1_700_000_003_987_654_321, 1_700_000_005_500_000_001)
# Characters some filesystems refuse in names (exFAT, FAT, SMB shares).
_CANDIDATE_CHARS = ':*?"<>|'
_PROBE_PREFIX = ".name-probe-"
# A probe file older than this was left by a probe killed midway (a probe takes milliseconds).
_LEFTOVER_AGE_NS = 60 * 1_000_000_000


def timestamp_granularity_ns(path: str | os.PathLike[str]) -> int:
    """The resolution of file mtimes where ``path`` lives, in nanoseconds.

    Probe times are set on ``path`` itself (an existing file or folder the caller may touch,
    such as the held lock file) and its own times are put back afterwards: nothing is created.

    Args:
        path: An existing file or folder.

    Returns:
        The greatest common divisor of the stored probe times (at most 2 s).
    """
    own = os.stat(path)
    stored = []
    try:
        for ns in _PROBE_TIMES_NS:
            os.utime(path, ns=(ns, ns))
            stored.append(os.stat(path).st_mtime_ns)
    finally:
        os.utime(path, ns=(own.st_atime_ns, own.st_mtime_ns))
    step = 0
    for ns in stored:
        step = math.gcd(step, ns)
    return max(1, min(step, 2_000_000_000))


@dataclass(frozen=True)
class NameRules:
    """How a filesystem treats names.

    Args:
        folds_case: ``Case1`` and ``case1`` name one file.
        folds_unicode: NFC and NFD spellings of a name name one file.
        refused: Characters the filesystem does not accept in a name.
    """

    folds_case: bool = False
    folds_unicode: bool = False
    refused: str = ""

    def key(self, name: str) -> str:
        """The name as this filesystem compares it."""
        if self.folds_unicode:
            name = unicodedata.normalize("NFC", name)
        return name.casefold() if self.folds_case else name

    def check(self, name: str, existing: Iterable[str], *, kind: str) -> None:
        """Refuse ``name`` if it cannot be stored here or would share a file with another name.

        Args:
            name: The id or tag being admitted.
            existing: The ids (or tags) already in the store.
            kind: ``"image id"`` or ``"label tag"``, for the message.

        Raises:
            InvalidIdError: A refused character, or a collision (naming both).
        """
        bad = sorted({c for c in name if c in self.refused})
        if bad:
            raise InvalidIdError(
                f"{kind} {name!r} holds {''.join(bad)!r}, which this filesystem cannot store"
            )
        key = self.key(name)
        for other in existing:
            if other != name and self.key(other) == key:
                why = "letter case" if self.folds_case else "Unicode normalisation"
                raise InvalidIdError(
                    f"{kind} {name!r} collides with existing {other!r}: "
                    f"this filesystem ignores {why}"
                )


def _create(held: nofollow.Folder, name: str) -> bool:
    """Create the empty probe file ``name`` (never over an existing entry or through a link)."""
    try:
        os.close(held.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError:
        return False
    return True


def _remove(held: nofollow.Folder, name: str) -> None:
    with contextlib.suppress(OSError):  # one left behind is cleared by a later probe
        os.unlink(held.name(name), dir_fd=held.fd)


def _exists_as(held: nofollow.Folder, written: str, looked_up: str) -> bool:
    if not _create(held, written):
        return False
    try:
        crashpoint("probe.names")
        return held.lexists(looked_up)
    finally:
        _remove(held, written)


def _clear_leftovers(held: nofollow.Folder) -> None:
    """Delete probe files of earlier probes that were killed before removing them.

    A probe takes milliseconds: only files older than :data:`_LEFTOVER_AGE_NS` are taken, so a
    probe running now in another process keeps its files (and its answer).
    """
    now = time.time_ns()
    for name in os.listdir(held.fd if held.fd is not None else held.path):
        if not name.startswith(_PROBE_PREFIX):
            continue
        with contextlib.suppress(OSError):
            if now - held.lstat(name).st_mtime_ns > _LEFTOVER_AGE_NS:
                _remove(held, name)


def probe_names(folder: str | os.PathLike[str]) -> NameRules:
    """Probe case folding, Unicode normalisation and refused characters in ``folder``.

    Args:
        folder: An existing writable folder.

    Returns:
        The folder's :class:`NameRules`.
    """
    folder = Path(folder)
    own = os.stat(folder)
    try:
        return _probe_names(folder)
    finally:  # the probe files are gone: leave the folder's times as they were
        with contextlib.suppress(OSError):
            os.utime(folder, ns=(own.st_atime_ns, own.st_mtime_ns))


def _probe_names(folder: Path) -> NameRules:
    with nofollow.folder(folder) as held:  # walked from the store root, links refused
        _clear_leftovers(held)
        stem = f"{_PROBE_PREFIX}{secrets.token_hex(4)}-"
        folds_case = _exists_as(held, stem + "Ab", stem + "aB")
        nfc = unicodedata.normalize("NFC", "\u00e9")
        nfd = unicodedata.normalize("NFD", "\u00e9")
        folds_unicode = _exists_as(held, stem + nfc, stem + nfd)
        refused = ""
        for char in _CANDIDATE_CHARS:
            if _create(held, f"{stem}{char}"):
                _remove(held, f"{stem}{char}")
            else:
                refused += char
    return NameRules(folds_case=folds_case, folds_unicode=folds_unicode, refused=refused)


def filesystem_of(path: str | os.PathLike[str]) -> str:
    """``"<type> at <mount point>"`` for the filesystem holding ``path`` (best effort).

    Args:
        path: Any existing path.

    Returns:
        The description, or ``"an unknown filesystem"`` where ``/proc/self/mounts`` is missing.
    """
    target = os.path.realpath(path)
    best: tuple[str, str] | None = None
    try:
        lines = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return "an unknown filesystem"
    for line in lines:
        fields = line.split()
        if len(fields) < 3:
            continue
        mount = fields[1].replace("\\040", " ")
        inside = target == mount or target.startswith(mount.rstrip("/") + "/")
        if inside and (best is None or len(mount) >= len(best[1])):
            best = (fields[2], mount)
    return f"{best[0]} at {best[1]}" if best else "an unknown filesystem"
