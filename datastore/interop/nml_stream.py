"""Streaming an NML document through expat: nodes and edges straight from their attributes.

An NML may hold millions of ``<node>`` and ``<edge>`` elements. They are never made into
elements: expat hands their attributes to :func:`~.nml_values.node_from_attrs` /
:func:`~.nml_values.edge_from_attrs`, and each ``<thing>`` becomes a tree as soon as it ends.
Every other element goes into a small element tree (C ``TreeBuilder``) read afterwards. As with
defusedxml, a document type declaration, entity declarations and external entities are refused,
so entity-expansion bombs and external entities never resolve.

Examples:
    >>> root, trees = stream_nml(b'<things><thing id="1"><nodes><node id="1" x="1" y="2" z="3"/>'
    ...                          b'</nodes></thing><comments/></things>', tree=lambda el, n, e: n)
    >>> root.tag, [child.tag for child in root], trees[0][0].position
    ('things', ['comments'], (1.0, 2.0, 3.0))
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar
from xml.parsers import expat

from ..annotations.skeleton import SkeletonEdge, SkeletonNode
from ..errors import AnnotationError
from .nml_values import edge_from_attrs, node_from_attrs

__all__ = ["stream_nml"]

_T = TypeVar("_T")
_UNSAFE = "not a safe, well-formed NML document"


def _refuse(what: str) -> Callable[..., NoReturn]:
    def handler(*_: Any) -> NoReturn:
        raise AnnotationError(f"{_UNSAFE}: {what} are forbidden")

    return handler


def stream_nml(
    data: bytes,
    *,
    tree: Callable[[ET.Element, list[SkeletonNode], list[SkeletonEdge]], _T],
) -> tuple[ET.Element, list[_T]]:
    """Parse ``data``; each top-level ``<thing>`` goes through ``tree`` as soon as it ends.

    Args:
        data: The NML document.
        tree: Builds one tree from the ``<thing>`` element (without its nodes and edges) and the
            nodes and edges read from its ``<nodes>`` and ``<edges>``.

    Returns:
        The root element (its ``<thing>`` children removed) and the built trees, in order.

    Raises:
        AnnotationError: Not well-formed, a DTD or entity, or a root other than ``<things>``.
    """
    builder = ET.TreeBuilder()
    path: list[str] = []
    trees: list[_T] = []
    nodes: list[SkeletonNode] = []
    edges: list[SkeletonEdge] = []
    skipping = 0  # depth inside a consumed <node>/<edge> (children of one are ignored)
    root: list[ET.Element] = []

    def start(tag: str, attrs: dict[str, str]) -> None:
        nonlocal skipping
        if skipping:
            skipping += 1
            return
        depth = len(path)
        if depth == 3 and path[2] == "nodes" and tag == "node":
            nodes.append(node_from_attrs(attrs))
            skipping = 1
            return
        if depth == 3 and path[2] == "edges" and tag == "edge":
            edges.append(edge_from_attrs(attrs))
            skipping = 1
            return
        if depth == 0 and tag != "things":
            raise AnnotationError(f"not an NML document (root element <{tag}>, not <things>)")
        element = builder.start(tag, attrs)
        if depth == 0:
            root.append(element)
        path.append(tag)

    def end(tag: str) -> None:
        nonlocal skipping
        if skipping:
            skipping -= 1
            return
        path.pop()
        element = builder.end(tag)
        if len(path) == 1 and tag == "thing":
            trees.append(tree(element, nodes.copy(), edges.copy()))
            nodes.clear()
            edges.clear()
            root[0].remove(element)

    parser = expat.ParserCreate()
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartDoctypeDeclHandler = _refuse("document type declarations")
    parser.EntityDeclHandler = _refuse("entity declarations")
    parser.UnparsedEntityDeclHandler = _refuse("entity declarations")
    parser.ExternalEntityRefHandler = _refuse("external entities")
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    try:
        parser.Parse(data, True)
    except expat.ExpatError as err:
        raise AnnotationError(f"{_UNSAFE}: {err}") from err
    if not root:
        raise AnnotationError(f"{_UNSAFE}: it is empty")
    return root[0], trees
