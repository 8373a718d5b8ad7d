"""WEBKNOSSOS NML skeleton files (``.nml``, or a ``.zip`` holding one) read and written.

Parsing streams through expat with document type declarations, entities and external entities
refused (as defusedxml does), so entity-expansion bombs never resolve. A zip's volume layer data
are read by :mod:`~medstore.datastore.interop.wk_volume`; here the NML's description of them is
kept.

Examples:
    >>> from medstore.datastore.annotations import SkeletonAnnotation, Tree, SkeletonNode, VoxelSize
    >>> sk = SkeletonAnnotation(voxel_size=VoxelSize(x=1, y=1, z=2, unit="millimeter"),
    ...     dataset_name="ct_1",
    ...     trees=[Tree(id=1, name="t", nodes=[SkeletonNode(id=1, position=(1, 2, 3))])])
    >>> parse_nml(dump_nml(sk)) == sk
    True
"""

from __future__ import annotations

import io
import os
import re
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any

from pydantic import ValidationError

from ..annotations.base import wrap_validation_error
from ..annotations.skeleton import (
    BoundingBox,
    Branchpoint,
    Comment,
    MetadataEntry,
    SegmentInfo,
    SkeletonAnnotation,
    SkeletonEdge,
    SkeletonNode,
    Tree,
    TreeGroup,
    VolumeLayer,
    VoxelSize,
)
from ..durable import atomic_write_bytes
from ..errors import AnnotationError
from .nml_stream import stream_nml
from .nml_values import _bool, _colour, _get, _int, _ivec, _number, _vec
from .nml_writer import dump_nml

__all__ = ["MAX_NML_BYTES", "dump_nml", "load_nml", "parse_nml", "save_nml"]

#: Largest NML (uncompressed) read, against zip bombs.
MAX_NML_BYTES = 512 * 1024 * 1024
_ANCHOR = ("anchorPositionX", "anchorPositionY", "anchorPositionZ")
_COLOUR = ("color.r", "color.g", "color.b", "color.a")
_SEGMENT_ATTRS = frozenset({"id", "name", "created", *_ANCHOR, *_COLOUR})
_VOLUME_ATTRS = frozenset({"id", "name", "location", "fallbackLayer", "format", "largestSegmentId"})


# ---------------------------------------------------------------------------------- reading


def _metadata(parent: ET.Element | None) -> list[MetadataEntry]:
    entries: list[MetadataEntry] = []
    for el in parent.findall("metadataEntry") if parent is not None else []:
        key = _get(el, "key", str, required=True)
        value: Any
        if "stringValue" in el.attrib:
            value = el.attrib["stringValue"]
        elif "numberValue" in el.attrib:
            value = _get(el, "numberValue", _number)
        elif "boolValue" in el.attrib:
            value = _get(el, "boolValue", _bool)
        else:
            items = sorted(
                (int(k.rsplit("-", 1)[1]), v)
                for k, v in el.attrib.items()
                if k.startswith("stringListValue-")
            )
            value = [v for _, v in items]
        entries.append(MetadataEntry(key=str(key), value=value))
    return entries


def _bbox(el: ET.Element) -> BoundingBox:
    names = ("topLeftX", "topLeftY", "topLeftZ", "width", "height", "depth")
    values = [_get(el, name, _int, required=True) for name in names]
    top = (int(values[0] or 0), int(values[1] or 0), int(values[2] or 0))
    size = (int(values[3] or 0), int(values[4] or 0), int(values[5] or 0))
    return BoundingBox(
        id=_get(el, "id", _int),
        name=el.get("name"),
        is_visible=_get(el, "isVisible", _bool),
        color=_colour(el),
        top_left=top,
        size=size,
    )


# Every field is given, so one shared "fields set" per class is exact (saves a set per node).
def _tree(el: ET.Element, nodes: list[SkeletonNode], edges: list[SkeletonEdge]) -> Tree:
    return Tree(
        id=_get(el, "id", _int, required=True),
        name=el.get("name", ""),
        color=_colour(el),
        is_visible=_get(el, "isVisible", _bool),
        group_id=_get(el, "groupId", _int),
        type=el.get("type"),
        nodes=nodes,
        edges=edges,
        metadata=_metadata(el.find("metadata")),
    )


def _group(el: ET.Element) -> TreeGroup:
    return TreeGroup(
        id=_get(el, "id", _int, required=True),
        name=el.get("name", ""),
        is_expanded=_get(el, "isExpanded", _bool),
        children=[_group(child) for child in el.findall("group")],
    )


def _volume(el: ET.Element) -> VolumeLayer:
    segments_el = el.find("segments")
    segments = [
        SegmentInfo(
            id=_get(s, "id", _int, required=True),
            name=s.get("name"),
            anchor_position=_ivec(s, _ANCHOR),
            color=_colour(s),
            created=_get(s, "created", _int),
            metadata=_metadata(s.find("metadata")),
            extra={k: v for k, v in s.attrib.items() if k not in _SEGMENT_ATTRS},
        )
        for s in (segments_el.findall("segment") if segments_el is not None else [])
    ]
    return VolumeLayer(
        id=_get(el, "id", _int, required=True),
        name=el.get("name"),
        location=el.get("location"),
        fallback_layer=el.get("fallbackLayer"),
        format=el.get("format"),
        largest_segment_id=_get(el, "largestSegmentId", _int),
        segments=segments,
        extra={k: v for k, v in el.attrib.items() if k not in _VOLUME_ATTRS},
    )


def _parameters(el: ET.Element | None, fields: dict[str, Any]) -> None:
    fields["parameters"] = {}
    fields["user_bounding_boxes"] = []
    for child in el if el is not None else []:
        if child.tag == "experiment":
            fields["experiment"] = dict(child.attrib)
        elif child.tag == "scale":
            xyz = _vec(child, ("x", "y", "z"))
            if xyz is None:
                raise AnnotationError("<scale> needs x, y and z")
            fields["voxel_size"] = VoxelSize(
                x=xyz[0], y=xyz[1], z=xyz[2], unit=child.get("unit", "nanometer")
            )
        elif child.tag == "userBoundingBox":
            fields["user_bounding_boxes"].append(_bbox(child))
        elif child.tag == "taskBoundingBox":
            fields["task_bounding_box"] = _bbox(child)
        else:
            fields["parameters"][child.tag] = dict(child.attrib)


def parse_nml(data: bytes | str, *, identifier: str = "skeleton") -> SkeletonAnnotation:
    """Parse NML text into a :class:`SkeletonAnnotation`.

    Args:
        data: The NML document.
        identifier: The annotation's name.

    Returns:
        The skeleton, with every tree, node attribute, edge, group, comment, branchpoint,
        metadata entry, bounding box, voxel size and volume segment information.

    Raises:
        AnnotationError: Not XML, entities/DTD present, not an NML, or an inconsistent graph.
    """
    raw = data.encode("utf-8") if isinstance(data, str) else data
    try:
        # Streamed: nodes and edges are read from their attributes, never made elements, and
        # each <thing> becomes a Tree as soon as it ends (see nml_stream).
        root, trees = stream_nml(raw, tree=_tree)
    except ValidationError as err:
        raise wrap_validation_error(err, "NML document") from err
    try:
        return _skeleton(root, identifier, trees)
    except ValidationError as err:
        raise wrap_validation_error(err, "NML document") from err


def _skeleton(root: ET.Element, identifier: str, trees: list[Tree]) -> SkeletonAnnotation:
    fields: dict[str, Any] = {
        "identifier": identifier,
        "meta": [(m.get("name", ""), m.get("content", "")) for m in root.findall("meta")],
    }
    _parameters(root.find("parameters"), fields)
    fields["trees"] = trees
    fields["branchpoints"] = [
        Branchpoint(id=_get(b, "id", _int, required=True), time=_get(b, "time", _int))
        for b in root.findall("branchpoints/branchpoint")
    ]
    fields["comments"] = [
        Comment(node=_get(c, "node", _int, required=True), content=c.get("content", ""))
        for c in root.findall("comments/comment")
    ]
    fields["groups"] = [_group(g) for g in root.findall("groups/group")]
    fields["volumes"] = [_volume(v) for v in root.findall("volume")]
    return SkeletonAnnotation(**fields)


def _read_zip(path: Path) -> tuple[str, bytes]:
    """The stem and text of the one NML of an annotation zip (volume data is ``wk_volume``'s)."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = [i for i in archive.infolist() if not i.is_dir()]
            nmls = [i for i in members if i.filename.lower().endswith(".nml")]
            if len(nmls) != 1:
                raise AnnotationError(f"{path.name} holds {len(nmls)} .nml files, expected one")
            if nmls[0].file_size > MAX_NML_BYTES:
                raise AnnotationError(f"{nmls[0].filename} is larger than {MAX_NML_BYTES} bytes")
            with archive.open(nmls[0]) as handle:
                data = handle.read(MAX_NML_BYTES + 1)  # the header's size may lie
            if len(data) > MAX_NML_BYTES:
                raise AnnotationError(f"{nmls[0].filename} is larger than {MAX_NML_BYTES} bytes")
            return PurePosixPath(nmls[0].filename).stem, data
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError) as err:
        raise AnnotationError(f"{path.name} is not a valid zip file: {err}") from err


def load_nml(path: str | os.PathLike[str], *, identifier: str | None = None) -> SkeletonAnnotation:
    """Read an ``.nml`` file, or a ``.zip`` holding one.

    Args:
        path: The file.
        identifier: The annotation's name; by default, as webknossos' ``Annotation.load`` names
            it, the stem of the ``.nml`` file (for a zip, of the ``.nml`` inside it).

    Returns:
        The skeleton annotation.

    Raises:
        AnnotationError: Malformed NML (see :func:`parse_nml`) or a bad zip.
    """
    path = Path(path)
    if zipfile.is_zipfile(path):
        stem, data = _read_zip(path)
    else:
        if path.stat().st_size > MAX_NML_BYTES:
            raise AnnotationError(f"{path.name} is larger than {MAX_NML_BYTES} bytes")
        stem, data = path.stem, path.read_bytes()
    return parse_nml(data, identifier=(stem or "skeleton") if identifier is None else identifier)


# ---------------------------------------------------------------------------------- writing


def save_nml(annotation: SkeletonAnnotation, path: str | os.PathLike[str]) -> Path:
    """Write ``annotation`` as ``.nml``, or as a ``.zip`` holding ``<stem>.nml``, durably.

    Args:
        annotation: The skeleton.
        path: Target file; a ``.zip`` suffix makes a zip.

    Returns:
        The path written.

    Raises:
        AnnotationError: ``annotation`` is not a skeleton.
    """
    if not isinstance(annotation, SkeletonAnnotation):
        raise AnnotationError(
            f"only skeleton annotations export to NML, not {type(annotation).__name__}"
        )
    path = Path(path)
    data = dump_nml(annotation).encode("utf-8")
    if path.suffix.lower() == ".zip":
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(f"{re.sub(r'[^A-Za-z0-9._-]', '_', path.stem)}.nml", data)
        data = buffer.getvalue()
    atomic_write_bytes(path, data, point="nml")
    return path
