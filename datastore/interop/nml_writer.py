"""Serialise a :class:`~medstore.datastore.annotations.SkeletonAnnotation` to WEBKNOSSOS NML XML.

WEBKNOSSOS cannot load an NML without ``<experiment name>`` and ``<scale>``: the dataset name
defaults to the annotation's identifier, and a skeleton without a voxel size is refused.

Examples:
    >>> from medstore.datastore.annotations import SkeletonAnnotation, VoxelSize
    >>> text = dump_nml(SkeletonAnnotation(voxel_size=VoxelSize(x=1, y=1, z=2, unit="mm")))
    >>> text.splitlines()[3].strip()
    '<experiment name="skeleton" />'
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from ..annotations.skeleton import (
    BoundingBox,
    MetadataEntry,
    SkeletonAnnotation,
    TreeGroup,
    VolumeLayer,
)
from ..errors import AnnotationError

__all__ = ["dump_nml"]


def _num(value: float | int) -> str:
    return str(value) if isinstance(value, int) else repr(float(value))


def _attrs(**values: object) -> dict[str, str]:
    out = {}
    for key, value in values.items():
        if value is None:
            continue
        if isinstance(value, bool):
            out[key] = "true" if value else "false"
        elif isinstance(value, int | float):
            out[key] = _num(value)
        else:
            out[key] = str(value)
    return out


def _colour(colour: tuple[float, ...] | None) -> dict[str, str]:
    if colour is None:
        return {}
    return {f"color.{c}": _num(v) for c, v in zip("rgba", colour, strict=False)}


def _metadata(parent: ET.Element, entries: list[MetadataEntry]) -> None:
    block = ET.SubElement(parent, "metadata")
    for entry in entries:
        value = entry.value
        if isinstance(value, bool):
            extra = {"boolValue": "true" if value else "false"}
        elif isinstance(value, float | int):
            extra = {"numberValue": _num(value)}
        elif isinstance(value, str):
            extra = {"stringValue": value}
        else:
            extra = {f"stringListValue-{i}": item for i, item in enumerate(value)}
        ET.SubElement(block, "metadataEntry", {"key": entry.key, **extra})


def _bbox(parent: ET.Element, tag: str, box: BoundingBox) -> None:
    attrs = _attrs(id=box.id, name=box.name, isVisible=box.is_visible)
    attrs.update(_colour(box.color))
    for name, value in zip(("topLeftX", "topLeftY", "topLeftZ"), box.top_left, strict=True):
        attrs[name] = _num(value)
    for name, value in zip(("width", "height", "depth"), box.size, strict=True):
        attrs[name] = _num(value)
    ET.SubElement(parent, tag, attrs)


def _group(parent: ET.Element, group: TreeGroup) -> None:
    el = ET.SubElement(
        parent, "group", _attrs(id=group.id, name=group.name, isExpanded=group.is_expanded)
    )
    for child in group.children:
        _group(el, child)


def _vec(names: tuple[str, str, str], values: tuple[float, ...] | None) -> dict[str, str]:
    return {} if values is None else {n: _num(float(v)) for n, v in zip(names, values, strict=True)}


def _parameters(root: ET.Element, sk: SkeletonAnnotation) -> None:
    params = ET.SubElement(root, "parameters")
    experiment = _attrs(
        name=sk.dataset_name or sk.identifier, organization=sk.organization_id,
        description=sk.description, datasetId=sk.dataset_id,
    )  # fmt: skip
    ET.SubElement(params, "experiment", {**experiment, **sk.experiment})
    if sk.voxel_size is None:
        raise AnnotationError(
            "voxel_size: WEBKNOSSOS cannot load an NML without <scale>; give the skeleton a "
            "voxel size (interop.wk_coords.voxel_size_of(grid) gives an image's)"
        )
    v = sk.voxel_size
    ET.SubElement(params, "scale", _attrs(x=v.x, y=v.y, z=v.z, unit=v.unit))
    if sk.time is not None:
        ET.SubElement(params, "time", {"ms": str(sk.time)})
    if sk.edit_position is not None:
        ET.SubElement(params, "editPosition", _vec(("x", "y", "z"), sk.edit_position))
    if sk.edit_rotation is not None:
        ET.SubElement(params, "editRotation", _vec(("xRot", "yRot", "zRot"), sk.edit_rotation))
    if sk.zoom_level is not None:
        ET.SubElement(params, "zoomLevel", {"zoom": _num(sk.zoom_level)})
    for tag, attrs in sk.parameters.items():
        ET.SubElement(params, tag, dict(attrs))
    if sk.task_bounding_box is not None:
        _bbox(params, "taskBoundingBox", sk.task_bounding_box)
    for box in sk.user_bounding_boxes:
        _bbox(params, "userBoundingBox", box)


def _trees(root: ET.Element, sk: SkeletonAnnotation) -> None:
    for tree in sk.trees:
        attrs = _attrs(id=tree.id, name=tree.name)
        attrs.update(_colour(tree.color))
        attrs.update(_attrs(isVisible=tree.is_visible, groupId=tree.group_id, type=tree.type))
        thing = ET.SubElement(root, "thing", attrs)
        nodes = ET.SubElement(thing, "nodes")
        for node in tree.nodes:
            x, y, z = node.position
            if not all(float(v).is_integer() for v in node.position):
                raise AnnotationError(
                    f"trees[{tree.id}].nodes[{node.id}].position: WEBKNOSSOS nodes sit on whole "
                    f"voxels, got {node.position}"
                )
            rot = node.rotation or (None, None, None)
            node_attrs = _attrs(
                id=node.id, x=x, y=y, z=z, radius=node.radius,
                rotX=rot[0], rotY=rot[1], rotZ=rot[2], inVp=node.in_vp, inMag=node.in_mag,
                bitDepth=node.bit_depth, interpolation=node.interpolation, time=node.time,
            )  # fmt: skip
            node_attrs.update(node.extra)
            ET.SubElement(nodes, "node", node_attrs)
        edges = ET.SubElement(thing, "edges")
        for edge in tree.edges:
            ET.SubElement(edges, "edge", _attrs(source=edge.source, target=edge.target))
        _metadata(thing, tree.metadata)


def _volume(root: ET.Element, layer: VolumeLayer) -> None:
    attrs = _attrs(
        id=layer.id, name=layer.name, location=layer.location,
        fallbackLayer=layer.fallback_layer, format=layer.format,
        largestSegmentId=layer.largest_segment_id,
    )  # fmt: skip
    volume = ET.SubElement(root, "volume", {**attrs, **layer.extra})
    segments = ET.SubElement(volume, "segments")
    for seg in layer.segments:
        anchor = seg.anchor_position or (None, None, None)
        seg_attrs = _attrs(
            id=seg.id, name=seg.name, anchorPositionX=anchor[0],
            anchorPositionY=anchor[1], anchorPositionZ=anchor[2], created=seg.created,
        )  # fmt: skip
        seg_attrs.update(_colour(seg.color))
        el = ET.SubElement(segments, "segment", {**seg_attrs, **seg.extra})
        if seg.metadata:
            _metadata(el, seg.metadata)


def dump_nml(sk: SkeletonAnnotation) -> str:
    """The NML document for ``sk`` (UTF-8 XML text with declaration).

    Args:
        sk: The skeleton.

    Returns:
        The XML text.

    Raises:
        AnnotationError: The skeleton has no voxel size.
    """
    root = ET.Element("things")
    meta = [("username", sk.owner_name), ("annotationId", sk.annotation_id)]
    for name, content in [*meta, *sk.metadata.items()]:
        if content is not None:
            ET.SubElement(root, "meta", {"name": name, "content": str(content)})
    _parameters(root, sk)
    _trees(root, sk)
    branchpoints = ET.SubElement(root, "branchpoints")
    for bp in sk.branchpoints:
        ET.SubElement(branchpoints, "branchpoint", _attrs(id=bp.id, time=bp.time))
    comments = ET.SubElement(root, "comments")
    for comment in sk.comments:
        ET.SubElement(comments, "comment", _attrs(node=comment.node, content=comment.content))
    groups = ET.SubElement(root, "groups")
    for group in sk.groups:
        _group(groups, group)
    for layer in sk.volumes:
        _volume(root, layer)
    ET.indent(root, space="  ")
    body = ET.tostring(root, encoding="unicode")
    return '<?xml version="1.0" encoding="utf-8"?>\n' + body + "\n"
