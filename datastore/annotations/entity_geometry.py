"""The ``geometry`` of a point-list annotation as one object, the way Datamint's entities carry it.

Datamint's geometric entities hold a ``geometry`` (``points``, ``coordinate_system``,
``viewPlaneNormal``, ``viewUp``, ``point1``/``point2``/``point``); medstore's keep those fields on
the entity itself and give this read-only view of them. Its numbers are medstore's: pixel points
index the canonical ``(D, H, W)`` array, patient points are RAS+ mm
(``interop.datamint.to_datamint`` converts to Datamint's file-grid pixels and LPS).

Examples:
    >>> from medstore.datastore.annotations import LineAnnotation
    >>> line = LineAnnotation.from_points((0, 0, 2), (3, 4, 2), identifier="diameter")
    >>> line.geometry.point2, line.geometry.coordinate_system
    ((3.0, 4.0, 2.0), 'pixel')
    >>> line.geometry.to_dict()["points"]
    [[0.0, 0.0, 2.0], [3.0, 4.0, 2.0]]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["EntityGeometry"]

Vector = tuple[float, float, float]


@dataclass(frozen=True)
class EntityGeometry:
    """A read-only snapshot of an annotation's points and view vectors.

    Attributes:
        type: The annotation's type name (``"box"``, ``"line"``, ``"distance"``, ...).
        points: The points, as the annotation holds them.
        coordinate_system: ``"pixel"`` or ``"patient"``.
        view_plane_normal: The viewer's plane normal, when recorded.
        view_up: The viewer's up vector, when recorded.
    """

    type: str
    points: tuple[tuple[float, ...], ...]
    coordinate_system: str
    view_plane_normal: Vector | None = None
    view_up: Vector | None = None

    @property
    def point1(self) -> tuple[float, ...]:
        """The first point (Datamint's ``point1``)."""
        return self.points[0]

    @property
    def point2(self) -> tuple[float, ...]:
        """The second point (Datamint's ``point2``; the first when there is only one)."""
        return self.points[1] if len(self.points) > 1 else self.points[0]

    @property
    def point(self) -> tuple[float, ...]:
        """The first point (Datamint's ``PointGeometry.point``)."""
        return self.points[0]

    @property
    def viewPlaneNormal(self) -> Vector | None:  # noqa: N802 - Datamint's name
        """Alias of :attr:`view_plane_normal` (Datamint)."""
        return self.view_plane_normal

    @property
    def viewUp(self) -> Vector | None:  # noqa: N802 - Datamint's name
        """Alias of :attr:`view_up` (Datamint)."""
        return self.view_up

    def to_dict(self) -> dict[str, Any]:
        """Datamint's geometry dict keys, in medstore's coordinates.

        Returns:
            ``points`` and ``coordinate_system``, plus ``viewPlaneNormal``/``viewUp`` when set.
        """
        out: dict[str, Any] = {
            "points": [list(p) for p in self.points],
            "coordinate_system": self.coordinate_system,
        }
        if self.view_plane_normal is not None:
            out["viewPlaneNormal"] = list(self.view_plane_normal)
        if self.view_up is not None:
            out["viewUp"] = list(self.view_up)
        return out
