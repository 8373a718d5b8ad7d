"""The store's narrow view of :mod:`..imaging`: series sniffing, header facts, geometry.

Kept apart so that indexing imports the imaging stack only when a pattern or a call needs it.

Examples:
    >>> series_sniffer(("*.nii.gz",)) is None
    True
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..errors import ImageReadError, LabelGeometryError, UnsupportedFormatError

__all__ = ["header_facts", "series_sniffer", "wants_dicom", "why_misfit", "why_unreadable"]

logger = logging.getLogger(__name__)


def wants_dicom(patterns: Sequence[str]) -> bool:
    """Whether the store's patterns include DICOM files (so series folders are images)."""
    return any(p.lower().endswith(".dcm") for p in patterns)


def series_sniffer(patterns: Sequence[str]) -> Callable[[Path], bool] | None:
    """The DICOM series-folder test when the patterns include DICOM, else ``None``.

    Args:
        patterns: The store's file-name patterns.

    Returns:
        A callable telling whether a folder holds one DICOM series, or ``None``.
    """
    if not wants_dicom(patterns):
        return None
    from ..imaging import is_dicom_series_dir

    return is_dicom_series_dir


#: Names of formats the readers know: such a file that no reader takes is broken, not foreign.
KNOWN_SUFFIXES = (".nii", ".nii.gz", ".dcm", ".dicom")


def header_facts(path: Path, *, shown: str) -> dict[str, Any]:
    """Header facts (shape, spacing, dtype, modality) for manifest info, once the file is whole.

    A file of a format no reader knows (a pattern the user added, e.g. ``*.mha``) is stored
    without facts, as MONAI Label would store it; a file named as a known format (``.nii``,
    ``.nii.gz``, ``.dcm``) that no reader takes, a broken one (absurd header) and an incomplete
    one (shorter than its header says, a cut gzip stream, a DICOM element cut short: the
    completeness checks the watcher uses too) are refused.

    Args:
        path: Image file or series folder.
        shown: The name to use in messages (the caller's file name, not a staged one).

    Returns:
        JSON-safe facts, never voxel data or patient names.

    Raises:
        ImageReadError: The file is of a known format but unreadable or unsafe.
    """
    from ..imaging import probe_image
    from ..imaging.completeness import why_incomplete

    try:
        facts = dict(probe_image(path).info_facts())
    except UnsupportedFormatError as err:
        if path.is_dir() or shown.lower().endswith(KNOWN_SUFFIXES):
            raise ImageReadError(
                f"{shown}: not a readable image ({str(err).replace(str(path), shown)})"
            ) from err
        logger.warning("no header facts for %s: %s", shown, err)
        return {}
    except ImageReadError as err:
        raise ImageReadError(str(err).replace(str(path), shown)) from err
    reason = why_incomplete(path)
    if reason is not None:
        raise ImageReadError(f"{shown}: incomplete or corrupt image ({reason})")
    return facts


def why_unreadable(path: Path, *, shown: str) -> str | None:
    """Why an image file or series folder cannot be read, or ``None`` when it can.

    Args:
        path: The image.
        shown: The name to use in the reason.

    Returns:
        The reason, as :func:`header_facts` would refuse it.
    """
    try:
        header_facts(path, shown=shown)
    except (ImageReadError, OSError) as err:
        return str(err)
    return None


def why_misfit(label: Path, image: Path) -> str | None:
    """Why a label file does not fit its image (shape, affine, dtype, channels), or ``None``.

    Args:
        label: The label file.
        image: Its image file or series folder.

    Returns:
        The reason (an unreadable label or image counts as a misfit).
    """
    from ..imaging import check_label_geometry

    try:
        check_label_geometry(label, image)
    except (LabelGeometryError, ImageReadError, UnsupportedFormatError, OSError) as err:
        return str(err)
    return None
