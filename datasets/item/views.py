"""Views of medstore's canonical channels-first arrays that every dataset view cuts items from."""

from __future__ import annotations

from ..loading.cache import VolumeArray

__all__ = ["as_volume"]


def as_volume(array: VolumeArray) -> VolumeArray:
    """View a channels-first array as ``(C, D, H, W)`` (a 2-D ``(C, H, W)`` gets ``D = 1``).

    Args:
        array: Channels-first canonical array (a chunked cache entry, already 4-D, is returned
            as it is; a 3-D one is read into memory).

    Returns:
        A 4-D view.

    Raises:
        ValueError: Not 3-D or 4-D.

    Example:
        >>> import numpy as np
        >>> as_volume(np.zeros((1, 4, 5))).shape
        (1, 1, 4, 5)
    """
    if array.ndim == 4:
        return array
    if array.ndim == 3:
        return array[:, None]
    raise ValueError(f"expected a channels-first 2-D or 3-D array, got shape {array.shape}")
