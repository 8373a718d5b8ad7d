"""Drawing one preview panel: windowed grey levels, label fills and outlines, direction letters.

Examples:
    >>> class_colour(1)
    (230, 25, 75)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from .preview_window import Window

__all__ = [
    "Overlay",
    "class_colour",
    "direction_letters",
    "panel_pixels",
    "plane_cuts",
    "requested_window",
]


@dataclass(frozen=True)
class Overlay:
    """A label map drawn over one row of planes.

    Args:
        label: Integer (D, H, W) map on the image's canonical grid.
        title: Shown above the row.
        style: ``"fill"`` (translucent fill plus outline) or ``"outline"`` only.
    """

    label: npt.NDArray[Any]
    title: str
    style: Literal["fill", "outline"] = "fill"


_PALETTE = (
    (230, 25, 75),
    (60, 180, 75),
    (0, 130, 200),
    (255, 225, 25),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
    (250, 190, 212),
    (0, 128, 128),
    (170, 110, 40),
)


def class_colour(idx: int) -> tuple[int, int, int]:
    """The RGB colour of class ``idx`` (1-based; the palette repeats after 12).

    Example:
        >>> class_colour(1)
        (230, 25, 75)
    """
    return _PALETTE[(int(idx) - 1) % len(_PALETTE)]


# The patient directions each panel's (top, bottom, left, right) edge faces.
_EDGES = {
    "axial": ("A", "P", "R", "L"),
    "coronal": ("S", "I", "R", "L"),
    "sagittal": ("S", "I", "A", "P"),
}


def requested_window(window: Window | tuple[float, float] | None) -> Window | None:
    """A window given as ``(low, high)`` as a :class:`Window` (``None`` and windows unchanged)."""
    if window is None or isinstance(window, Window):
        return window
    low, high = (float(v) for v in window)
    return Window((low + high) / 2, high - low)


def direction_letters(draw: Any, name: str, box: tuple[int, int, int, int]) -> None:
    """Write the direction letters at the middle of each edge of one panel."""
    x, y, w, h = box
    top, bottom, left, right = _EDGES[name]
    for text, (tx, ty) in (
        (top, (x + w // 2 - 3, y + 1)),
        (bottom, (x + w // 2 - 3, y + h - 12)),
        (left, (x + 2, y + h // 2 - 6)),
        (right, (x + w - 9, y + h // 2 - 6)),
    ):
        draw.text((tx, ty), text, fill=(255, 255, 255))


def plane_cuts(
    array: npt.NDArray[Any], centre: Sequence[int], spacing: Sequence[float]
) -> list[tuple[str, npt.NDArray[Any], tuple[float, float]]]:
    """``(name, 2-D slice oriented for display, (row mm, column mm))`` per plane."""
    d, h, w = centre
    sd, sh, sw = spacing
    if array.shape[0] == 1:
        return [("axial", array[0], (sh, sw))]
    return [
        ("axial", array[d], (sh, sw)),
        ("coronal", array[::-1, h, :], (sd, sw)),
        ("sagittal", array[::-1, :, w], (sd, sh)),
    ]


def _nearest(plane: npt.NDArray[Any], size: tuple[int, int]) -> npt.NDArray[Any]:
    """Nearest-neighbour resize of a 2-D array to ``(height, width)``."""
    rows = np.minimum((np.arange(size[0]) + 0.5) * plane.shape[0] / size[0], plane.shape[0] - 1)
    cols = np.minimum((np.arange(size[1]) + 0.5) * plane.shape[1] / size[1], plane.shape[1] - 1)
    return plane[rows.astype(int)][:, cols.astype(int)]


def _edges(mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
    """Pixels of ``mask`` with a 4-neighbour outside it."""
    inner = np.zeros_like(mask)
    inner[1:-1, 1:-1] = (
        mask[1:-1, 1:-1] & mask[:-2, 1:-1] & mask[2:, 1:-1] & mask[1:-1, :-2] & mask[1:-1, 2:]
    )
    return mask & ~inner


def panel_pixels(
    plane: npt.NDArray[Any],
    labels: npt.NDArray[Any] | None,
    size: tuple[int, int],
    window: tuple[float, float],
    overlay: Overlay | None,
    alpha: float,
) -> npt.NDArray[np.uint8]:
    """The RGB pixels of one panel: the windowed plane, resized, with the overlay's classes."""
    from PIL import Image

    lo, hi = window
    grey = np.clip((np.asarray(plane, np.float64) - lo) / max(hi - lo, 1e-9), 0.0, 1.0)
    small = Image.fromarray(np.ascontiguousarray(grey * 255).astype(np.uint8), mode="L")
    big = np.asarray(small.resize((size[1], size[0]), Image.Resampling.BILINEAR), np.float64)
    rgb = np.repeat(big[..., None], 3, axis=2)
    if labels is not None and overlay is not None:
        lab = _nearest(labels, size)
        for value in np.unique(lab):
            if value <= 0:
                continue
            mask = lab == value
            colour = np.array(class_colour(int(value)), np.float64)
            if overlay.style == "fill":
                rgb[mask] = (1 - alpha) * rgb[mask] + alpha * colour
            rgb[_edges(mask)] = colour
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
