"""WEBKNOSSOS-style skeleton annotation: trees of nodes and edges, groups, comments, branchpoints.

Positions are dataset voxel coordinates ``(x, y, z)`` (mag 1); ``voxel_size`` gives their size.

Examples:
    >>> tree = Tree(id=1, name="axon", nodes=[SkeletonNode(id=1, position=(0, 0, 0)),
    ...     SkeletonNode(id=2, position=(3, 4, 0))], edges=[SkeletonEdge(source=1, target=2)])
    >>> sk = SkeletonAnnotation(trees=[tree], voxel_size=VoxelSize(x=1, y=1, z=1))
    >>> (sk.node_count, sk.annotation_type)
    (2, 'skeleton')
"""

from __future__ import annotations

from typing import ClassVar, Self

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, model_validator

from .base import Annotation

__all__ = [
    "BoundingBox",
    "Branchpoint",
    "Comment",
    "MetadataEntry",
    "SegmentInfo",
    "SkeletonAnnotation",
    "SkeletonEdge",
    "SkeletonNode",
    "Tree",
    "TreeGroup",
    "VolumeLayer",
    "VoxelSize",
]

_STRICT = ConfigDict(extra="forbid", allow_inf_nan=False, populate_by_name=True)
Colour = tuple[float, float, float, float]
Vec3 = tuple[float, float, float]


class VoxelSize(BaseModel):
    """Size of one voxel along x, y, z, with its unit (WEBKNOSSOS ``scale``)."""

    model_config = _STRICT

    x: float = Field(gt=0)
    y: float = Field(gt=0)
    z: float = Field(gt=0)
    unit: str = "nanometer"


class SkeletonNode(BaseModel):
    """A skeleton node with WEBKNOSSOS's optional attributes; unknown ones are kept in ``extra``."""

    model_config = _STRICT

    id: int
    position: Vec3
    radius: float | None = None
    rotation: Vec3 | None = None
    in_vp: int | None = None
    in_mag: int | None = None
    bit_depth: int | None = None
    interpolation: bool | None = None
    time: int | None = None
    extra: dict[str, str] = Field(default_factory=dict)


class SkeletonEdge(BaseModel):
    """An edge between two node ids of the same tree."""

    model_config = _STRICT

    source: int
    target: int


class MetadataEntry(BaseModel):
    """A key with a string, number, boolean or string-list value."""

    model_config = _STRICT

    key: str
    value: bool | float | str | list[str]


class Tree(BaseModel):
    """One tree ("thing"): nodes, edges, display attributes and metadata."""

    model_config = _STRICT

    id: int
    name: str = ""
    color: Colour | None = None
    is_visible: bool | None = None
    group_id: int | None = None
    type: str | None = None
    nodes: list[SkeletonNode] = Field(default_factory=list)
    edges: list[SkeletonEdge] = Field(default_factory=list)
    metadata: list[MetadataEntry] = Field(default_factory=list)


class TreeGroup(BaseModel):
    """A named group of trees; groups nest."""

    model_config = _STRICT

    id: int
    name: str = ""
    is_expanded: bool | None = None
    children: list[TreeGroup] = Field(default_factory=list)


class Comment(BaseModel):
    """A text comment attached to a node."""

    model_config = _STRICT

    node: int
    content: str


class Branchpoint(BaseModel):
    """A node marked as a branchpoint, with an optional timestamp (ms)."""

    model_config = _STRICT

    id: int
    time: int | None = None


class BoundingBox(BaseModel):
    """A user (or task) bounding box: top-left voxel and size."""

    model_config = _STRICT

    id: int | None = None
    name: str | None = None
    is_visible: bool | None = None
    color: Colour | None = None
    top_left: tuple[int, int, int]
    size: tuple[int, int, int]


class SegmentInfo(BaseModel):
    """Segment information of a volume layer: name, anchor position, colour."""

    model_config = _STRICT

    id: int
    name: str | None = None
    anchor_position: Vec3 | None = None
    color: Colour | None = None
    metadata: list[MetadataEntry] = Field(default_factory=list)


class VolumeLayer(BaseModel):
    """A volume layer's description (its voxel data is not handled here)."""

    model_config = _STRICT

    id: int
    name: str | None = None
    location: str | None = None
    fallback_layer: str | None = None
    segments: list[SegmentInfo] = Field(default_factory=list)


class SkeletonAnnotation(Annotation):
    """A WEBKNOSSOS skeleton annotation (what an NML file holds)."""

    TYPE: ClassVar[str] = "skeleton"

    identifier: str = Field(
        "skeleton", min_length=1, validation_alias=AliasChoices("identifier", "name", "label")
    )
    experiment: dict[str, str] = Field(default_factory=dict)
    voxel_size: VoxelSize | None = None
    meta: list[tuple[str, str]] = Field(default_factory=list)
    parameters: dict[str, dict[str, str]] = Field(default_factory=dict)
    task_bounding_box: BoundingBox | None = None
    user_bounding_boxes: list[BoundingBox] = Field(default_factory=list)
    trees: list[Tree] = Field(default_factory=list)
    groups: list[TreeGroup] = Field(default_factory=list)
    comments: list[Comment] = Field(default_factory=list)
    branchpoints: list[Branchpoint] = Field(default_factory=list)
    volumes: list[VolumeLayer] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check_graph(self) -> Self:
        tree_ids: set[int] = set()
        node_ids: set[int] = set()
        for tree in self.trees:
            if tree.id in tree_ids:
                raise ValueError(f"duplicate tree id {tree.id}")
            tree_ids.add(tree.id)
            own: set[int] = set()
            for node in tree.nodes:
                if node.id in node_ids:
                    raise ValueError(f"duplicate node id {node.id}")
                node_ids.add(node.id)
                own.add(node.id)
            for edge in tree.edges:
                if edge.source not in own or edge.target not in own:
                    raise ValueError(
                        f"edge {edge.source}->{edge.target} of tree {tree.id} "
                        "refers to a node missing from that tree"
                    )
        return self

    @property
    def node_count(self) -> int:
        """Number of nodes over all trees."""
        return sum(len(tree.nodes) for tree in self.trees)
