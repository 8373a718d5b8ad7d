"""Id and tag derivation and validation: every name is checked before a path is built.

Examples:
    >>> derive_id("case.seg.nrrd", ("*.nrrd", "*.seg.nrrd"))
    ('case', '.seg.nrrd')
    >>> validate_id("case 01")
    'case 01'
"""

from __future__ import annotations

import fnmatch
import functools
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from .errors import InvalidIdError, UnsupportedFormatError

__all__ = [
    "MAX_NAME_BYTES",
    "derive_id",
    "is_hidden",
    "is_inside",
    "pattern_suffix",
    "resolve_inside",
    "split_source_name",
    "validate_id",
    "validate_tag",
]

MAX_NAME_BYTES = 200
_WINDOWS_DEVICES = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"}
    | {f"COM{i}" for i in range(10)}
    | {f"LPT{i}" for i in range(10)}
    | {f"COM{c}" for c in "¹²³"}
    | {f"LPT{c}" for c in "¹²³"}
)


# Path separators, NUL and every Unicode "Cc" control character (C0, DEL, C1).
_FORBIDDEN = re.compile(r"[/\\\x00-\x1f\x7f-\x9f]")


# Longer names are measured in UTF-8 bytes; up to this many characters none can exceed the limit.
_SURELY_SHORT = MAX_NAME_BYTES // 4


def _check_name(value: object, kind: str) -> str:
    # The common case in a few operations (a store opens by checking every id of its manifest):
    # a short string, no leading dot, no forbidden character, not a device name.
    if (
        type(value) is str
        and value
        and value[0] != "."
        and len(value) <= _SURELY_SHORT
        and _FORBIDDEN.search(value) is None
        and value.split(".", 1)[0].strip().upper() not in _WINDOWS_DEVICES
    ):
        return value
    return _refuse_or_accept(value, kind)


def _refuse_or_accept(value: object, kind: str) -> str:
    """Every rule, one by one, naming the first one ``value`` breaks."""
    if not isinstance(value, str):
        raise InvalidIdError(f"{kind} must be a string, got {type(value).__name__}")
    if not value:
        raise InvalidIdError(f"{kind} must not be empty")
    shown = repr(value[:60])
    if value in {".", ".."}:
        raise InvalidIdError(f"{kind} {shown} is a relative path component")
    if value.startswith("."):
        raise InvalidIdError(f"{kind} {shown} must not start with '.'")
    bad = _FORBIDDEN.search(value)
    if bad is not None:
        if bad.group() in "/\\":
            raise InvalidIdError(f"{kind} {shown} must not contain path separators")
        raise InvalidIdError(f"{kind} {shown} must not contain control characters")
    if len(value.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        raise InvalidIdError(f"{kind} {shown}... is longer than {MAX_NAME_BYTES} bytes")
    if value.split(".")[0].strip().upper() in _WINDOWS_DEVICES:
        raise InvalidIdError(f"{kind} {shown} is a reserved device name on Windows")
    return value


def validate_id(image_id: object) -> str:
    """Return ``image_id`` if it is a valid image id.

    Args:
        image_id: Candidate id.

    Returns:
        The same string.

    Raises:
        InvalidIdError: Not a string, empty, ``.``/``..``, leading ``.``, a separator, NUL or a
            control character, over 200 UTF-8 bytes, or a Windows device name.

    Examples:
        >>> validate_id("../evil")
        Traceback (most recent call last):
        ...
        medstore.datastore.errors.InvalidIdError: image id '../evil' must not start with '.'
    """
    return _check_name(image_id, "image id")


def validate_tag(tag: object) -> str:
    """Return ``tag`` if it is a valid label tag (same rules as ids).

    Args:
        tag: Candidate tag.

    Returns:
        The same string.

    Raises:
        InvalidIdError: As for :func:`validate_id`.

    Examples:
        >>> validate_tag("final")
        'final'
    """
    return _check_name(tag, "label tag")


def is_hidden(name: str) -> bool:
    """Whether a file name is hidden (``.``-prefixed, e.g. macOS ``._x.nii.gz``)."""
    return name.startswith(".")


def pattern_suffix(pattern: str) -> str:
    """The literal suffix a pattern removes from a name: the text after its last ``*``.

    Args:
        pattern: An ``fnmatch`` pattern such as ``"*.nii.gz"``.

    Returns:
        The suffix (``".nii.gz"``), or ``""`` when the tail holds wildcards.
    """
    tail = pattern.rsplit("*", 1)[-1]
    return "" if any(c in tail for c in "?[]") else tail


@functools.lru_cache(maxsize=64)
def _matchers(patterns: tuple[str, ...]) -> list[tuple[str, re.Pattern[str] | None]]:
    """Per pattern: its suffix and, unless it is a plain ``*<suffix>``, a compiled matcher."""
    out: list[tuple[str, re.Pattern[str] | None]] = []
    for pattern in patterns:
        suffix = pattern_suffix(pattern)
        plain = pattern == "*" + suffix and not any(c in suffix for c in "*?[]")
        out.append((suffix, None if plain else re.compile(fnmatch.translate(pattern))))
    return out


def derive_id(filename: str, patterns: Sequence[str] | Iterable[str]) -> tuple[str, str] | None:
    """Derive ``(id, ext)`` from a file name like MONAI Label, minus its bugs.

    The extension is the longest suffix among the patterns that match, removed once from the end.
    Hidden files and names matching no pattern give ``None``.

    Args:
        filename: A base name (no folder).
        patterns: ``fnmatch`` patterns, e.g. ``("*.nii.gz", "*.nii")``.

    Returns:
        ``(id, ext)`` or ``None``.

    Examples:
        >>> derive_id("a.nii.gz", ["*.nii", "*.nii.gz"])
        ('a', '.nii.gz')
        >>> derive_id("._a.nii.gz", ["*.nii.gz"]) is None
        True
    """
    if is_hidden(filename) or os.sep in filename or "/" in filename:
        return None
    best: str | None = None
    for suffix, pattern in _matchers(tuple(patterns)):
        matched = filename.endswith(suffix) if pattern is None else bool(pattern.match(filename))
        if matched and (best is None or len(suffix) > len(best)):
            best = suffix
    if best is None:
        return None
    image_id = filename[: len(filename) - len(best)] if best else filename
    return (image_id, best) if image_id else None


def split_source_name(filename: str | os.PathLike[str], patterns: Sequence[str]) -> tuple[str, str]:
    """``(id, ext)`` of a file to be added to a store; a folder (DICOM series) has no extension.

    Args:
        filename: A file or folder path.
        patterns: The store's ``fnmatch`` patterns.

    Returns:
        ``(id, ext)``.

    Raises:
        UnsupportedFormatError: The name matches none of the patterns.

    Examples:
        >>> split_source_name("/data/ct.nii.gz", ["*.nii.gz"])
        ('ct', '.nii.gz')
        >>> try:
        ...     split_source_name("/data/notes.txt", ["*.nii.gz"])
        ... except UnsupportedFormatError as err:
        ...     print(err)
        'notes.txt' matches none of the store's patterns ['*.nii.gz']
    """
    path = Path(filename)
    if path.is_dir():
        return path.name, ""
    derived = derive_id(path.name, patterns)
    if derived is None:
        raise UnsupportedFormatError(
            f"{path.name!r} matches none of the store's patterns {list(patterns)}"
        )
    return derived


def is_inside(root: str | os.PathLike[str], path: str | os.PathLike[str]) -> bool:
    """Whether ``path``, with every symlink resolved, is ``root`` or lies under it.

    Args:
        root: The folder.
        path: The path to check.

    Returns:
        ``True`` when the resolved path stays inside the resolved root.

    Examples:
        >>> is_inside("/data/store", "/data/store/../elsewhere")
        False
    """
    base = os.path.realpath(root)
    real = os.path.realpath(path)
    return real == base or real.startswith(base.rstrip(os.sep) + os.sep)


def resolve_inside(root: str | os.PathLike[str], *parts: str) -> Path:
    """Join ``parts`` under ``root`` and check the resolved path stays inside the root.

    Args:
        root: The store root.
        *parts: Path components (already validated names or configured sub-folders).

    Returns:
        The joined (unresolved) path.

    Raises:
        InvalidIdError: The path escapes the root (``..``, absolute parts or symlinks).
    """
    joined = Path(root).joinpath(*parts)
    if not is_inside(root, joined):
        raise InvalidIdError(f"path {'/'.join(parts)!r} resolves outside the store root")
    return joined
