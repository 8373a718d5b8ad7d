"""Pydantic models of MONAI Label 0.8.5's ``datastore_v2.json`` schema.

The field names, types, defaults and helper methods are MONAI Label's own (``DataModel``,
``ImageLabelModel``, ``LocalDatastoreModel`` with ``tags``, ``filter_by_tag``, ``label``,
``image_path``, ``label_path``, ``labels_path`` and the unsaved ``base_path``); unknown keys
survive a round trip so that a newer writer's data is kept (MONAI Label drops them). Input is
checked by the manifest reader's own rules (:mod:`.manifest_schema`): a model accepts exactly
what a manifest may hold, with the same messages.

Examples:
    >>> m = LocalDatastoreModel.model_validate({"name": "n", "description": "d", "objects": {
    ...     "a": {"image": {"ext": ".nii.gz"}, "labels": {"final": {"ext": ".nii.gz"}}}}})
    >>> m.labels_dir, sorted(m.tags()), list(m.filter_by_tag("final"))
    ('labels', ['final'], ['a'])
    >>> m.base_path = "/data/store"
    >>> m.label_path("final")
    '/data/store/labels/final'
    >>> DataModel(ext="/../../etc/passwd")
    Traceback (most recent call last):
    ...
    pydantic_core._pydantic_core.ValidationError: 1 validation error for DataModel
      Value error, manifest model: DataModel has an invalid ext '/../../etc/passwd' ...
"""

from __future__ import annotations

import os
from collections.abc import KeysView
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import to_jsonable_python

from .manifest_schema import validate_entry, validate_manifest, validate_object

__all__ = ["DataModel", "ImageLabelModel", "LocalDatastoreModel"]

_SOURCE = "model"


def _plain(data: dict[str, Any]) -> Any:
    """A JSON-shaped copy (nested models as dicts) that the checks may fill in."""
    return to_jsonable_python(data)


class DataModel(BaseModel):
    """One file of an object: its extension and free ``info`` (``ts``, ``name``, ...)."""

    model_config = ConfigDict(extra="allow")

    ext: str = ""
    info: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _checked(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return validate_entry(_plain(data), where="DataModel", source=_SOURCE)
        return data


class ImageLabelModel(BaseModel):
    """An image and its labels, keyed by tag."""

    model_config = ConfigDict(extra="allow")

    image: DataModel
    labels: dict[str, DataModel] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _checked(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return validate_object(_plain(data), image_id="ImageLabelModel", source=_SOURCE)
        return data

    def tags(self) -> KeysView[str]:
        """The tags this image has a label under."""
        return self.labels.keys()


class LocalDatastoreModel(BaseModel):
    """The whole manifest."""

    model_config = ConfigDict(extra="allow")

    name: str
    description: str
    images_dir: str = ""
    labels_dir: str = "labels"
    objects: dict[str, ImageLabelModel] = Field(default_factory=dict)
    base_path: str = ""
    """The store folder; not part of the file (dump with ``exclude={"base_path"}``)."""

    @model_validator(mode="before")
    @classmethod
    def _checked(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return validate_manifest(_plain(data), source=_SOURCE)
        return data

    def tags(self) -> set[str]:
        """Every tag any image has a label under."""
        tags: set[str] = set()
        for obj in self.objects.values():
            tags.update(obj.tags())
        return tags

    def filter_by_tag(self, tag: str) -> dict[str, ImageLabelModel]:
        """The objects that have a label under ``tag``, in manifest order."""
        return {k: v for k, v in self.objects.items() if v.labels.get(tag)}

    def label(self, id: str, tag: str) -> DataModel | None:
        """The label of image ``id`` under ``tag``, or ``None``."""
        obj = self.objects.get(id)
        return obj.labels.get(tag) if obj else None

    def image_path(self) -> str:
        """The images folder: joined to ``base_path`` when set, else relative."""
        return os.path.join(self.base_path, self.images_dir) if self.base_path else self.images_dir

    def label_path(self, tag: str | None) -> str:
        """The folder of ``tag``'s labels (the labels folder itself for ``None``/``""``)."""
        path = os.path.join(self.labels_dir, tag) if tag else self.labels_dir
        return os.path.join(self.base_path, path) if self.base_path else path

    def labels_path(self) -> dict[str, str]:
        """``{tag: label_path(tag)}`` for every tag in use.

        MONAI Label 0.8.5 returns ``labels_dir/tag`` not joined to ``base_path`` (and bare
        ``labels_dir`` without one); medstore returns the folder each tag really has.
        """
        return {tag: self.label_path(tag) for tag in self.tags()}
