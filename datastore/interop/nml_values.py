"""Reading NML attributes: checked numbers, colours and vectors, and fast nodes and edges.

An NML may hold millions of nodes, so nodes and edges are checked here by hand (ints, finite
floats, booleans; the rules the models' validation applies) and built without pydantic's
per-instance validation. Every refusal is an :class:`AnnotationError` naming the attribute.

Examples:
    >>> import xml.etree.ElementTree as ET
    >>> node = read_node(ET.fromstring('<node id="3" x="1" y="2" z="3" radius="1.5"/>'))
    >>> node.id, node.position, node.radius
    (3, (1.0, 2.0, 3.0), 1.5)
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from ..annotations.skeleton import SkeletonEdge, SkeletonNode
from ..errors import AnnotationError

__all__ = ["edge_from_attrs", "node_from_attrs", "read_edge", "read_node"]

_T = TypeVar("_T")
_NODE_ATTRS = frozenset({
    "id", "x", "y", "z", "radius", "rotX", "rotY", "rotZ",
    "inVp", "inMag", "bitDepth", "interpolation", "time",
})  # fmt: skip


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    raise ValueError(f"not a boolean: {text!r}")


def _get(
    el: ET.Element, name: str, conv: Callable[[str], _T], *, required: bool = False
) -> _T | None:
    raw = el.get(name)
    if raw is None:
        if required:
            raise AnnotationError(f"<{el.tag}> is missing the {name!r} attribute")
        return None
    try:
        return conv(raw)
    except ValueError as err:
        raise AnnotationError(f"<{el.tag}> has a bad {name!r}: {raw!r}") from err


def _number(text: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        return float(text)


def _int(text: str) -> int:
    return int(float(text)) if "." in text or "e" in text.lower() else int(text)


def _colour(el: ET.Element) -> tuple[float, float, float, float] | None:
    parts = [_get(el, f"color.{c}", float) for c in "rgba"]
    if all(p is None for p in parts):
        return None
    r, g, b, a = (1.0 if p is None else p for p in parts)
    return (r, g, b, a)


def _vec(el: ET.Element, names: tuple[str, str, str]) -> tuple[float, float, float] | None:
    values = [_get(el, n, float) for n in names]
    if any(v is None for v in values):
        return None
    x, y, z = (float(v or 0.0) for v in values)
    return (x, y, z)


def _ivec(el: ET.Element, names: tuple[str, str, str]) -> tuple[int, int, int] | None:
    values = [_get(el, n, _int) for n in names]
    if any(v is None for v in values):
        return None
    x, y, z = (int(v or 0) for v in values)
    return (x, y, z)


_NODE_FIELDS = set(SkeletonNode.model_fields)
_EDGE_FIELDS = set(SkeletonEdge.model_fields)
if list(SkeletonNode.model_fields) != [
    "id", "position", "radius", "rotation", "in_vp", "in_mag", "bit_depth", "interpolation",
    "time", "extra",
] or list(SkeletonEdge.model_fields) != ["source", "target"]:  # fmt: skip
    raise RuntimeError("SkeletonNode/SkeletonEdge fields changed: update nml._node/_edge")


def _read(tag: str, attrs: Mapping[str, str], name: str, conv: Callable[[str], _T]) -> _T:
    raw = attrs[name]
    try:
        return conv(raw)
    except ValueError as err:
        raise AnnotationError(f"<{tag}> has a bad {name!r}: {raw!r}") from err


def _finite(tag: str, attrs: Mapping[str, str], name: str) -> float | None:
    if name not in attrs:
        return None
    value = _read(tag, attrs, name, float)
    if not math.isfinite(value):
        raise AnnotationError(f"<{tag}> {name!r} must be finite, got {value}")
    return value


def _need_float(tag: str, attrs: Mapping[str, str], name: str) -> float:
    value = _finite(tag, attrs, name)
    if value is None:
        raise AnnotationError(f"<{tag}> is missing the {name!r} attribute")
    return value


def _need_int(tag: str, attrs: Mapping[str, str], name: str) -> int:
    if name not in attrs:
        raise AnnotationError(f"<{tag}> is missing the {name!r} attribute")
    return _read(tag, attrs, name, _int)


_M = TypeVar("_M", SkeletonNode, SkeletonEdge)


def _built(cls: type[_M], fields: set[str], values: dict[str, Any]) -> _M:
    """An instance from already-checked values, as ``model_construct`` makes it, minus its
    per-call bookkeeping (every field is given, in declaration order)."""
    obj = cls.__new__(cls)
    object.__setattr__(obj, "__dict__", values)
    object.__setattr__(obj, "__pydantic_fields_set__", fields)
    object.__setattr__(obj, "__pydantic_extra__", None)
    object.__setattr__(obj, "__pydantic_private__", None)
    return obj


def _optional(attrs: Mapping[str, str], name: str, conv: Callable[[str], _T]) -> _T | None:
    return None if name not in attrs else _read("node", attrs, name, conv)


def read_node(el: ET.Element) -> SkeletonNode:
    """A ``<node>`` element as a :class:`SkeletonNode` (values checked by hand)."""
    return node_from_attrs(el.attrib)


def _opt_float(text: str | None) -> float | None:
    return None if text is None else float(text)


def _opt_int(text: str | None) -> int | None:
    return None if text is None else int(text)


_BOOLS = {"true": True, "1": True, "false": False, "0": False}


def node_from_attrs(attrs: Mapping[str, str]) -> SkeletonNode:
    """A ``<node>``'s attributes as a :class:`SkeletonNode` (values checked by hand)."""
    # Built without pydantic's per-field validation (millions of nodes). The common case is
    # converted in one go; anything unusual (a missing or bad value, "1.0" for an int, a
    # non-finite float) goes through the attribute-by-attribute reader for its exact error.
    get = attrs.get
    try:
        position = (float(attrs["x"]), float(attrs["y"]), float(attrs["z"]))
        radius = _opt_float(get("radius"))
        rx, ry, rz = get("rotX"), get("rotY"), get("rotZ")
        rotation = None
        if rx is not None or ry is not None or rz is not None:  # a missing one: checked path
            rotation = (float(rx or ""), float(ry or ""), float(rz or ""))
        flag = get("interpolation")
        values = {
            "id": int(attrs["id"]),
            "position": position,
            "radius": radius,
            "rotation": rotation,
            "in_vp": _opt_int(get("inVp")),
            "in_mag": _opt_int(get("inMag")),
            "bit_depth": _opt_int(get("bitDepth")),
            "interpolation": None if flag is None else _BOOLS[flag.strip().lower()],
            "time": _opt_int(get("time")),
            "extra": {k: v for k, v in attrs.items() if k not in _NODE_ATTRS},
        }
    except (KeyError, ValueError, TypeError):
        return _checked_node(attrs)
    total = sum(position) + (radius or 0.0) + (sum(rotation) if rotation else 0.0)
    if not math.isfinite(total):  # one is NaN or infinite (or a huge sum): check one by one
        return _checked_node(attrs)
    return _built(SkeletonNode, _NODE_FIELDS, values)


def _checked_node(attrs: Mapping[str, str]) -> SkeletonNode:
    if not ("x" in attrs and "y" in attrs and "z" in attrs):
        raise AnnotationError("<node> needs x, y and z")
    position = (
        _need_float("node", attrs, "x"),
        _need_float("node", attrs, "y"),
        _need_float("node", attrs, "z"),
    )
    rotation = None
    if "rotX" in attrs or "rotY" in attrs or "rotZ" in attrs:
        rotation = (
            _need_float("node", attrs, "rotX"),
            _need_float("node", attrs, "rotY"),
            _need_float("node", attrs, "rotZ"),
        )
    values = {
        "id": _need_int("node", attrs, "id"),
        "position": position,
        "radius": _finite("node", attrs, "radius"),
        "rotation": rotation,
        "in_vp": _optional(attrs, "inVp", _int),
        "in_mag": _optional(attrs, "inMag", _int),
        "bit_depth": _optional(attrs, "bitDepth", _int),
        "interpolation": _optional(attrs, "interpolation", _bool),
        "time": _optional(attrs, "time", _int),
        "extra": {k: v for k, v in attrs.items() if k not in _NODE_ATTRS},
    }
    return _built(SkeletonNode, _NODE_FIELDS, values)


def read_edge(el: ET.Element) -> SkeletonEdge:
    """An ``<edge>`` element as a :class:`SkeletonEdge`."""
    return edge_from_attrs(el.attrib)


def edge_from_attrs(attrs: Mapping[str, str]) -> SkeletonEdge:
    """An ``<edge>``'s attributes as a :class:`SkeletonEdge`."""
    values = {
        "source": _need_int("edge", attrs, "source"),
        "target": _need_int("edge", attrs, "target"),
    }
    return _built(SkeletonEdge, _EDGE_FIELDS, values)
