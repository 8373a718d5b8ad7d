"""Geometric annotations: box, line, polyline/region, polygon, point, circle, keypoints, cuboid.

Examples:
    >>> import numpy as np
    >>> box = BoxAnnotation.from_points([(10, 20), (50, 60)], identifier="nodule", frame_index=3)
    >>> box.extent()
    (40.0, 40.0)
    >>> line = LineAnnotation.from_points((0, 0, 2), (3, 4, 2), identifier="diameter")
    >>> line.length_mm(np.eye(4))
    5.0
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar, Literal, Self

import numpy as np
import numpy.typing as npt
from pydantic import Field, field_validator, model_validator

from ..errors import AnnotationError
from .base import Annotation, Part
from .entity_geometry import EntityGeometry
from .geometry import (
    FloatArray,
    patient_to_pixel,
    pixel_to_patient,
    polyline_length,
    voxel_sizes,
)

__all__ = [
    "BoxAnnotation",
    "CircleAnnotation",
    "CuboidAnnotation",
    "Keypoint",
    "KeypointsAnnotation",
    "LineAnnotation",
    "PointAnnotation",
    "PointsAnnotation",
    "PolygonAnnotation",
    "PolylineAnnotation",
]

Point = tuple[float, ...]


class PointsAnnotation(Annotation):
    """Shared base of annotations made of a list of points in pixel or patient coordinates.

    Pixel points are ``(x, y)`` or ``(x, y, z)`` (column, row, slice); patient points are RAS+ mm
    ``(x, y, z)``. All points of one annotation have the same arity.
    """

    MIN_POINTS: ClassVar[int] = 1
    MAX_POINTS: ClassVar[int | None] = None

    coordinate_system: Literal["pixel", "patient"] = "pixel"
    points: list[Point]
    view_plane_normal: tuple[float, float, float] | None = None
    view_up: tuple[float, float, float] | None = None

    @property
    def value(self) -> str | None:
        """Datamint's ``value`` (its ``text_value``): kept from a Datamint dict, else None."""
        return self._kept_text_value()

    @field_validator("points")
    @classmethod
    def _check_points(cls, points: list[Point]) -> list[Point]:
        count = len(points)
        if count < cls.MIN_POINTS or (cls.MAX_POINTS is not None and count > cls.MAX_POINTS):
            wanted = (
                str(cls.MIN_POINTS)
                if cls.MAX_POINTS == cls.MIN_POINTS
                else f"{cls.MIN_POINTS}..{cls.MAX_POINTS or 'n'}"
            )
            raise ValueError(f"{cls.TYPE} needs {wanted} points, got {count}")
        arities = {len(point) for point in points}
        if len(arities) != 1 or not arities <= {2, 3}:
            raise ValueError(f"every point needs 2 or 3 coordinates, got {sorted(arities)}")
        return points

    @model_validator(mode="after")
    def _check_patient_arity(self) -> Self:
        if self.coordinate_system == "patient" and len(self.points[0]) != 3:
            raise ValueError("patient points need 3 coordinates")
        return self

    @property
    def geometry(self) -> EntityGeometry:
        """The points and view vectors as one object (Datamint's ``.geometry``), medstore's axes."""
        return EntityGeometry(
            self.TYPE,
            tuple(tuple(p) for p in self.points),
            self.coordinate_system,
            self.view_plane_normal,
            self.view_up,
        )

    def points_array(self) -> FloatArray:
        """The points as a float64 ``(N, 2|3)`` array."""
        return np.array(self.points, dtype=np.float64)

    def _default_z(self) -> float:
        return float(self.frame_index or 0)

    def patient_points(self, affine: npt.ArrayLike | None = None) -> FloatArray:
        """The points in RAS+ mm (``affine`` is needed for pixel points).

        Args:
            affine: The image affine.

        Returns:
            ``(N, 3)`` array.

        Raises:
            AnnotationError: Pixel points and no affine.
        """
        if self.coordinate_system == "patient":
            return self.points_array()
        if affine is None:
            raise AnnotationError("pixel coordinates need the image affine to give millimetres")
        return pixel_to_patient(self.points_array(), affine, default_z=self._default_z())

    def to_patient(self, affine: npt.ArrayLike) -> Self:
        """A copy in patient coordinates (RAS+ mm).

        Args:
            affine: The image affine.

        Returns:
            The converted copy (unchanged copy when already in patient coordinates).
        """
        if self.coordinate_system == "patient":
            return self.model_copy(deep=True)
        world = self.patient_points(affine)
        return self._with_points(world, "patient")

    def to_pixel(self, affine: npt.ArrayLike) -> Self:
        """A copy in pixel coordinates ``(x, y, z)``, not rounded.

        Args:
            affine: The image affine.

        Returns:
            The converted copy (unchanged copy when already in pixel coordinates).
        """
        if self.coordinate_system == "pixel":
            return self.model_copy(deep=True)
        return self._with_points(patient_to_pixel(self.points_array(), affine), "pixel")

    def _with_points(self, array: FloatArray, system: str) -> Self:
        data = self.model_dump()
        data.update(
            points=[tuple(float(v) for v in row) for row in array], coordinate_system=system
        )
        return type(self).model_validate(data)

    def _mm_points(self, affine: npt.ArrayLike | None) -> FloatArray:
        return self.patient_points(affine)


class BoxAnnotation(PointsAnnotation):
    """An axis-aligned box given by 2 opposite corners or 4 corners (Datamint "square")."""

    TYPE: ClassVar[str] = "box"
    MIN_POINTS: ClassVar[int] = 2
    MAX_POINTS: ClassVar[int | None] = 4

    @field_validator("points")
    @classmethod
    def _check_corners(cls, points: list[Point]) -> list[Point]:
        if len(points) == 3:
            raise ValueError("a box needs 2 opposite corners or 4 corners, got 3 points")
        if len(points) == 4 and len({len(p) for p in points}) == 1:
            p0, p1, p2, p3 = (np.array(p, dtype=np.float64) for p in points)
            scale = max(1.0, float(np.abs(np.array(points, dtype=np.float64)).max()))
            parallel = np.allclose(p0 + p3, p1 + p2, rtol=0, atol=1e-9 * scale)
            square = abs(float(np.dot(p1 - p0, p2 - p0))) <= 1e-9 * scale * scale
            if not (parallel and square):
                raise ValueError(
                    "the 4 points of a box must be the corners of a rectangle, in the order "
                    "(x0, y0), (x1, y0), (x0, y1), (x1, y1)"
                )
        return points

    @classmethod
    def from_points(
        cls,
        point1: Sequence[float] | Sequence[Sequence[float]],
        point2: Sequence[float] | None = None,
        *,
        identifier: str,
        frame_index: int | None = None,
        coords_system: Literal["pixel", "patient"] = "pixel",
        **fields: Any,
    ) -> BoxAnnotation:
        """Build the 4-corner box spanned by two opposite corners (Datamint's signature).

        ``from_points([p1, p2, ...], identifier=...)`` (one list of points, whose bounding box
        is taken) is medstore's older form, still accepted.

        Args:
            point1: One corner, ``(x, y)`` or ``(x, y, z)``.
            point2: The opposite corner.
            identifier: The annotation name.
            frame_index: The frame (pixel boxes on one slice).
            coords_system: ``"pixel"`` (medstore's canonical pixels) or ``"patient"`` (RAS+ mm).
            **fields: Further fields (``created_by``, ...).

        Returns:
            The box with corners ``(x0,y0) (x1,y0) (x0,y1) (x1,y1)`` (z kept when given).

        Raises:
            AnnotationError: Fewer than 2 points or mixed arities.
        """
        points = [point1, point2] if point2 is not None else point1
        try:
            array = np.array(points, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise AnnotationError(f"points: {err}") from err
        if array.ndim != 2 or len(array) < 2 or array.shape[1] not in (2, 3):
            raise AnnotationError("points: a box needs at least 2 points of 2 or 3 coordinates")
        low, high = array.min(axis=0), array.max(axis=0)
        corners = [(low[0], low[1]), (high[0], low[1]), (low[0], high[1]), (high[0], high[1])]
        rest = tuple(float(v) for v in low[2:])
        pts = [(float(x), float(y), *rest) for x, y in corners]
        if frame_index is not None:
            fields["frame_index"] = frame_index
        return cls(identifier=identifier, points=pts, coordinate_system=coords_system, **fields)

    def bounds(self) -> tuple[Point, Point]:
        """Lowest and highest corner of the box in its own coordinates."""
        array = self.points_array()
        return tuple(array.min(axis=0).tolist()), tuple(array.max(axis=0).tolist())

    def extent(self) -> tuple[float, ...]:
        """Size of the box along each coordinate, in its own units (pixels or mm)."""
        low, high = self.bounds()
        return tuple(h - lo for lo, h in zip(low, high, strict=True))

    def extent_mm(self, affine: npt.ArrayLike | None = None) -> tuple[float, float]:
        """Width and height in mm (pixel boxes are scaled by the column/row spacing).

        Args:
            affine: The image affine (needed for pixel boxes).

        Returns:
            ``(width_mm, height_mm)``.
        """
        if self.coordinate_system == "patient":
            ext = self.extent()
            return ext[0], ext[1]
        if affine is None:
            raise AnnotationError("pixel coordinates need the image affine to give millimetres")
        sx, sy, _ = voxel_sizes(affine)
        ext = self.extent()
        return ext[0] * sx, ext[1] * sy


class LineAnnotation(PointsAnnotation):
    """A straight segment between two points (a measurement)."""

    TYPE: ClassVar[str] = "line"
    MIN_POINTS: ClassVar[int] = 2
    MAX_POINTS: ClassVar[int | None] = 2

    @classmethod
    def from_points(
        cls, start: Sequence[float], end: Sequence[float], *, identifier: str, **fields: Any
    ) -> LineAnnotation:
        """Build a line from its two end points.

        Args:
            start: First point.
            end: Second point.
            identifier: The annotation name.
            **fields: Further fields.

        Returns:
            The line.
        """
        pts = [tuple(float(v) for v in start), tuple(float(v) for v in end)]
        return cls(identifier=identifier, points=pts, **fields)

    def length_mm(self, affine: npt.ArrayLike | None = None) -> float:
        """Length in millimetres (``affine`` needed for pixel lines)."""
        return polyline_length(self._mm_points(affine))


class PolylineAnnotation(PointsAnnotation):
    """An open or closed chain of points (Datamint "region")."""

    TYPE: ClassVar[str] = "polyline"
    MIN_POINTS: ClassVar[int] = 2

    closed: bool = False

    def length_mm(self, affine: npt.ArrayLike | None = None) -> float:
        """Path length in millimetres, including the closing segment when closed."""
        return polyline_length(self._mm_points(affine), closed=self.closed)


class PolygonAnnotation(PointsAnnotation):
    """A closed polygon of at least 3 vertices (Nucleus "polygon")."""

    TYPE: ClassVar[str] = "polygon"
    MIN_POINTS: ClassVar[int] = 3

    def area(self) -> float:
        """Area in the plane of its first two coordinates (shoelace), in squared units."""
        xy = self.points_array()[:, :2]
        x, y = xy[:, 0], xy[:, 1]
        return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2.0)


class PointAnnotation(PointsAnnotation):
    """A single landmark point."""

    TYPE: ClassVar[str] = "point"
    MIN_POINTS: ClassVar[int] = 1
    MAX_POINTS: ClassVar[int | None] = 1


class CircleAnnotation(PointsAnnotation):
    """A circle given by its centre and one point on its rim."""

    TYPE: ClassVar[str] = "circle"
    MIN_POINTS: ClassVar[int] = 2
    MAX_POINTS: ClassVar[int | None] = 2

    def radius_mm(self, affine: npt.ArrayLike | None = None) -> float:
        """Radius in millimetres."""
        return polyline_length(self._mm_points(affine))

    def area_mm2(self, affine: npt.ArrayLike | None = None) -> float:
        """Area in mm² (πr²)."""
        return math.pi * self.radius_mm(affine) ** 2


class Keypoint(Part):
    """One named keypoint; an invisible one may have no position (Nucleus)."""

    x: float | None = None
    y: float | None = None
    visible: bool = True


class KeypointsAnnotation(Annotation):
    """Named keypoints with a skeleton of index pairs (Nucleus "keypoints")."""

    TYPE: ClassVar[str] = "keypoints"

    keypoints: list[Keypoint] = Field(min_length=1)
    names: list[str]
    skeleton: list[tuple[int, int]] = Field(default_factory=list)

    @property
    def value(self) -> str | None:
        """Datamint's ``value`` (its ``text_value``): kept from a Datamint dict, else None."""
        return self._kept_text_value()

    @field_validator("skeleton", mode="before")
    @classmethod
    def _no_skeleton(cls, value: Any) -> Any:
        return [] if value is None else value  # Nucleus's default

    @model_validator(mode="after")
    def _check_keypoints(self) -> Self:
        if len(self.names) != len(self.keypoints):
            raise ValueError(f"{len(self.names)} names for {len(self.keypoints)} keypoints")
        for a, b in self.skeleton:
            if not (0 <= a < len(self.keypoints) and 0 <= b < len(self.keypoints)):
                raise ValueError(f"skeleton edge ({a}, {b}) refers to a missing keypoint")
        for point in self.keypoints:
            if point.visible and (point.x is None or point.y is None):
                raise ValueError("a visible keypoint needs x and y")
        return self


class CuboidAnnotation(Annotation):
    """A 3-D box: centre position, dimensions and yaw in radians (Nucleus "cuboid")."""

    TYPE: ClassVar[str] = "cuboid"

    coordinate_system: Literal["pixel", "patient"] = "patient"
    position: tuple[float, float, float]
    dimensions: tuple[float, float, float]
    yaw: float = 0.0

    @property
    def value(self) -> str | None:
        """Datamint's ``value`` (its ``text_value``): kept from a Datamint dict, else None."""
        return self._kept_text_value()

    @field_validator("dimensions")
    @classmethod
    def _positive(cls, dims: tuple[float, float, float]) -> tuple[float, float, float]:
        if min(dims) < 0:
            raise ValueError("cuboid dimensions must not be negative")
        return dims

    def volume(self) -> float:
        """Volume in cubic units of its coordinates."""
        return float(np.prod(self.dimensions))
