"""Views of medstore's canonical channels-first arrays that every dataset view cuts items from."""

from __future__ import annotations

import numpy as np

__all__ = ["as_volume"]


def as_volume(array: np.ndarray) -> np.ndarray:
    """View a channels-first array as ``(C, D, H, W)`` (a 2-D ``(C, H, W)`` gets ``D = 1``).

    Args:
        array: Channels-first canonical array.

    Returns:
        A 4-D view.

    Raises:
        ValueError: Not 3-D or 4-D.

    Example:
        >>> as_volume(np.zeros((1, 4, 5))).shape
        (1, 1, 4, 5)
    """
    if array.ndim == 4:
        return array
    if array.ndim == 3:
        return array[:, None]
    raise ValueError(f"expected a channels-first 2-D or 3-D array, got shape {array.shape}")
