"""Serialise a :class:`~medstore.datastore.annotations.SkeletonAnnotation` to WEBKNOSSOS NML XML.

Examples:
    >>> from medstore.datastore.annotations import SkeletonAnnotation
    >>> dump_nml(SkeletonAnnotation()).splitlines()[1]
    '<things>'
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from ..annotations.skeleton import (
    BoundingBox,
    MetadataEntry,
    SkeletonAnnotation,
    TreeGroup,
)

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


def _parameters(root: ET.Element, sk: SkeletonAnnotation) -> None:
    params = ET.SubElement(root, "parameters")
    if sk.experiment:
        ET.SubElement(params, "experiment", dict(sk.experiment))
    if sk.voxel_size is not None:
        v = sk.voxel_size
        ET.SubElement(params, "scale", _attrs(x=v.x, y=v.y, z=v.z, unit=v.unit))
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


def dump_nml(sk: SkeletonAnnotation) -> str:
    """The NML document for ``sk`` (UTF-8 XML text with declaration).

    Args:
        sk: The skeleton.

    Returns:
        The XML text.
    """
    root = ET.Element("things")
    for name, content in sk.meta:
        ET.SubElement(root, "meta", {"name": name, "content": content})
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
        attrs = _attrs(
            id=layer.id, name=layer.name, location=layer.location,
            fallbackLayer=layer.fallback_layer,
        )  # fmt: skip
        volume = ET.SubElement(root, "volume", attrs)
        segments = ET.SubElement(volume, "segments")
        for seg in layer.segments:
            anchor = seg.anchor_position or (None, None, None)
            seg_attrs = _attrs(
                id=seg.id, name=seg.name, anchorPositionX=anchor[0],
                anchorPositionY=anchor[1], anchorPositionZ=anchor[2],
            )  # fmt: skip
            seg_attrs.update(_colour(seg.color))
            el = ET.SubElement(segments, "segment", seg_attrs)
            if seg.metadata:
                _metadata(el, seg.metadata)
    ET.indent(root, space="  ")
    body = ET.tostring(root, encoding="unicode")
    return '<?xml version="1.0" encoding="utf-8"?>\n' + body + "\n"
