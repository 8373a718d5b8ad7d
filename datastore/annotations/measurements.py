"""Datamint's measurement types: a distance (2 points), an angle (3 points), an area (outline).

Datamint names these annotation types (``AnnotationType.DISTANCE``, ``ANGLE``, ``AREA``) without
an entity class of their own; offline they are point lists like the other geometric annotations
(pixel ``(x, y[, z])`` or patient RAS+ mm) that measure themselves in millimetres, so an
anisotropic voxel grid gives the right answer.

Examples:
    >>> import numpy as np
    >>> DistanceAnnotation(identifier="diameter", points=[(0, 0, 2), (3, 4, 2)]).distance_mm(
    ...     np.eye(4))
    5.0
    >>> cobb = AngleAnnotation(identifier="cobb", points=[(4, 0), (0, 0), (0, 3)])
    >>> cobb.angle_degrees(np.eye(4))
    90.0
    >>> roi = AreaAnnotation(identifier="roi", points=[(0, 0), (4, 0), (4, 3), (0, 3)])
    >>> roi.area_mm2(np.diag([1.0, 1.0, 2.0, 1.0]))  # 4 columns x 2 mm, 3 rows x 1 mm
    24.0
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from ..errors import AnnotationError
from .shapes import PointsAnnotation

__all__ = ["AngleAnnotation", "AreaAnnotation", "DistanceAnnotation"]


class DistanceAnnotation(PointsAnnotation):
    """A distance measurement between two points (Datamint "distance")."""

    TYPE: ClassVar[str] = "distance"
    MIN_POINTS: ClassVar[int] = 2
    MAX_POINTS: ClassVar[int | None] = 2

    def distance_mm(self, affine: npt.ArrayLike | None = None) -> float:
        """The distance in millimetres (``affine`` is needed for pixel points).

        Args:
            affine: The image affine.

        Returns:
            The Euclidean distance between the two points in patient space.
        """
        start, end = self.patient_points(affine)
        return float(np.linalg.norm(end - start))


class AngleAnnotation(PointsAnnotation):
    """An angle given by 3 points, the vertex in the middle (Datamint "angle")."""

    TYPE: ClassVar[str] = "angle"
    MIN_POINTS: ClassVar[int] = 3
    MAX_POINTS: ClassVar[int | None] = 3

    def angle_degrees(self, affine: npt.ArrayLike | None = None) -> float:
        """The angle at the middle point, in degrees within ``[0, 180]``, measured in patient space.

        Args:
            affine: The image affine (needed for pixel points).

        Returns:
            The angle between the arms vertex->first and vertex->last point.

        Raises:
            AnnotationError: An arm has zero length.
        """
        first, vertex, last = self.patient_points(affine)
        arms = (first - vertex, last - vertex)
        lengths = [float(np.linalg.norm(arm)) for arm in arms]
        if min(lengths) == 0.0:
            raise AnnotationError(f"angle {self.identifier!r}: an arm has zero length")
        cosine = float(np.dot(*arms)) / (lengths[0] * lengths[1])
        return math.degrees(math.acos(max(-1.0, min(1.0, cosine))))


class AreaAnnotation(PointsAnnotation):
    """An area measurement: a closed, planar outline of at least 3 points (Datamint "area")."""

    TYPE: ClassVar[str] = "area"
    MIN_POINTS: ClassVar[int] = 3

    def area_mm2(self, affine: npt.ArrayLike | None = None) -> float:
        """The enclosed area in mm², measured in patient space (any plane).

        Args:
            affine: The image affine (needed for pixel points).

        Returns:
            Half the norm of the summed cross products of consecutive vertices.
        """
        points = self.patient_points(affine)
        centred = points - points[0]
        crossed = np.cross(centred, np.roll(centred, -1, axis=0)).sum(axis=0)
        return float(np.linalg.norm(crossed) / 2.0)
