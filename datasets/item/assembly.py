"""Assemble one dataset item (image, metainfo, segmentations, entity labels) from a record.

:class:`ItemAssembler` reads an image and its labels through the decode-once
:class:`~medstore.datasets.VolumeCache`, cuts the item's view with the dataset's view function,
turns label values into global class codes and builds the item dict (image, metainfo,
segmentations, labels) with the entry builders of :mod:`medstore.datasets.item.entries`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from medstore.datastore import LabelGeometryError

from ..loading.cache import CachedVolume, VolumeArray, VolumeCache
from ..loading.worker_memory import float32_tensor, shared_empty
from ..options import DatasetOptions
from ..records import ImageRecord, LabelRecord, label_classes
from .augment import augment_item
from .class_locations import class_locations
from .entities import EntityRecord
from .entity_masks import add_entity_masks, entity_masks
from .entries import (
    categories_entry,
    frame_categories_entry,
    frame_labels_entry,
    image_labels_entry,
    metainfo_entry,
    segmentation_entries,
)
from .geometry import Plane, RecordGeometry, item_geometry, record_geometry
from .label_space import (
    LabelSpace,
    instance_masks_of_values,
    to_codes,
    value_lut,
)
from .volumes import image_volume, label_volume, label_what, volume_sources

__all__ = ["ItemAssembler", "image_volume", "label_volume", "volume_sources"]

ViewFn = Callable[[VolumeArray, int, ImageRecord], VolumeArray]
"""Cuts an item's view (frame ``-1``: the whole image) from a channels-first canonical array."""
FrameArgsFn = Callable[[VolumeArray, int], tuple[int | None, int | None]]
"""``(num_frames, frame)`` for :func:`~medstore.datasets.item.entries.frame_labels_entry`."""
LutKey = tuple[str, str, tuple[str, ...], tuple[tuple[int, str], ...] | None]
"""``(label path, view dtype, segmentation class names, the label's classes)``."""


@dataclass(frozen=True)
class ItemAssembler:
    """How one dataset turns ``(record, frame)`` into an item dict.

    Args:
        options: The dataset options (entries to return, merge strategies, transform).
        cache: The decode-once cache.
        view: The dataset's view function.
        frame_entry_args: The dataset's ``(num_frames, frame)`` function for frame labels.
        label_space: Returns the full label space, computing the segmentation classes once.
        space: The label space as it is now (its entity lists are always complete).
        luts: Value-to-code lookup tables shared by the dataset, filled on demand.
        frame_axis_name: Name of the axis of one-slice items (``None`` otherwise).
        contiguous: Read the entries' uncompressed copies (items that read whole volumes or
            planes); ``False`` for patches, which read a few compressed chunks.
        plane: How items cut their image (see :mod:`.geometry`); ``None`` (patches): entity
            masks, ``annotations`` and ``boxes`` are left out.
        geometry: Geometry tables by record identity, shared by the dataset (filled on demand).
        box_codes: ``{box name: class index}`` for ``box_labels``.
        frame_categories: The dataset's ``(identifier, value)`` frame categories.
    """

    options: DatasetOptions
    cache: VolumeCache
    view: ViewFn
    frame_entry_args: FrameArgsFn
    label_space: Callable[[], LabelSpace]
    space: LabelSpace
    luts: dict[LutKey, np.ndarray]
    frame_axis_name: str | None = None
    contiguous: bool = True
    plane: Plane | None = None
    geometry: dict[int, tuple[ImageRecord, RecordGeometry]] = field(default_factory=dict)
    box_codes: Mapping[str, int] = field(default_factory=dict)
    frame_categories: Sequence[tuple[str, str]] = ()

    def item(
        self,
        record: ImageRecord,
        frame: int,
        *,
        shared_image: bool = False,
        image_out: torch.Tensor | None = None,
    ) -> dict[str, Any]:
        """Build the item of ``record`` at ``frame`` and apply the dataset's transform.

        Args:
            record: The image record.
            frame: The frame or slice index, ``-1`` for the whole image.
            shared_image: Build the image tensor in shared memory, owned by this item (for a
                DataLoader worker's batch of one; see
                :func:`~medstore.datasets.loading.worker_memory.float32_tensor`).
            image_out: Write the image into this tensor (a slot of a shared batch; see
                :func:`~medstore.datasets.loading.worker_memory.shared_batch`); instance masks
                are then also built in shared memory.

        Returns:
            The item dict (or what the transform returns).

        Raises:
            LabelGeometryError: A label's shape does not match its image.
        """
        # A whole-volume item reads its maps once: close them with the item (frame -1).
        keep_open = frame >= 0
        volume = image_volume(self.cache, record, keep_open=keep_open, contiguous=self.contiguous)
        view = self.view(volume.array, frame, record)
        image = float32_tensor(
            view, shared=shared_image, release_source=not keep_open, out=image_out
        )
        item: dict[str, Any] = {"image": image}
        if self.options.return_metainfo:
            item["metainfo"] = metainfo_entry(record, volume, self.frame_axis_name, frame)
        space = self.space
        if self.options.segmentation.return_segmentations:
            space = self.label_space()
            spatial = tuple(view.shape[1:])
            shared = image_out is not None
            item.update(
                self._segmentations(record, volume, frame, spatial, space, keep_open, shared)
            )
        self._entity_entries(item, record.entities, volume.array, frame, space)
        opts = self.options
        if self.plane is not None and (opts.return_annotations or opts.return_boxes):
            hit = self.geometry.get(id(record))
            if hit is not None and hit[0] is record:
                geometry = hit[1]
            else:
                affine = np.asarray(volume.affine, dtype=np.float64)
                geometry = record_geometry(record.entities, affine)
                self.geometry[id(record)] = (record, geometry)
            item.update(
                item_geometry(
                    geometry,
                    self.plane,
                    frame,
                    box_codes=self.box_codes,
                    annotations=opts.return_annotations,
                    boxes=opts.return_boxes,
                )
            )
        if self.options.alb_transform is not None:
            augment_item(item, self.options.alb_transform)
        transform = self.options.transform
        return transform(item) if transform is not None else item

    def _segmentations(
        self,
        record: ImageRecord,
        volume: CachedVolume,
        frame: int,
        spatial: tuple[int, ...],
        space: LabelSpace,
        keep_open: bool,
        shared: bool = False,
    ) -> dict[str, Any]:
        codes_of = {name: i + 1 for i, name in enumerate(space.segmentation)}  # cheap: L names
        instances = not self.options.segmentation.as_semantic
        codes: dict[str, np.ndarray] = {}
        masks: dict[str, torch.Tensor] = {}
        present: dict[str, torch.Tensor] = {}
        for label in record.labels:
            lab = label_volume(
                self.cache, record, label, keep_open=keep_open, contiguous=self.contiguous
            )
            image_spatial = volume.array.shape[1:]
            array = _same_grid(lab.array, image_spatial)
            if array is None:
                raise LabelGeometryError(
                    f"label {label.tag!r} of image {record.image_id!r} has shape "
                    f"{tuple(lab.array.shape[1:])} (channels {lab.array.shape[0]}) but the "
                    f"image has spatial shape {tuple(image_spatial)}"
                )
            view = self.view(array, frame, record)[0]
            named = None if label.classes is None else tuple(label.classes.items())
            key = (label.path, view.dtype.str, space.segmentation, named)
            lut = self.luts.get(key)
            if lut is None:
                lut = self.luts[key] = value_lut(label.classes, codes_of, view.dtype)
                _report_unnamed(self.cache, record, label)
            if instances:  # straight from the label values: no code map in between
                masks[label.tag], present[label.tag] = _instance_masks(view, lut, shared=shared)
            else:
                codes[label.tag] = to_codes(view, lut)
        if self.plane is not None and any(e.kind == "segmentation" for e in record.entities):
            found = entity_masks(
                record.entities,
                tuple(volume.array.shape[1:]),
                self.plane,
                frame,
                lambda array: np.asarray(self.view(array, frame, record)),
            )
            add_entity_masks(
                found,
                codes_of,
                masks=masks,
                present=present,
                codes=codes,
                spatial=spatial,
                instances=instances,
            )
        if instances:
            return {"segmentations": masks, "seg_labels": present}
        return segmentation_entries(
            codes,
            num_classes=len(space.segmentation),
            options=self.options.segmentation,
            spatial_shape=spatial,
        )

    def _entity_entries(
        self,
        item: dict[str, Any],
        entities: Sequence[EntityRecord],
        array: VolumeArray,
        frame: int,
        space: LabelSpace,
    ) -> None:
        opts = self.options
        item["image_labels"] = image_labels_entry(entities, space, opts.image_labels_merge_strategy)
        item["image_categories"] = categories_entry(
            entities, space, opts.image_categories_merge_strategy
        )
        num_frames, one_frame = self.frame_entry_args(array, frame)
        item["frame_labels"] = frame_labels_entry(
            entities,
            space,
            opts.image_labels_merge_strategy,
            num_frames=num_frames,
            frame=one_frame,
        )
        item["frame_categories"] = frame_categories_entry(
            entities, self.frame_categories, num_frames=num_frames, frame=one_frame
        )


def _same_grid(array: VolumeArray, image_spatial: tuple[int, ...]) -> VolumeArray | None:
    """The label array on its image's grid, or ``None`` when it does not fit.

    A 2-D label stored as a one-slice volume (``(1, 1, H, W)``, e.g. ``save_label`` of an
    ``(H, W)`` array) fits a 2-D image ``(H, W)``, and a 2-D label fits a one-slice volume.
    """
    if array.shape[0] != 1:
        return None
    spatial = tuple(array.shape[1:])
    if spatial == tuple(image_spatial):
        return array
    if spatial == (1, *image_spatial):
        return array[:, 0]
    if (1, *spatial) == tuple(image_spatial):
        return array[:, None]
    return None


def _report_unnamed(cache: VolumeCache, record: ImageRecord, label: LabelRecord) -> None:
    """Warn when a label with ``label_info`` holds values it does not name (they read as 0).

    The values present come from the label's class locations, computed once per label version
    and kept beside its cache entry: reading the whole label here instead, in every process
    (each DataLoader worker builds its own lookup tables), cost a patch item hundreds of ms.
    """
    named = label_classes(label.info)  # every name, also those a filter leaves out
    if named is None:
        return
    unnamed = sorted(v for v in class_locations(cache, record, label) if v not in named)
    if unnamed:
        warnings.warn(
            f"{label_what(record, label)} has values {unnamed} not named in its label_info; "
            "they are background in the items (name them with update_label_info)",
            UserWarning,
            stacklevel=4,
        )


def _instance_masks(
    view: np.ndarray, lut: np.ndarray, *, shared: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Instance masks and codes of a label view; masks in shared memory when ``shared``."""
    buffers: list[torch.Tensor] = []

    def empty(shape: tuple[int, ...]) -> np.ndarray:
        buffers.append(shared_empty(shape, torch.uint8))
        return buffers[-1].numpy()

    masks, codes = instance_masks_of_values(view, lut, empty=empty if shared else None)
    if buffers:  # the direct route wrote the first len(codes) masks of the shared buffer
        return buffers[0][: len(codes)], torch.from_numpy(codes)
    return torch.from_numpy(masks), torch.from_numpy(codes)
