"""Upgrade annotation records written by older medstore versions (their ``format_version``).

Version 1 stored Datamint pixel geometry as Datamint gave it, although Datamint pixels index the
image *file's* own voxel grid and medstore's pixels index the canonical array; and it read
Datamint geometry without a coordinate system (the create form) as pixels, although Datamint
means patient coordinates (LPS) then. Version 2 stores both correctly; this module converts
version-1 records of Datamint origin on reading. Records of any other origin are unchanged.

Examples:
    >>> import numpy as np
    >>> from medstore.datastore.annotations.grid import ImageGrid
    >>> grid = ImageGrid(native_affine=np.diag([0.8, 0.8, 2.5, 1.0]), native_shape=(64, 64, 32),
    ...                  format="nifti1")
    >>> old = {"id": "a", "annotation_type": "point", "identifier": "p", "scope": "frame",
    ...        "frame_index": 3, "coordinate_system": "pixel", "points": [[10.0, 20.0, 3.0]],
    ...        "origin": {"format": "datamint", "keys": ["entity"]}}
    >>> migrate_records([old], 1, lambda: grid)[0]["points"]
    [[53.0, 43.0, 3.0]]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import AnnotationError, DatastoreError
from .grid import ImageGrid

__all__ = ["migrate_records"]


def _datamint_pixels(record: dict[str, Any], grid: ImageGrid) -> dict[str, Any]:
    from ..interop.datamint_coords import datamint_to_native, slice_axis

    points = np.array(record["points"], dtype=np.float64)
    if points.shape[1] == 2:
        points = np.column_stack([points, np.full(len(points), record.get("frame_index") or 0)])
    canonical = grid.native_to_pixel(datamint_to_native(points, grid))
    out = {**record, "points": canonical.tolist()}
    if record.get("frame_index") is not None:
        axis, _ = slice_axis(grid)
        if grid.transform.ornt[axis][0] == 0:
            out["frame_index"] = round(float(canonical[0, 2]))
    return out


def _flip_to_ras(record: dict[str, Any]) -> dict[str, Any]:
    out = {**record, "coordinate_system": "patient"}
    out["points"] = [[-p[0], -p[1], *p[2:]] for p in record["points"]]
    return out


def migrate_records(
    items: list[dict[str, Any]], version: int, grid: Callable[[], ImageGrid]
) -> list[dict[str, Any]]:
    """Records of a side file of ``version`` brought to the current format.

    Args:
        items: The stored records.
        version: The file's ``format_version``.
        grid: Returns the image's grid (called only when a record needs it).

    Returns:
        The converted records (the same list when nothing changed).

    Raises:
        AnnotationError: A record needs the image's grid and it cannot be read.
    """
    if version >= 2:
        return items
    out = []
    for record in items:
        origin = record.get("origin") or {}
        if origin.get("format") != "datamint" or record.get("coordinate_system") != "pixel":
            out.append(record)
        elif origin.get("keys") == ["create"] and len(record.get("points", [[]])[0]) == 3:
            out.append(_flip_to_ras(record))
        else:
            try:
                image = grid()
            except (DatastoreError, OSError) as err:
                raise AnnotationError(
                    f"annotation {record.get('id')!r} holds Datamint pixels from an older "
                    f"medstore and its image cannot be read to place them: {err}"
                ) from err
            out.append(_datamint_pixels(record, image))
    return out
