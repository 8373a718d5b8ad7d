"""The project annotation schema: which identifiers, types, scopes and category values are allowed.

Kept in ``<root>/.medstore/schema.json`` as ``{"format_version": 1, "annotations": [spec, ...]}``.

Examples:
    >>> from medstore.datastore.annotations import CategoryAnnotation
    >>> schema = ProjectSchema(annotations=[AnnotationSpec(identifier="finding", type="category",
    ...                                                    values=["benign", "malignant"])])
    >>> schema.check(CategoryAnnotation(identifier="finding", value="benign"))
    >>> schema.check(CategoryAnnotation(identifier="finding", value="odd"))
    Traceback (most recent call last):
    ...
    medstore.datastore.errors.AnnotationError: 'finding': value 'odd' is not one of [...]
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Literal, Protocol

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .. import nofollow
from ..durable import atomic_write_bytes
from ..errors import AnnotationError
from .base import Annotation, wrap_validation_error
from .classification import CategoryAnnotation, MultiCategoryAnnotation
from .registry import annotation_class

__all__ = ["SCHEMA_FORMAT_VERSION", "AnnotationSpec", "ProjectSchema", "load_schema", "save_schema"]

SCHEMA_FORMAT_VERSION = 1


class _SideStore(Protocol):
    @property
    def read_only(self) -> bool: ...

    def side_path(self, *parts: str) -> Path: ...

    def check_writable(self) -> None: ...

    def locked(self) -> AbstractContextManager[Any]: ...


class AnnotationSpec(BaseModel):
    """One allowed annotation: its identifier, type, scope, required flag, values and colour."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    identifier: str = Field(min_length=1)
    type: str
    scope: Literal["image", "frame"] | None = None
    required: bool = False
    values: list[str] | None = None
    color: str | tuple[float, ...] | None = None

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as err:
            raise wrap_validation_error(err, "annotation spec") from err

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        try:
            return annotation_class(value).TYPE
        except AnnotationError as err:
            raise ValueError(str(err)) from err


class ProjectSchema(BaseModel):
    """The list of :class:`AnnotationSpec`; an empty list allows everything."""

    model_config = ConfigDict(extra="forbid")

    format_version: int = SCHEMA_FORMAT_VERSION
    annotations: list[AnnotationSpec] = Field(default_factory=list)

    def spec_for(self, identifier: str) -> list[AnnotationSpec]:
        """The specs naming ``identifier`` (several when it may have several types)."""
        return [spec for spec in self.annotations if spec.identifier == identifier]

    def check(self, ann: Annotation) -> None:
        """Refuse an annotation that breaks the schema.

        Args:
            ann: The annotation.

        Raises:
            AnnotationError: Unknown identifier, wrong type or scope, or a value not allowed.
        """
        if not self.annotations:
            return
        specs = self.spec_for(ann.identifier)
        if not specs:
            raise AnnotationError(f"{ann.identifier!r} is not in the project schema")
        typed = [spec for spec in specs if spec.type == ann.annotation_type]
        if not typed:
            wanted = sorted({spec.type for spec in specs})
            raise AnnotationError(
                f"{ann.identifier!r}: type {ann.annotation_type!r} is not one of {wanted}"
            )
        spec = typed[0]
        if spec.scope is not None and spec.scope != ann.scope:
            raise AnnotationError(f"{ann.identifier!r}: scope must be {spec.scope!r}")
        if spec.values is not None:
            given: list[str] = []
            if isinstance(ann, CategoryAnnotation):
                given = [ann.value]
            elif isinstance(ann, MultiCategoryAnnotation):
                given = list(ann.values)
            for value in given:
                if value not in spec.values:
                    raise AnnotationError(
                        f"{ann.identifier!r}: value {value!r} is not one of {spec.values}"
                    )

    def missing_required(self, anns: Iterable[Annotation]) -> list[str]:
        """Identifiers of required specs that none of ``anns`` (not deleted) provides."""
        present = {ann.identifier for ann in anns if not ann.deleted}
        return sorted({s.identifier for s in self.annotations if s.required} - present)


def _schema_path(store: _SideStore) -> Path:
    return store.side_path("schema.json")


def load_schema(store: _SideStore) -> ProjectSchema | None:
    """Read ``.medstore/schema.json``.

    Args:
        store: The store.

    Returns:
        The schema, or ``None`` when there is none.

    Raises:
        AnnotationError: The file is unreadable or invalid.
    """
    path = _schema_path(store)
    try:
        raw = nofollow.read_bytes(path)  # a planted link is refused, never read
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        data: Any = orjson.loads(raw)
    except orjson.JSONDecodeError as err:
        raise AnnotationError(f"{path} is not valid JSON: {err}") from err
    if isinstance(data, dict) and data.get("format_version", 1) > SCHEMA_FORMAT_VERSION:
        raise AnnotationError(f"{path} was written by a newer medstore")
    try:
        return ProjectSchema.model_validate(data)
    except ValidationError as err:
        raise wrap_validation_error(err, "project schema") from err


def save_schema(store: _SideStore, specs: Iterable[AnnotationSpec]) -> ProjectSchema:
    """Write ``.medstore/schema.json`` durably.

    Args:
        store: The store (must be writable).
        specs: The specs.

    Returns:
        The schema written.

    Raises:
        ReadOnlyError: The store is read-only.
        UnsafePathError: ``.medstore`` (or the file) is a symbolic link.
    """
    store.check_writable()
    schema = ProjectSchema(annotations=list(specs))
    path = _schema_path(store)
    data = orjson.dumps(schema.model_dump(mode="json"), option=orjson.OPT_INDENT_2)
    with store.locked():
        nofollow.makedirs(path.parent)  # never made through a planted link
        atomic_write_bytes(path, data, point="schema")
    return schema
