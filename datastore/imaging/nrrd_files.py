"""The detached data file of an NRRD header (``.nhdr``): which file belongs with the header.

A ``.nhdr`` holds only the header; its voxels lie in the file its ``data file`` field names,
relative to the header's folder. A store copies that file beside the header, removes it with the
image, and never indexes it as an image of its own.

Examples:
    >>> import tempfile, pathlib, numpy as np, nrrd
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> nrrd.write(str(folder / "ct.nhdr"), np.zeros((2, 3, 4), np.int16), detached_header=True)
    >>> data_file_names(folder / "ct.nhdr")
    ('ct.raw.gz',)
    >>> [p.name for p in data_files(folder / "ct.nhdr")]
    ['ct.raw.gz']
    >>> is_detached_header("CT.NHDR"), is_detached_header("ct.nrrd")
    (True, False)
    >>> sorted(data_names_in(folder, ["ct.nhdr", "ct.raw.gz"]))
    ['ct.raw.gz']
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePosixPath

import nrrd

from ..errors import ImageReadError
from ..ids import derive_id
from .nrrd import MAX_HEADER_BYTES, detached_data_path

__all__ = [
    "data_file_names",
    "data_files",
    "data_names_in",
    "is_detached_header",
]


def is_detached_header(name: str | os.PathLike[str]) -> bool:
    """Whether a file name is an NRRD detached header (``.nhdr``, any case).

    Returns:
        True for ``*.nhdr``.
    """
    return os.fspath(name).lower().endswith(".nhdr")


def _header_lines(path: Path) -> list[str]:
    with open(path, "rb") as fh:
        raw = fh.read(MAX_HEADER_BYTES + 1)
    if not raw.startswith(b"NRRD000"):
        raise ImageReadError(f"{path}: not an NRRD file (no NRRD000x magic)")
    end = min((at for at in (raw.find(b"\n\n"), raw.find(b"\r\n\r\n")) if at >= 0), default=-1)
    return raw[: end if end >= 0 else len(raw)].decode("latin-1").splitlines()


def data_file_names(path: str | os.PathLike[str]) -> tuple[str, ...]:
    """The data file names a header gives, relative to its folder (``()`` for attached data).

    Args:
        path: An NRRD header (``.nhdr``, or ``.nrrd`` with detached data).

    Returns:
        The names as written (one; multi-file lists are not supported).

    Raises:
        ImageReadError: Not NRRD, an invalid header, a multi-file data list, or a name that is
            absolute or climbs out of the header's folder.
    """
    p = Path(path)
    try:
        fields = nrrd.read_header(_header_lines(p))
    except OSError as err:
        raise ImageReadError(f"{p}: cannot read NRRD header ({err})") from err
    except (nrrd.NRRDError, ValueError, TypeError, IndexError) as err:
        raise ImageReadError(f"{p}: invalid NRRD header ({err})") from err
    name = fields.get("data file", fields.get("datafile"))
    if name is None:
        return ()
    name = str(name)
    if not name or name.startswith("LIST") or "%" in name or name.strip() != name:
        raise ImageReadError(f"{p}: multi-file or unnamed detached NRRD data is not supported")
    parts = PurePosixPath(name.replace("\\", "/"))
    if parts.is_absolute() or ".." in parts.parts or Path(name).is_absolute():
        raise ImageReadError(
            f"{p}: detached data file {name!r} lies outside the header's folder; refused"
        )
    return (name,)


def data_files(path: str | os.PathLike[str]) -> tuple[Path, ...]:
    """The detached data files of a header, each checked to be a regular file in its folder.

    A header reached through a symbolic link (an image added with ``--link``) reads its data
    beside the file the link points to.

    Args:
        path: An NRRD header.

    Returns:
        The resolved data file paths (``()`` for attached data).

    Raises:
        ImageReadError: See :func:`data_file_names`; or a data file that is missing, not a
            regular file, or resolves (through links) outside the header's folder.
    """
    header = Path(path)
    return tuple(detached_data_path(header, name) for name in data_file_names(header))


def data_names_in(
    folder: str | os.PathLike[str],
    names: Iterable[str],
    patterns: Sequence[str] | None = None,
) -> set[str]:
    """The names in one folder listing that are data files of a ``.nhdr`` beside them.

    Each ``.nhdr`` among ``names`` has its header read (a few lines); an unreadable header
    claims nothing. A data file is part of its header's image, never an image of its own.

    Args:
        folder: The folder the names were listed from.
        names: Its entries' names.
        patterns: When given, headers are read only if another listed name matches one of
            these patterns (otherwise no data file could be taken for an image).

    Returns:
        The data file names (as the headers give them) of the listed headers.
    """
    listed = list(names)
    headers = [name for name in listed if is_detached_header(name)]
    if not headers or (
        patterns is not None
        and not any(derive_id(name, patterns) for name in listed if not is_detached_header(name))
    ):
        return set()
    claimed: set[str] = set()
    for name in headers:
        with contextlib.suppress(ImageReadError):
            claimed.update(data_file_names(Path(folder, name)))
    return claimed
