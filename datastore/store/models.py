"""Pydantic models of MONAI Label 0.8.5's ``datastore_v2.json`` schema.

The field names, types and defaults are MONAI Label's own (``DataModel``, ``ImageLabelModel``,
``LocalDatastoreModel``); unknown keys survive a round trip so that a newer writer's data is kept.

Examples:
    >>> m = LocalDatastoreModel.model_validate({"name": "n", "description": "d", "objects": {}})
    >>> m.labels_dir
    'labels'
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["DataModel", "ImageLabelModel", "LocalDatastoreModel"]


class DataModel(BaseModel):
    """One file of an object: its extension and free ``info`` (``ts``, ``name``, ...)."""

    model_config = ConfigDict(extra="allow")

    ext: str = ""
    info: dict[str, Any] = Field(default_factory=dict)


class ImageLabelModel(BaseModel):
    """An image and its labels, keyed by tag."""

    model_config = ConfigDict(extra="allow")

    image: DataModel
    labels: dict[str, DataModel] = Field(default_factory=dict)


class LocalDatastoreModel(BaseModel):
    """The whole manifest."""

    model_config = ConfigDict(extra="allow")

    name: str
    description: str
    images_dir: str = ""
    labels_dir: str = "labels"
    objects: dict[str, ImageLabelModel] = Field(default_factory=dict)
