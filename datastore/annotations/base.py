"""The base annotation entity: common fields of the Datamint, Nucleus and WEBKNOSSOS seeds.

Examples:
    >>> from medstore.datastore.annotations import LabelAnnotation
    >>> ann = LabelAnnotation(name="has_artifact", added_by="reader-a")
    >>> (ann.identifier, ann.created_by, ann.scope, len(ann.id))
    ('has_artifact', 'reader-a', 'image', 24)
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any, ClassVar, Literal, Self

import orjson
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from ..errors import AnnotationError

__all__ = ["TYPE_SYNONYMS", "Annotation", "Origin", "Part", "wrap_validation_error"]

#: Type names other tools use for our canonical ``annotation_type`` values.
TYPE_SYNONYMS: Mapping[str, str] = MappingProxyType(
    {
        "square": "box",
        "bbox": "box",
        "region": "polyline",
        "float": "numeric",
        "integer": "numeric",
        "number": "numeric",
        "mask": "volume_segmentation",
        "semantic_segmentation": "volume_segmentation",
    }
)

#: Fields that do not belong to an annotation's content (left out of its deterministic id).
NON_CONTENT_FIELDS = frozenset(
    {
        "id",
        "created_at",
        "updated_at",
        "status",
        "deleted",
        "deleted_at",
        "deleted_by",
        "origin",
        "label_tag",
    }
)


def wrap_validation_error(err: ValidationError, what: str) -> AnnotationError:
    """Turn a pydantic error into an :class:`AnnotationError` naming the first reasons.

    Args:
        err: The pydantic error.
        what: What was being validated, e.g. ``"box annotation"``.

    Returns:
        The error to raise (``raise wrap_validation_error(err, ...) from err``).
    """
    reasons = []
    for item in err.errors()[:3]:
        where = ".".join(str(part) for part in item.get("loc", ())) or "value"
        reasons.append(f"{where}: {item.get('msg', 'invalid')}")
    return AnnotationError(f"invalid {what}: " + "; ".join(reasons))


class Part(BaseModel):
    """Base of an annotation's parts (segments, keypoints, skeleton nodes...).

    Invalid input raises :class:`~medstore.datastore.errors.AnnotationError` naming the field,
    never a raw pydantic error.
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, populate_by_name=True)

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as err:
            raise wrap_validation_error(err, type(self).__name__) from err

    @classmethod
    def model_validate(cls, obj: Any, **kwargs: Any) -> Self:
        """Validate ``obj`` like pydantic, raising :class:`AnnotationError` on failure."""
        try:
            return super().model_validate(obj, **kwargs)
        except ValidationError as err:
            raise wrap_validation_error(err, cls.__name__) from err


class Origin(BaseModel):
    """Where an annotation was imported from, so exporting back to that format is lossless."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: str
    external_id: str | None = None
    keys: list[str] | None = None
    extra: dict[str, Any] | None = None
    """Fields of the source format medstore has no field for, written back on export."""


class Annotation(BaseModel):
    """Base of every annotation entity.

    Accepted aliases on input: ``name``/``label`` for ``identifier``, ``added_by`` for
    ``created_by``, ``index`` for ``frame_index``, ``type`` for ``annotation_type``,
    ``annotation_id`` for ``id``. A missing ``id`` becomes a hash of the content, so importing the
    same payload twice yields the same annotation. Invalid input raises
    :class:`~medstore.datastore.errors.AnnotationError`.
    """

    model_config = ConfigDict(
        populate_by_name=True, allow_inf_nan=False, extra="forbid", validate_default=True
    )

    TYPE: ClassVar[str] = ""

    id: str | None = Field(None, validation_alias=AliasChoices("id", "annotation_id"))
    identifier: str = Field(
        min_length=1, validation_alias=AliasChoices("identifier", "name", "label")
    )
    annotation_type: str = ""
    scope: Literal["image", "frame"] = "image"
    frame_index: int | None = Field(
        None, ge=0, validation_alias=AliasChoices("frame_index", "index")
    )
    created_by: str | None = Field(None, validation_alias=AliasChoices("created_by", "added_by"))
    created_at: datetime | None = None
    updated_at: datetime | None = None
    status: str | None = None
    worklist_id: str | None = None
    model_id: str | None = None
    is_model: bool | None = None
    set_name: str | None = None
    confiability: float = Field(1.0, ge=0.0, le=1.0)
    deleted: bool = False
    deleted_at: datetime | None = None
    deleted_by: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    reference_id: str | None = None
    track_reference_id: str | None = None
    task_id: str | None = None
    embedding_vector: list[float] | None = None
    origin: Origin | None = None

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as err:
            raise wrap_validation_error(err, f"{self.TYPE or 'annotation'} annotation") from err

    @classmethod
    def model_validate(cls, obj: Any, **kwargs: Any) -> Self:
        """Validate ``obj`` like pydantic, raising :class:`AnnotationError` on failure."""
        try:
            return super().model_validate(obj, **kwargs)
        except ValidationError as err:
            raise wrap_validation_error(err, f"{cls.TYPE or 'annotation'} annotation") from err

    @model_validator(mode="before")
    @classmethod
    def _normalise_input(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        given = data.pop("type", None)
        given = data.get("annotation_type", given)
        if given is not None:
            canonical = TYPE_SYNONYMS.get(str(given), str(given))
            if canonical != cls.TYPE:
                raise ValueError(f"type {given!r} does not match {cls.__name__} ({cls.TYPE!r})")
        data["annotation_type"] = cls.TYPE
        has_frame = data.get("frame_index", data.get("index")) is not None
        if has_frame and "scope" not in data:
            data["scope"] = "frame"
        return data

    @model_validator(mode="after")
    def _finish(self) -> Self:
        if self.scope == "frame" and self.frame_index is None:
            raise ValueError("scope 'frame' needs a frame_index")
        if self.id is None:
            self.id = self.content_hash()
        return self

    # -- Datamint's accessors (datamint.entities.annotations.Annotation) ---------------------

    @property
    def type(self) -> str:
        """Alias of :attr:`annotation_type` (Datamint)."""
        return self.annotation_type

    @property
    def index(self) -> int | None:
        """Alias of :attr:`frame_index` (Datamint)."""
        return self.frame_index

    @property
    def name(self) -> str:
        """Alias of :attr:`identifier` (Datamint)."""
        return self.identifier

    def _kept_text_value(self) -> str | None:
        """Datamint's ``text_value`` kept from a Datamint dict, for classes without ``value``."""
        extra = self.origin.extra if self.origin is not None else None
        kept = extra.get("text_value") if extra else None
        return kept if isinstance(kept, str) else None

    @property
    def added_by(self) -> str | None:
        """Alias of :attr:`created_by` (Datamint)."""
        return self.created_by

    def is_frame_scoped(self) -> bool:
        """Whether the annotation belongs to one frame (Datamint)."""
        return self.scope == "frame"

    def is_image_scoped(self) -> bool:
        """Whether the annotation belongs to the whole image (Datamint)."""
        return self.scope == "image"

    def is_segmentation(self) -> bool:
        """Whether this is a segmentation (Datamint)."""
        return self.annotation_type in ("segmentation", "volume_segmentation")

    def is_label(self) -> bool:
        """Whether this is a label (flag) annotation (Datamint)."""
        return self.annotation_type == "label"

    def is_category(self) -> bool:
        """Whether this is a category annotation (Datamint)."""
        return self.annotation_type == "category"

    def get_created_datetime(self) -> datetime | None:
        """The creation time (Datamint)."""
        return self.created_at

    def content_hash(self) -> str:
        """A stable 24-hex-digit hash of the annotation's content (its default id).

        Returns:
            The hash; lifecycle fields (status, deletion, timestamps, origin) do not count.
        """
        payload = self.model_dump(mode="json", exclude=set(NON_CONTENT_FIELDS), exclude_none=True)
        digest = hashlib.sha256(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS))
        return digest.hexdigest()[:24]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``None`` fields left out) for :func:`annotation_from_dict`.

        Returns:
            The dict.
        """
        return self.model_dump(mode="json", exclude_none=True)
