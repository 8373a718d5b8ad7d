"""Display windows of previews: CT presets, ``CENTRE,WIDTH``, and percentiles for other images.

A window maps the values ``[centre - width/2, centre + width/2]`` to black..white. CT has fixed
Hounsfield presets (soft tissue is the default); MR, PET and anything without a fixed scale use
the 0.5-99.5 percentiles of the shown volume. The window used is named in the preview's legend.

Examples:
    >>> parse_window("lung").describe()
    'lung (C -600, W 1500)'
    >>> parse_window("40,400").bounds
    (-160.0, 240.0)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from .errors import InvalidValueError

__all__ = ["CT_PRESETS", "CT_WINDOW", "Window", "choose_window", "parse_window", "window_for"]


@dataclass(frozen=True)
class Window:
    """A display window.

    Args:
        centre: The value shown mid-grey.
        width: The range of values from black to white.
        name: A preset's name, ``"percentiles"``, or ``""`` for a window given by numbers.
    """

    centre: float
    width: float
    name: str = ""

    @property
    def bounds(self) -> tuple[float, float]:
        """``(low, high)``: the values shown black and white."""
        return self.centre - self.width / 2, self.centre + self.width / 2

    def describe(self) -> str:
        """E.g. ``"soft-tissue (C 40, W 400)"``, for legends and messages."""
        numbers = f"C {self.centre:.4g}, W {self.width:.4g}"
        if self.name == "percentiles":
            low, high = self.bounds
            return f"percentiles 0.5-99.5 ({low:.4g} to {high:.4g})"
        return f"{self.name} ({numbers})" if self.name else numbers


CT_PRESETS = {
    "soft-tissue": Window(40.0, 400.0, "soft-tissue"),
    "lung": Window(-600.0, 1500.0, "lung"),
    "bone": Window(400.0, 1800.0, "bone"),
    "brain": Window(40.0, 80.0, "brain"),
}
CT_WINDOW = CT_PRESETS["soft-tissue"].bounds  # the default for CT


def parse_window(text: str) -> Window:
    """A preset name or ``CENTRE,WIDTH``.

    Raises:
        InvalidValueError: Neither a preset nor two numbers with a positive width.

    Examples:
        >>> parse_window("50,350")
        Window(centre=50.0, width=350.0, name='')
    """
    key = text.strip().lower().replace("_", "-")
    if key in ("soft", "soft-tissue", "softtissue", "abdomen"):
        key = "soft-tissue"
    if key in CT_PRESETS:
        return CT_PRESETS[key]
    parts = key.split(",")
    try:
        centre, width = (float(p) for p in parts)
    except ValueError as err:
        raise InvalidValueError(
            f"--window {text!r}: expected {', '.join(CT_PRESETS)} or CENTRE,WIDTH (e.g. 40,400)"
        ) from err
    if not width > 0:
        raise InvalidValueError(f"--window {text!r}: the width must be positive")
    return Window(centre, width)


def _percentiles(volume: npt.NDArray[Any]) -> Window:
    finite = volume[np.isfinite(volume)]
    if finite.size == 0:
        return Window(0.5, 1.0, "percentiles")
    lo, hi = (float(v) for v in np.percentile(finite, [0.5, 99.5]))
    if hi <= lo:
        hi = lo + 1.0
    return Window((lo + hi) / 2, hi - lo, "percentiles")


def choose_window(
    volume: npt.NDArray[Any], modality: str | None, requested: Window | None = None
) -> Window:
    """The window to draw with: the requested one, the CT default, or the percentiles.

    Examples:
        >>> choose_window(np.arange(10.0), "CT").name
        'soft-tissue'
        >>> choose_window(np.arange(1000.0), "MR").name
        'percentiles'
    """
    if requested is not None:
        return requested
    if (modality or "").upper() == "CT":
        return CT_PRESETS["soft-tissue"]
    return _percentiles(np.asarray(volume))


def window_for(volume: npt.NDArray[Any], modality: str | None) -> tuple[float, float]:
    """The default window's ``(low, high)``: :data:`CT_WINDOW` for CT, else the percentiles.

    Example:
        >>> window_for(np.arange(10.0), "CT")
        (-160.0, 240.0)
    """
    return choose_window(volume, modality).bounds
