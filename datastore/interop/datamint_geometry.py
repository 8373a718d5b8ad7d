"""Datamint's geometry payloads (``Geometry``, ``BoxGeometry``, ``LineGeometry``, ...) offline.

They hold points in *Datamint's* conventions: pixel points ``(x, y, frame)`` on the image file's
own voxel grid, patient points in LPS millimetres. ``from_coordinates`` has datamint 2.45's
signature; its ``metadata`` is the image (a :class:`~medstore.datastore.annotations.grid.ImageGrid`
or a nibabel image) and, when given, pixel points become patient points the way Datamint uploads
them. :func:`~medstore.datastore.interop.datamint.from_datamint` reads ``geometry.to_dict()`` plus
its coordinate system into medstore's entities.

Examples:
    >>> import numpy as np
    >>> from medstore.datastore.annotations.grid import ImageGrid
    >>> affine = np.diag([0.8, 0.8, 2.5, 1.0]); affine[:3, 3] = (-100, -120, -50)
    >>> grid = ImageGrid(native_affine=affine, native_shape=(64, 64, 32), format="nifti1")
    >>> box = BoxGeometry.from_coordinates((10, 20), (50, 60), frame_index=3, metadata=grid)
    >>> box.coordinate_system, box.point1
    ('patient', (92.0, 104.0, -42.5))
    >>> BoxGeometry.from_coordinates((10, 20), (50, 60), frame_index=3).points[3]
    (50.0, 60.0, 3.0)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Literal, Self

import numpy as np
from pydantic import field_validator

from ..annotations.base import Part
from ..annotations.grid import ImageGrid
from ..errors import AnnotationError
from .datamint_coords import datamint_to_native

__all__ = [
    "BoxGeometry",
    "CoordinateSystem",
    "Geometry",
    "LineGeometry",
    "PointGeometry",
    "RegionGeometry",
]

CoordinateSystem = Literal["pixel", "patient"]
Point3 = tuple[float, float, float]
_LPS = np.array([-1.0, -1.0, 1.0])


def _grid(metadata: Any) -> ImageGrid | None:
    if metadata is None or isinstance(metadata, ImageGrid):
        return metadata
    if hasattr(metadata, "affine") and hasattr(metadata, "shape"):  # a nibabel image
        return ImageGrid(
            native_affine=np.asarray(metadata.affine), native_shape=tuple(metadata.shape[:3]),
            format="nifti1",
        )  # fmt: skip
    raise AnnotationError(
        f"metadata: give an ImageGrid or a nibabel image, not {type(metadata).__name__}"
    )


def _as_points(
    raw: Sequence[Sequence[float]],
    coords_system: CoordinateSystem,
    frame_index: int | None,
    metadata: Any,
) -> tuple[list[Point3], CoordinateSystem, tuple[Point3, Point3] | tuple[None, None]]:
    grid = _grid(metadata)
    if coords_system not in ("pixel", "patient"):
        raise AnnotationError(f"coords_system must be pixel or patient, not {coords_system!r}")
    points = []
    for point in raw:
        values = [float(v) for v in point]
        if len(values) == 2 and coords_system == "pixel":
            values.append(float(frame_index or 0))
        elif len(values) == 3 and coords_system == "pixel" and frame_index is not None:
            values[2] = float(frame_index)
        if len(values) != 3:
            raise AnnotationError(f"points: {coords_system} points need 3 coordinates, got {point}")
        points.append(values)
    array = np.array(points, dtype=np.float64)
    if coords_system == "pixel" and grid is not None:
        array = grid.native_to_patient(datamint_to_native(array, grid)) * _LPS
        coords_system = "patient"
    views: tuple[Point3, Point3] | tuple[None, None] = (None, None)
    if grid is not None:
        # As datamint 2.45 computes them for a NIfTI: from RAS+ points, not flipped to LPS.
        origin, right, up = (grid.native_to_patient(datamint_to_native([p], grid))[0]
                             for p in ((0, 0, 0), (1, 0, 0), (0, 1, 0)))  # fmt: skip
        up_vector = (up - origin) / np.linalg.norm(up - origin)
        normal = np.cross(right - origin, up - origin)
        normal = -normal / np.linalg.norm(normal)
        views = (tuple(normal.tolist()), tuple(up_vector.tolist()))
    return [tuple(p) for p in array.tolist()], coords_system, views


class Geometry(Part):
    """Datamint's geometry payload: points, their coordinate system and the view vectors."""

    type: ClassVar[str] = ""
    COUNT: ClassVar[tuple[int, int | None]] = (1, None)

    points: tuple[Point3, ...]
    coordinate_system: CoordinateSystem = "patient"
    viewPlaneNormal: Point3 | None = None  # noqa: N815 - Datamint's name
    viewUp: Point3 | None = None  # noqa: N815 - Datamint's name

    @field_validator("points", mode="before")
    @classmethod
    def _points(cls, value: Any) -> Any:
        low, high = cls.COUNT
        if not isinstance(value, list | tuple) or len(value) < low or (high and len(value) > high):
            wanted = low if high == low else f"{low}..{high or 'n'}"
            raise ValueError(f"{cls.__name__} needs {wanted} points")
        return [[*p, 0] if len(p) == 2 else p for p in value]

    def to_dict(self) -> dict[str, Any]:
        """The payload as Datamint uploads it (no coordinate system, no empty view vectors)."""
        payload = self.model_dump(exclude={"coordinate_system"})
        payload["points"] = [list(p) for p in self.points]
        for key in ("viewPlaneNormal", "viewUp"):
            if payload.get(key) is None:
                payload.pop(key, None)
            else:
                payload[key] = list(payload[key])
        return payload

    @classmethod
    def _build(
        cls,
        raw: Sequence[Sequence[float]],
        coords_system: CoordinateSystem,
        frame_index: int | None,
        metadata: Any,
        **fields: Any,
    ) -> Self:
        points, system, (normal, up) = _as_points(raw, coords_system, frame_index, metadata)
        return cls(points=points, coordinate_system=system, viewPlaneNormal=normal, viewUp=up,
                   **fields)  # fmt: skip


class LineGeometry(Geometry):
    """Two points (Datamint ``line``)."""

    type: ClassVar[str] = "line"
    COUNT: ClassVar[tuple[int, int | None]] = (2, 2)

    @property
    def point1(self) -> Point3:
        """The first end."""
        return self.points[0]

    @property
    def point2(self) -> Point3:
        """The second end."""
        return self.points[1]

    @classmethod
    def from_coordinates(
        cls,
        point1: Sequence[float],
        point2: Sequence[float],
        *,
        coords_system: CoordinateSystem = "pixel",
        slice_plane: str | None = None,
        frame_index: int | None = None,
        metadata: Any = None,
    ) -> Self:
        """Datamint's constructor (``slice_plane`` other than axial is not supported)."""
        _axial(slice_plane)
        return cls._build([point1, point2], coords_system, frame_index, metadata)


class PointGeometry(Geometry):
    """One point (Datamint ``point``)."""

    type: ClassVar[str] = "point"
    COUNT: ClassVar[tuple[int, int | None]] = (1, 1)

    @property
    def point(self) -> Point3:
        """The point."""
        return self.points[0]

    @classmethod
    def from_coordinates(
        cls,
        point: Sequence[float],
        *,
        coords_system: CoordinateSystem = "pixel",
        slice_plane: str | None = None,
        frame_index: int | None = None,
        metadata: Any = None,
    ) -> Self:
        """Datamint's constructor."""
        _axial(slice_plane)
        return cls._build([point], coords_system, frame_index, metadata)


class RegionGeometry(Geometry):
    """An open polyline or closed contour (Datamint ``region``)."""

    type: ClassVar[str] = "region"
    COUNT: ClassVar[tuple[int, int | None]] = (2, None)

    closed: bool = False

    @classmethod
    def from_coordinates(
        cls,
        points: Sequence[Sequence[float]],
        *,
        closed: bool = False,
        coords_system: CoordinateSystem = "pixel",
        slice_plane: str | None = None,
        frame_index: int | None = None,
        metadata: Any = None,
    ) -> Self:
        """Datamint's constructor."""
        _axial(slice_plane)
        return cls._build(points, coords_system, frame_index, metadata, closed=closed)


class BoxGeometry(Geometry):
    """Four corners (Datamint ``square``): point1, the corner right of it, below it, point2."""

    type: ClassVar[str] = "square"
    COUNT: ClassVar[tuple[int, int | None]] = (4, 4)

    @property
    def point1(self) -> Point3:
        """The first corner."""
        return self.points[0]

    @property
    def point2(self) -> Point3:
        """The opposite corner."""
        return self.points[3]

    @classmethod
    def from_coordinates(
        cls,
        point1: Sequence[float],
        point2: Sequence[float],
        *,
        coords_system: CoordinateSystem = "pixel",
        slice_plane: str | None = None,
        frame_index: int | None = None,
        metadata: Any = None,
    ) -> Self:
        """Datamint's constructor: the box spanned by two opposite corners."""
        _axial(slice_plane)
        (p1, p2), system, (normal, up) = _as_points(
            [point1, point2], coords_system, frame_index, metadata
        )
        a, b = np.array(p1), np.array(p2)
        if normal is None or up is None:
            corners = [a, np.array([b[0], a[1], a[2]]), np.array([a[0], b[1], a[2]]), b]
        else:
            right = np.cross(np.array(normal), np.array(up))
            right /= np.linalg.norm(right)
            down = -np.array(up) / np.linalg.norm(up)
            delta = b - a
            corners = [a, a + float(delta @ right) * right, a + float(delta @ down) * down, b]
        points = [tuple(float(v) for v in c) for c in corners]
        return cls(points=points, coordinate_system=system, viewPlaneNormal=normal, viewUp=up)


def _axial(slice_plane: str | None) -> None:
    if slice_plane not in (None, "axial"):
        raise AnnotationError(f"slice_plane {slice_plane!r}: only axial frames are supported")
