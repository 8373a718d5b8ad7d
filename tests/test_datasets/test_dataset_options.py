"""The option table is the one list of dataset options: constructors, TypedDict and groups agree."""

from __future__ import annotations

import dataclasses
import inspect
import typing

import pytest
from medstore.datasets import (
    DatasetOptions,
    ImageDataset,
    MultiFrameDataset,
    SlicedVideoDataset,
    SlicedVolumeDataset,
    StoreDataset,
    VideoDataset,
    VolumeDataset,
)
from medstore.datasets.options import (
    OPTION_DEFAULTS,
    OPTION_NAMES,
    OPTION_TABLE,
    AnnotationFilters,
    DatasetKwargs,
    SegmentationOptions,
)

DATASET_CLASSES = [
    StoreDataset,
    MultiFrameDataset,
    VolumeDataset,
    VideoDataset,
    ImageDataset,
    SlicedVolumeDataset,
    SlicedVideoDataset,
]


@pytest.mark.parametrize("cls", DATASET_CLASSES, ids=lambda c: c.__name__)
def test_constructor_signature_matches_the_table(cls: type[StoreDataset]) -> None:
    params = inspect.signature(cls.__init__).parameters
    options = [name for name in params if name in OPTION_DEFAULTS]
    assert options == list(OPTION_NAMES)  # every option, in table order
    for name in OPTION_NAMES:
        param = params[name]
        assert param.kind is inspect.Parameter.KEYWORD_ONLY, name
        assert param.default == OPTION_DEFAULTS[name], name
        assert param.annotation is not inspect.Parameter.empty, name
    others = [n for n in params if n not in OPTION_DEFAULTS]
    assert not [n for n in others if params[n].kind is inspect.Parameter.VAR_KEYWORD]
    assert "options" in others


def test_typed_dict_and_option_groups_match_the_table() -> None:
    assert list(typing.get_type_hints(DatasetKwargs)) == list(OPTION_NAMES)
    holders = {
        "dataset": DatasetOptions,
        "segmentation": SegmentationOptions,
        "filters": AnnotationFilters,
    }
    for spec in OPTION_TABLE:
        fields = {f.name: f for f in dataclasses.fields(holders[spec.group])}
        assert spec.field in fields, spec.name
        assert fields[spec.field].default == spec.default, spec.name
    grouped = sum(
        1 for f in dataclasses.fields(DatasetOptions) if f.name not in ("segmentation", "filters")
    )
    total = grouped + len(dataclasses.fields(SegmentationOptions))
    assert total + len(dataclasses.fields(AnnotationFilters)) == len(OPTION_TABLE)


def test_to_kwargs_round_trips_every_option() -> None:
    changed = {
        "return_metainfo": False,
        "return_as_semantic_segmentation": True,
        "semantic_seg_merge_strategy": "union",
        "include_unannotated": False,
        "include_annotators": ["a"],
        "exclude_segmentation_names": ["liver"],
        "include_frame_label_names": ["f"],
        "allow_external_annotations": True,
        "image_labels_merge_strategy": "mode",
        "transform": len,
    }
    opts = DatasetOptions.from_kwargs(**changed)  # type: ignore[arg-type]
    kwargs = opts.to_kwargs()
    assert list(kwargs) == list(OPTION_NAMES)
    assert kwargs["include_annotators"] == frozenset({"a"}) and kwargs["transform"] is len
    assert DatasetOptions.from_kwargs(**kwargs) == opts
    assert DatasetOptions.from_kwargs() == DatasetOptions()


def test_unknown_option_and_options_with_keywords_are_refused() -> None:
    with pytest.raises(TypeError, match="unknown dataset option"):
        DatasetOptions.from_kwargs(return_everything=True)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="not both"):
        DatasetOptions.resolve(DatasetOptions(), {"return_metainfo": False})
    assert DatasetOptions.resolve(DatasetOptions(), {"return_metainfo": True}) == DatasetOptions()


@pytest.mark.parametrize(
    ("name", "value", "refilter"),
    [
        ("include_annotators", ["a"], True),
        ("include_unannotated", False, True),
        ("allow_external_annotations", True, True),
        ("exclude_segmentation_names", ["liver"], False),
        ("return_metainfo", False, False),
    ],
)
def test_needs_refilter_follows_the_table(name: str, value: object, refilter: bool) -> None:
    other = DatasetOptions.from_kwargs(**{name: value})  # type: ignore[misc]
    assert DatasetOptions().needs_refilter(other) is refilter
