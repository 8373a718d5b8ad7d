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

from ..errors import ImageReadError, UnsupportedFormatError

__all__ = ["header_facts", "series_sniffer", "wants_dicom"]

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


def header_facts(path: Path, *, shown: str) -> dict[str, Any]:
    """Header facts (shape, spacing, dtype, modality) for manifest info.

    A file of a format no reader knows (a pattern the user added, e.g. ``*.mha``) is stored
    without facts, as MONAI Label would store it; a file of a known format that is broken
    (truncated, absurd header) is refused.

    Args:
        path: Image file or series folder.
        shown: The name to use in messages (the caller's file name, not a staged one).

    Returns:
        JSON-safe facts, never voxel data or patient names.

    Raises:
        ImageReadError: The file is of a known format but unreadable or unsafe.
    """
    from ..imaging import probe_image

    try:
        return dict(probe_image(path).info_facts())
    except UnsupportedFormatError as err:
        logger.warning("no header facts for %s: %s", shown, err)
        return {}
    except ImageReadError as err:
        raise ImageReadError(str(err).replace(str(path), shown)) from err
