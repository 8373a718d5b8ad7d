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

from typing import Any, ClassVar, Self

from pydantic import AliasChoices, Field, field_validator, model_validator

from ..errors import AnnotationError
from .base import Annotation, Part

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

Colour = tuple[float, float, float, float]
Vec3 = tuple[float, float, float]
Vec3Int = tuple[int, int, int]

_METRIC = ("yocto", "zepto", "atto", "femto", "pico", "nano", "micro", "milli", "centi",
           "deci", "", "hecto", "kilo", "mega", "giga", "tera", "peta", "exa", "zetta",
           "yotta")  # fmt: skip
_SHORT = ("ym", "zm", "am", "fm", "pm", "nm", "µm", "mm", "cm", "dm", "m", "hm", "km", "Mm",
          "Gm", "Tm", "Pm", "Em", "Zm", "Ym")  # fmt: skip
#: WEBKNOSSOS length units (its ``LengthUnit``), by every name it accepts.
LENGTH_UNITS = {
    **{f"{prefix}meter": f"{prefix}meter" for prefix in _METRIC},
    **{short: f"{prefix}meter" for short, prefix in zip(_SHORT, _METRIC, strict=True)},
    **{name: name for name in ("angstrom", "inch", "foot", "yard", "mile", "parsec")},
    "Å": "angstrom", "in": "inch", "ft": "foot", "yd": "yard", "mi": "mile", "pc": "parsec",
}  # fmt: skip


class VoxelSize(Part):
    """Size of one voxel along x, y, z, with its unit (WEBKNOSSOS ``scale``).

    The unit is one of WEBKNOSSOS's length units, given by name or symbol (``"mm"`` becomes
    ``"millimeter"``).
    """

    x: float = Field(gt=0)
    y: float = Field(gt=0)
    z: float = Field(gt=0)
    unit: str = "nanometer"

    @field_validator("unit")
    @classmethod
    def _known_unit(cls, unit: str) -> str:
        if unit not in LENGTH_UNITS:
            raise ValueError(f"unknown length unit {unit!r} (WEBKNOSSOS knows e.g. nanometer, mm)")
        return LENGTH_UNITS[unit]


class SkeletonNode(Part):
    """A skeleton node with WEBKNOSSOS's optional attributes; unknown ones are kept in ``extra``."""

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


class SkeletonEdge(Part):
    """An edge between two node ids of the same tree."""

    source: int
    target: int


class MetadataEntry(Part):
    """A key with a string, number, boolean or string-list value."""

    key: str
    value: bool | int | float | str | list[str]


class Tree(Part):
    """One tree ("thing"): nodes, edges, display attributes and metadata."""

    id: int
    name: str = ""
    color: Colour | None = None
    is_visible: bool | None = None
    group_id: int | None = None
    type: str | None = None
    nodes: list[SkeletonNode] = Field(default_factory=list)
    edges: list[SkeletonEdge] = Field(default_factory=list)
    metadata: list[MetadataEntry] = Field(default_factory=list)


class TreeGroup(Part):
    """A named group of trees; groups nest."""

    id: int
    name: str = ""
    is_expanded: bool | None = None
    children: list[TreeGroup] = Field(default_factory=list)


class Comment(Part):
    """A text comment attached to a node."""

    node: int
    content: str


class Branchpoint(Part):
    """A node marked as a branchpoint, with an optional timestamp (ms)."""

    id: int
    time: int | None = None


class BoundingBox(Part):
    """A user (or task) bounding box: top-left voxel and size."""

    id: int | None = None
    name: str | None = None
    is_visible: bool | None = None
    color: Colour | None = None
    top_left: tuple[int, int, int]
    size: tuple[int, int, int]


class SegmentInfo(Part):
    """Segment information of a volume layer: name, anchor position, colour."""

    id: int
    name: str | None = None
    anchor_position: Vec3Int | None = None
    color: Colour | None = None
    created: int | None = None
    metadata: list[MetadataEntry] = Field(default_factory=list)
    extra: dict[str, str] = Field(default_factory=dict)


class VolumeLayer(Part):
    """A volume layer's description; its voxels live in the zip (``location``) or a label."""

    id: int
    name: str | None = None
    location: str | None = None
    fallback_layer: str | None = None
    format: str | None = None
    largest_segment_id: int | None = None
    segments: list[SegmentInfo] = Field(default_factory=list)
    extra: dict[str, str] = Field(default_factory=dict)


def _float3(attrs: dict[str, str], names: tuple[str, str, str]) -> tuple[float, ...] | None:
    if not all(name in attrs for name in names):
        return None
    return tuple(float(attrs[name]) for name in names)


def _fold_legacy(data: dict[str, Any]) -> dict[str, Any]:
    """Raw NML pieces (``experiment``, ``meta``, ``parameters``) -> the typed fields."""
    data = dict(data)
    experiment = dict(data.get("experiment") or {})
    for key, field in (("name", "dataset_name"), ("organization", "organization_id"),
                       ("datasetId", "dataset_id"), ("description", "description")):  # fmt: skip
        if key in experiment and data.get(field) is None:
            data[field] = experiment.pop(key)
    data["experiment"] = experiment
    metadata = dict(data.get("metadata") or {})
    for name, content in data.pop("meta", None) or []:
        typed = {"username": "owner_name", "annotationId": "annotation_id"}.get(name)
        if typed is not None and data.get(typed) is None:
            data[typed] = content
        else:
            metadata[name] = content
    data["metadata"] = metadata
    parameters = dict(data.get("parameters") or {})
    try:
        if "time" in parameters and data.get("time") is None:
            data["time"] = int(parameters.pop("time")["ms"])
        vectors = (("editPosition", "edit_position", ("x", "y", "z")),
                   ("editRotation", "edit_rotation", ("xRot", "yRot", "zRot")))  # fmt: skip
        for tag, field, names in vectors:
            if tag in parameters and data.get(field) is None:
                data[field] = _float3(parameters.pop(tag), names)
        if "zoomLevel" in parameters and data.get("zoom_level") is None:
            data["zoom_level"] = float(parameters.pop("zoomLevel")["zoom"])
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(
            f"parameters: bad time/editPosition/editRotation/zoomLevel ({err})"
        ) from err
    data["parameters"] = parameters
    return data


def _group_ids(groups: list[TreeGroup]) -> set[int]:
    return {g.id for group in groups for g in (group, *_walk(group.children))}


def _walk(groups: list[TreeGroup]) -> list[TreeGroup]:
    return [g for group in groups for g in (group, *_walk(group.children))]


class SkeletonAnnotation(Annotation):
    """A WEBKNOSSOS annotation as an NML file holds it: skeleton, boxes, volume layer info.

    The annotation-level fields carry the ``webknossos.Annotation`` names: ``dataset_name``,
    ``organization_id``, ``dataset_id``, ``description``, ``owner_name``, ``annotation_id``,
    ``time`` (ms), ``edit_position``, ``edit_rotation``, ``zoom_level`` and ``metadata`` (string
    values, the NML's ``<meta>`` entries).
    """

    TYPE: ClassVar[str] = "skeleton"

    identifier: str = Field(
        "skeleton", min_length=1, validation_alias=AliasChoices("identifier", "name", "label")
    )
    dataset_name: str | None = None
    organization_id: str | None = None
    dataset_id: str | None = None
    description: str | None = None
    owner_name: str | None = None
    annotation_id: str | None = None
    time: int | None = None
    edit_position: Vec3 | None = None
    edit_rotation: Vec3 | None = None
    zoom_level: float | None = None
    experiment: dict[str, str] = Field(default_factory=dict)
    voxel_size: VoxelSize | None = None
    parameters: dict[str, dict[str, str]] = Field(default_factory=dict)
    task_bounding_box: BoundingBox | None = None
    user_bounding_boxes: list[BoundingBox] = Field(default_factory=list)
    trees: list[Tree] = Field(default_factory=list)
    groups: list[TreeGroup] = Field(default_factory=list)
    comments: list[Comment] = Field(default_factory=list)
    branchpoints: list[Branchpoint] = Field(default_factory=list)
    volumes: list[VolumeLayer] = Field(default_factory=list)

    @property
    def value(self) -> str | None:
        """Datamint's ``value`` (its ``text_value``): kept from a Datamint dict, else None."""
        return self._kept_text_value()

    @model_validator(mode="before")
    @classmethod
    def _typed_fields(cls, data: Any) -> Any:
        return _fold_legacy(data) if isinstance(data, dict) else data

    @model_validator(mode="after")
    def _check_graph(self) -> Self:
        bad = [key for key, value in self.metadata.items() if not isinstance(value, str)]
        if bad:
            raise ValueError(f"metadata values must be strings (WEBKNOSSOS <meta>): {bad[:3]}")
        tree_ids: set[int] = set()
        node_ids: set[int] = set()
        groups = _group_ids(self.groups)
        for tree in self.trees:
            if tree.id in tree_ids:
                raise ValueError(f"duplicate tree id {tree.id}")
            tree_ids.add(tree.id)
            if tree.group_id is not None and tree.group_id not in groups:
                raise ValueError(f"tree {tree.id} is in group {tree.group_id}, which is missing")
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
        for comment in self.comments:
            if comment.node not in node_ids:
                raise ValueError(f"a comment refers to node {comment.node}, which is missing")
        for point in self.branchpoints:
            if point.id not in node_ids:
                raise ValueError(f"a branchpoint refers to node {point.id}, which is missing")
        return self

    @property
    def node_count(self) -> int:
        """Number of nodes over all trees."""
        return sum(len(tree.nodes) for tree in self.trees)

    def get_volume_layer_names(self) -> list[str]:
        """Names of the volume layers (``webknossos.Annotation.get_volume_layer_names``)."""
        return [layer.name or f"volume {layer.id}" for layer in self.volumes]

    def get_volume_layer(
        self, volume_layer_name: str | None = None, volume_layer_id: int | None = None
    ) -> VolumeLayer:
        """One volume layer by name or id (the only one when neither is given).

        Raises:
            AnnotationError: No such layer, or several and none named.
        """
        found = [
            layer
            for layer in self.volumes
            if (volume_layer_name is None or layer.name == volume_layer_name)
            and (volume_layer_id is None or layer.id == volume_layer_id)
        ]
        if len(found) != 1:
            raise AnnotationError(
                f"{len(found)} volume layers match name={volume_layer_name!r} "
                f"id={volume_layer_id!r} (layers: {self.get_volume_layer_names()})"
            )
        return found[0]

    def get_volume_layer_segments(
        self, volume_layer_name: str | None = None, volume_layer_id: int | None = None
    ) -> dict[int, SegmentInfo]:
        """``{segment id: segment information}`` of a volume layer."""
        layer = self.get_volume_layer(volume_layer_name, volume_layer_id)
        return {segment.id: segment for segment in layer.segments}

    def add_volume_layer(
        self, name: str, *, volume_layer_id: int | None = None, fallback_layer: str | None = None
    ) -> VolumeLayer:
        """Add an empty zarr3 volume layer description (its voxels come from a label on export).

        Raises:
            AnnotationError: The id or name is taken.
        """
        if volume_layer_id is None:
            volume_layer_id = max((layer.id for layer in self.volumes), default=-1) + 1
        if any(layer.id == volume_layer_id or layer.name == name for layer in self.volumes):
            raise AnnotationError(f"volume layer {name!r} / id {volume_layer_id} already exists")
        layer = VolumeLayer(
            id=volume_layer_id, name=name, fallback_layer=fallback_layer, format="zarr3"
        )
        self.volumes.append(layer)
        return layer

    def delete_volume_layer(
        self, volume_layer_name: str | None = None, volume_layer_id: int | None = None
    ) -> None:
        """Remove a volume layer (by name or id)."""
        layer = self.get_volume_layer(volume_layer_name, volume_layer_id)
        self.volumes = [other for other in self.volumes if other is not layer]
