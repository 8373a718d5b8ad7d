"""Value annotations: category, multi-category, label (a flag), numeric and free text.

Examples:
    >>> CategoryAnnotation(identifier="finding", value="benign").value
    'benign'
    >>> NumericAnnotation(identifier="volume_ml", numeric_value=12.5, units="ml").value
    12.5
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import AliasChoices, Field

from .base import Annotation

__all__ = [
    "CategoryAnnotation",
    "LabelAnnotation",
    "MultiCategoryAnnotation",
    "NumericAnnotation",
    "TextAnnotation",
]


class CategoryAnnotation(Annotation):
    """One category chosen for a question (``identifier``, or Nucleus ``taxonomy_name``)."""

    TYPE: ClassVar[str] = "category"

    value: str = Field(min_length=1, validation_alias=AliasChoices("value", "text_value"))
    taxonomy_name: str | None = None


class MultiCategoryAnnotation(Annotation):
    """Several categories chosen at once (Nucleus ``labels``)."""

    TYPE: ClassVar[str] = "multicategory"

    values: list[str] = Field(min_length=1, validation_alias=AliasChoices("values", "labels"))
    taxonomy_name: str | None = None

    @property
    def value(self) -> str | None:
        """Datamint's ``value`` (its ``text_value``): kept from a Datamint dict, else None."""
        return self._kept_text_value()


class LabelAnnotation(Annotation):
    """A flag: the image (or frame) carries the label ``identifier``."""

    TYPE: ClassVar[str] = "label"

    @property
    def value(self) -> str | None:
        """Datamint's ``value`` (its ``text_value``): kept from a Datamint dict, else None."""
        return self._kept_text_value()


class NumericAnnotation(Annotation):
    """A measured or entered number with optional units; an ``int`` stays an ``int`` (Datamint's
    "integer" type), a ``float`` a ``float``."""

    TYPE: ClassVar[str] = "numeric"

    value: int | float = Field(validation_alias=AliasChoices("value", "numeric_value"))
    units: str | None = None


class TextAnnotation(Annotation):
    """Free text (a report line, a note)."""

    TYPE: ClassVar[str] = "text"

    value: str = Field(validation_alias=AliasChoices("value", "text_value"))
