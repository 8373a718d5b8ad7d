"""WEBKNOSSOS positions on an image: dataset voxels ``(x, y, z)`` times the voxel size.

A WEBKNOSSOS dataset made from an image file keeps the file's voxel order: its position
``(x, y, z)`` is the file's voxel ``(i, j, k)`` and its voxel size is the file's spacing.
Skeleton nodes and bounding boxes stay in those coordinates inside a
:class:`~medstore.datastore.annotations.SkeletonAnnotation` (what the NML says); these helpers
place them on medstore's canonical pixels, and medstore's points back on the dataset grid.

Examples:
    >>> import numpy as np
    >>> from medstore.datastore.annotations import PointAnnotation
    >>> from medstore.datastore.annotations.grid import ImageGrid
    >>> grid = ImageGrid(native_affine=np.diag([-0.8, 0.8, 2.5, 1.0]), native_shape=(64, 64, 32))
    >>> wk_to_pixel([(10, 20, 3)], grid).tolist()      # file axis 1 runs anterior: H flips
    [[10.0, 43.0, 3.0]]
    >>> point = PointAnnotation(identifier="p", points=[(10, 43, 3)])
    >>> tree = points_to_tree(point, grid, tree_id=1)
    >>> tree.nodes[0].position
    (10.0, 20.0, 3.0)
    >>> voxel_size_of(grid)
    VoxelSize(x=0.8, y=0.8, z=2.5, unit='millimeter')
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from ..annotations.geometry import FloatArray
from ..annotations.grid import ImageGrid
from ..annotations.shapes import PointAnnotation, PointsAnnotation, PolylineAnnotation
from ..annotations.skeleton import (
    BoundingBox,
    SkeletonAnnotation,
    SkeletonEdge,
    SkeletonNode,
    Tree,
    VoxelSize,
)
from ..errors import AnnotationError

__all__ = [
    "bounding_box_pixels",
    "check_voxel_size",
    "node_pixels",
    "pixel_to_wk",
    "points_to_tree",
    "skeleton_for",
    "tree_to_points",
    "voxel_size_of",
    "wk_to_pixel",
]

_TO_MM = {"nanometer": 1e-6, "micrometer": 1e-3, "millimeter": 1.0, "centimeter": 10.0}


def voxel_size_of(grid: ImageGrid) -> VoxelSize:
    """The WEBKNOSSOS voxel size of the image's grid, in millimetres.

    Args:
        grid: The image's grid.

    Returns:
        The spacing of the file's voxel axes (x = i, y = j, z = k).
    """
    sx, sy, sz = (float(v) for v in np.linalg.norm(grid.native_affine[:3, :3], axis=0))
    return VoxelSize(x=sx, y=sy, z=sz, unit="millimeter")


def check_voxel_size(sk: SkeletonAnnotation, grid: ImageGrid, *, rtol: float = 1e-3) -> None:
    """Refuse a skeleton whose voxel size does not match the image it is placed on.

    Raises:
        AnnotationError: The sizes differ (names both), or the unit is unknown.
    """
    if sk.voxel_size is None:
        return
    scale = _TO_MM.get(sk.voxel_size.unit)
    if scale is None:
        raise AnnotationError(f"voxel_size.unit {sk.voxel_size.unit!r} is not a length unit")
    given = np.array([sk.voxel_size.x, sk.voxel_size.y, sk.voxel_size.z]) * scale
    own = voxel_size_of(grid)
    wanted = np.array([own.x, own.y, own.z])
    if not np.allclose(given, wanted, rtol=rtol):
        raise AnnotationError(
            f"voxel_size: the skeleton's {given.tolist()} mm differs from the image's "
            f"{wanted.tolist()} mm"
        )


def wk_to_pixel(positions: npt.ArrayLike, grid: ImageGrid) -> FloatArray:
    """WEBKNOSSOS positions (dataset voxels) to medstore pixel points ``(x, y, z)``."""
    return grid.native_to_pixel(positions)


def pixel_to_wk(points: npt.ArrayLike, grid: ImageGrid) -> FloatArray:
    """Medstore pixel points to WEBKNOSSOS positions (exact inverse of :func:`wk_to_pixel`)."""
    return grid.pixel_to_native(points)


def node_pixels(sk: SkeletonAnnotation, grid: ImageGrid) -> dict[int, tuple[float, ...]]:
    """Every node's position as a medstore pixel point, by node id.

    Args:
        sk: The skeleton.
        grid: The grid of the image it annotates.

    Returns:
        ``{node id: (x, y, z)}`` on the canonical array.
    """
    nodes = [node for tree in sk.trees for node in tree.nodes]
    if not nodes:
        return {}
    pixels = wk_to_pixel([node.position for node in nodes], grid)
    return {node.id: tuple(p) for node, p in zip(nodes, pixels.tolist(), strict=True)}


def bounding_box_pixels(box: BoundingBox, grid: ImageGrid) -> tuple[tuple[float, ...], ...]:
    """The inclusive corner voxels of a WEBKNOSSOS box as medstore pixel points (low, high).

    Raises:
        AnnotationError: An empty box.
    """
    if min(box.size) < 1:
        raise AnnotationError(f"bounding box {box.id}: size {box.size} is empty")
    low = np.array(box.top_left, dtype=np.float64)
    corners = grid.native_to_pixel([low, low + np.array(box.size) - 1])
    return tuple(corners.min(axis=0).tolist()), tuple(corners.max(axis=0).tolist())


def _pixels(ann: PointsAnnotation, grid: ImageGrid) -> FloatArray:
    if ann.coordinate_system == "patient":
        native = grid.patient_to_native(ann.points_array())
        return native
    points = ann.points_array()
    if points.shape[1] == 2:
        points = np.column_stack([points, np.full(len(points), float(ann.frame_index or 0))])
    return pixel_to_wk(points, grid)


def points_to_tree(
    ann: PointsAnnotation, grid: ImageGrid, *, tree_id: int, first_node_id: int = 1
) -> Tree:
    """A WEBKNOSSOS tree holding a medstore point annotation (a chain of nodes).

    Args:
        ann: Pixel or patient points.
        grid: The image's grid.
        tree_id: Id of the new tree.
        first_node_id: Id of its first node (the others follow).

    Returns:
        The tree, named after the annotation, nodes at the nearest dataset voxels.
    """
    positions = np.rint(_pixels(ann, grid)) + 0.0  # WEBKNOSSOS nodes sit on whole voxels
    nodes = [
        SkeletonNode(id=first_node_id + n, position=(float(p[0]), float(p[1]), float(p[2])))
        for n, p in enumerate(positions.tolist())
    ]
    edges = [SkeletonEdge(source=a.id, target=b.id) for a, b in itertools.pairwise(nodes)]
    return Tree(id=tree_id, name=ann.identifier, nodes=nodes, edges=edges)


def tree_to_points(tree: Tree, grid: ImageGrid) -> PointsAnnotation:
    """A tree's nodes as a medstore point (one node) or open polyline, in pixel coordinates.

    Raises:
        AnnotationError: An empty tree.
    """
    if not tree.nodes:
        raise AnnotationError(f"tree {tree.id} has no nodes")
    pixels = wk_to_pixel([node.position for node in tree.nodes], grid)
    points: Sequence[tuple[float, ...]] = [tuple(p) for p in pixels.tolist()]
    name = tree.name or f"tree {tree.id}"
    if len(points) == 1:
        return PointAnnotation(identifier=name, points=list(points))
    return PolylineAnnotation(identifier=name, points=list(points))


def skeleton_for(grid: ImageGrid, trees: Sequence[Tree], **fields: object) -> SkeletonAnnotation:
    """A skeleton of ``trees`` on the image, with its voxel size (so WEBKNOSSOS can load it)."""
    return SkeletonAnnotation(trees=list(trees), voxel_size=voxel_size_of(grid), **fields)
