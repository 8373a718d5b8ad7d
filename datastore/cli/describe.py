"""``medstore info`` as text: the image's geometry in the file's own order and medstore's.

3D Slicer, ITK-SNAP and nibabel show a volume's size in the file's voxel order (i, j, k);
medstore's arrays are canonical (D, H, W): D inferior→superior, H anterior→posterior, W right→left.
Both are printed, labelled, with the direction each axis points to.

Examples:
    >>> from medstore.datastore.imaging.types import ImageHeader
    >>> header = ImageHeader(format="nifti1", kind="volume", shape=(25, 41, 33), channels=1,
    ...     dtype="int16", spacing=(3.0, 1.0, 1.0), native_shape=(33, 41, 25),
    ...     native_affine=((-1.0, 0, 0, 0), (0, -1.0, 0, 0), (0, 0, 3.0, 0), (0, 0, 0, 1)),
    ...     orientation=("L", "P", "S"))
    >>> for line in geometry_lines(header):
    ...     print(line)
    Shape     file order (i, j, k): 33 x 41 x 25   medstore (D, H, W): 25 x 41 x 33
    Spacing   file order (i, j, k): 1 x 1 x 3 mm   medstore (D, H, W): 3 x 1 x 1 mm
    Axes      file i, j, k point to: L, P, S       medstore D, H, W point to: S, P, L
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..imaging.types import ImageHeader

__all__ = ["CANONICAL_AXES", "geometry_json", "geometry_lines", "label_line"]

CANONICAL_AXES = ("S", "P", "L")  # where medstore's D, H, W point (canonical layout)
_FILE_AXES = "ijkl"


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def _native_spacing(header: ImageHeader) -> tuple[float, ...]:
    """Voxel size along the file's own axes (column norms of its affine)."""
    affine = np.asarray(header.native_affine, dtype=np.float64)
    n = len(header.native_shape)
    return tuple(float(np.linalg.norm(affine[:3, i])) for i in range(min(n, 3)))


def geometry_json(header: ImageHeader) -> dict[str, Any]:
    """Shape, spacing and axis directions in both orders, labelled, for ``info --json``.

    Args:
        header: The image's header facts (``probe_image``).

    Returns:
        ``{"file_order": {...}, "medstore_order": {...}, "channels": C}``.
    """
    native = tuple(header.native_shape) or tuple(reversed(header.shape))
    return {
        "file_order": {
            "axes": ", ".join(_FILE_AXES[: len(native)]),
            "shape": list(native),
            "spacing_mm": [round(s, 6) for s in _native_spacing(header)],
            "points_to": list(header.orientation),
        },
        "medstore_order": {
            "axes": "D, H, W" if len(header.shape) == 3 else "H, W",
            "shape": list(header.shape),
            "spacing_mm": [round(float(s), 6) for s in header.spacing],
            "points_to": list(CANONICAL_AXES[-len(header.shape) :]),
        },
        "channels": header.channels,
    }


def geometry_lines(header: ImageHeader) -> list[str]:
    """Three labelled lines: shape, spacing and axis directions in both orders.

    Args:
        header: The image's header facts.

    Returns:
        The lines, without newlines.
    """
    g = geometry_json(header)
    f, m = g["file_order"], g["medstore_order"]

    def sizes(values: list[Any], unit: str = "") -> str:
        return " x ".join(_fmt(v) for v in values) + unit

    left = [
        f"file order ({f['axes']}): {sizes(f['shape'])}",
        f"file order ({f['axes']}): {sizes(f['spacing_mm'], ' mm')}",
        f"file {f['axes']} point to: {', '.join(f['points_to'])}",
    ]
    right = [
        f"medstore ({m['axes']}): {sizes(m['shape'])}",
        f"medstore ({m['axes']}): {sizes(m['spacing_mm'], ' mm')}",
        f"medstore {m['axes']} point to: {', '.join(m['points_to'])}",
    ]
    width = max(len(x) for x in left) + 3
    names = ("Shape", "Spacing", "Axes")
    lines = [f"{n:<9} {a:<{width}}{b}" for n, a, b in zip(names, left, right, strict=True)]
    if header.channels > 1:
        lines.append(f"{'Channels':<9} {header.channels} (medstore arrays: C first)")
    return lines


def label_line(tag: str, info: dict[str, Any], relative_path: str) -> str:
    """One line per label: its tag, its classes and its file.

    Examples:
        >>> label_line("final", {"label_info": [{"name": "liver", "idx": 1}]}, "labels/final/a.nii")
        'Label     final: liver=1  (labels/final/a.nii)'
    """
    classes = [
        f"{c.get('name')}={c.get('idx')}"
        for c in info.get("label_info") or []
        if isinstance(c, dict) and "name" in c
    ]
    what = ", ".join(classes) if classes else "no class names"
    return f"{'Label':<9} {tag}: {what}  ({relative_path})"
