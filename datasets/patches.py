"""Random fixed-size patches of volumes as items, with nnU-Net-style foreground oversampling.

A 512 x 512 x 300 CT is 300 MB as float32, so 3-D segmentation trains on patches. A
:class:`PatchDataset` has ``per_volume`` items per image; each item is one patch: the image and
every segmentation cropped identically from the chunked cache (only the chunks around the patch
are decompressed), cast to float32 per patch, padded where the patch crosses the border.

Where each patch lies is a pure function of ``(seed, epoch, image id, slot)``: the same in
every worker and process, whatever the worker count or the sharding, and new each epoch after
:meth:`PatchDataset.set_epoch` (as with ``DistributedSampler``). With probability
``foreground`` a patch is centred on a voxel of a requested class (a class chosen uniformly
among those the image holds, then one of its voxels; the voxels come from
:mod:`.item.class_locations`, computed once per label version); otherwise its origin is uniform.

Example:
    >>> import tempfile, pathlib, numpy as np, nibabel as nib
    >>> from medstore.datastore import LocalDatastore
    >>> from medstore.datasets import VolumeDataset
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> nib.save(nib.Nifti1Image(np.zeros((40, 30, 20), np.int16), np.eye(4)), root / "ct.nii.gz")
    >>> patches = VolumeDataset(LocalDatastore(root)).patches((16, 16, 16), per_volume=3)
    >>> len(patches), patches[0]["image"].shape, patches[0]["metainfo"]["patch_origin"].shape
    (3, torch.Size([1, 16, 16, 16]), torch.Size([3]))
"""

from __future__ import annotations

import copy
import dataclasses
import zlib
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, Self

import numpy as np
import torch

from .base import StoreDataset
from .item.assembly import ItemAssembler, image_volume
from .item.class_locations import class_locations
from .item.views import as_volume
from .loading.cache import VolumeArray
from .loading.worker_memory import in_worker, shared_batch
from .records import ImageRecord

__all__ = ["PatchDataset", "PatchOptions", "crop", "patch_classes"]


@dataclass(frozen=True)
class PatchOptions:
    """How patches are drawn.

    Attributes:
        size: Patch size ``(D, H, W)`` in voxels of the canonical layout.
        per_volume: Patches (items) per image and epoch.
        foreground: Probability that a patch is centred on a voxel of a requested class.
        classes: Requested segmentation class names; ``None``: every class of the dataset.
        seed: Base seed of the patch positions.
        pad_value: Image value where a patch crosses the border (segmentations get 0).
    """

    size: tuple[int, ...]
    per_volume: int = 1
    foreground: float = 0.33
    classes: frozenset[str] | None = None
    seed: int = 0
    pad_value: float = 0.0

    def __post_init__(self) -> None:
        if len(self.size) != 3 or any(int(s) < 1 for s in self.size):
            raise ValueError(f"size must be three positive voxel counts, got {self.size!r}")
        if self.per_volume < 1:
            raise ValueError(f"per_volume must be at least 1, got {self.per_volume}")
        if not 0.0 <= self.foreground <= 1.0:
            raise ValueError(f"foreground must be a probability in [0, 1], got {self.foreground}")
        object.__setattr__(self, "size", tuple(int(s) for s in self.size))
        if self.classes is not None and not self.classes:
            raise ValueError("classes must name at least one class (or be None for all)")


def crop(
    array: VolumeArray, origin: Sequence[int], size: Sequence[int], pad_value: float = 0
) -> np.ndarray:
    """Cut ``(C, *size)`` at spatial ``origin`` from a ``(C, D, H, W)`` array, padding outside.

    Only the region inside the array is read (from a chunked cache entry: only its chunks).

    Args:
        array: Channels-first volume.
        origin: Spatial start ``(d, h, w)``; may be negative or run past the end.
        size: Spatial size.
        pad_value: Value of the voxels outside the array.

    Returns:
        A new array of the array's dtype.

    Example:
        >>> a = np.arange(8).reshape(1, 2, 2, 2)
        >>> crop(a, (1, -1, 0), (2, 2, 2), pad_value=-1)[0].tolist()
        [[[-1, -1], [4, 5]], [[-1, -1], [-1, -1]]]
    """
    spatial = array.shape[1:]
    inside = tuple(
        slice(min(max(o, 0), n), min(max(o + s, 0), n))
        for o, s, n in zip(origin, size, spatial, strict=True)
    )
    region = np.asarray(array[(slice(None), *inside)])
    if region.shape[1:] == tuple(size):
        return region
    out = np.full((array.shape[0], *size), pad_value, dtype=region.dtype)
    at = tuple(slice(r.start - o, r.stop - o) for r, o in zip(inside, origin, strict=True))
    out[(slice(None), *at)] = region
    return out


class PatchDataset(StoreDataset):
    """``per_volume`` random patches of every volume: ``image`` float32 ``(C, D, H, W)``.

    Built by :meth:`~medstore.datasets.VolumeDataset.patches`. Items are those of the parent
    dataset cut to the patch: ``segmentations`` (instance or semantic, per the options) hold
    the same voxels as ``image``; ``metainfo`` adds ``patch_origin`` (spatial start in the
    volume, may be negative where padded), ``patch_size``, ``patch_foreground`` (whether it was
    centred on a requested class) and ``volume_shape``, and its ``affine`` is the patch's own
    (``volume_affine`` keeps the volume's). Frame labels are empty for patches.
    """

    _patch: PatchOptions
    _epoch: torch.Tensor

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("build patches with VolumeDataset(...).patches(size, ...)")

    @classmethod
    def from_dataset(cls, parent: StoreDataset, options: PatchOptions) -> Self:
        """Patches of the images of ``parent`` (same store, cache, options and class lists).

        Args:
            parent: A volume dataset, possibly filtered or split.
            options: How to draw the patches.

        Returns:
            The patch dataset (epoch 0).

        Raises:
            ValueError: A requested class is not a segmentation class of the dataset.
        """
        new = cls.__new__(cls)
        new.__dict__.update(copy.copy(parent.__dict__))
        known = parent.label_space().segmentation
        unknown = sorted(set(options.classes or ()) - set(known))
        if unknown:
            raise ValueError(f"unknown segmentation classes {unknown}; the dataset has {known}")
        new._patch = options
        new._epoch = torch.zeros(1, dtype=torch.int64).share_memory_()
        refs = [(i, slot) for i in parent.index.record_ids() for slot in range(options.per_volume)]
        new._index = parent.index.with_refs(refs)
        return new

    @property
    def patch_options(self) -> PatchOptions:
        """How the patches are drawn."""
        return self._patch

    @property
    def epoch(self) -> int:
        """The epoch the patch positions are drawn for."""
        return int(self._epoch[0])

    def set_epoch(self, epoch: int) -> None:
        """Draw new patch positions for ``epoch`` (seen by running DataLoader workers too).

        Call it before iterating each epoch, as for ``DistributedSampler.set_epoch``; the value
        lives in shared memory, so persistent workers see it.

        Args:
            epoch: The epoch number.
        """
        self._epoch[0] = int(epoch)

    def prefetch(self, *, include_annotations: bool = True, progress: bool = True) -> int:
        """Fill the cache (images and labels) and, with foreground sampling, the class locations.

        Without it the first patch of each volume computes its labels' class locations (a
        pass over the whole label, once per label version).

        Args:
            include_annotations: Also decode the label files (see the base class).
            progress: Show a tqdm progress bar while decoding.

        Returns:
            The number of files processed.
        """
        count = super().prefetch(include_annotations=include_annotations, progress=progress)
        if self._patch.foreground > 0:
            for record in self._index.image_records():
                for label in record.labels:
                    class_locations(self._cache, record, label)
        return count

    def _generator(self, record: ImageRecord, slot: int) -> np.random.Generator:
        image_key = zlib.crc32(record.image_id.encode("utf-8", "surrogatepass"))
        return np.random.default_rng([self._patch.seed, self.epoch, image_key, slot])

    def patch_origin(self, index: int) -> tuple[tuple[int, int, int], bool]:
        """Where item ``index`` lies this epoch, and whether it is centred on a requested class.

        Args:
            index: Item index.

        Returns:
            ``((d, h, w) origin, foreground)``.
        """
        record, slot = self._index.item(index)
        rng = self._generator(record, slot)
        spatial = _spatial(image_volume(self._cache, record).array)
        size = self._patch.size
        centre = (
            self._foreground_voxel(record, rng) if rng.random() < self._patch.foreground else None
        )
        origin = []
        for axis, (n, s) in enumerate(zip(spatial, size, strict=True)):
            low, high = min(0, n - s), max(0, n - s)
            if centre is None:
                origin.append(int(rng.integers(low, high + 1)))
            else:
                origin.append(int(np.clip(int(centre[axis]) - s // 2, low, high)))
        return (origin[0], origin[1], origin[2]), centre is not None

    def _foreground_voxel(self, record: ImageRecord, rng: np.random.Generator) -> np.ndarray | None:
        """A voxel of a requested class present in the image (class first, then voxel)."""
        wanted = self._patch.classes
        by_class: dict[str, list[np.ndarray]] = {}
        for label in record.labels:
            for value, coords in class_locations(self._cache, record, label).items():
                name = label.classes.get(value) if label.classes is not None else str(value)
                if name is not None and (wanted is None or name in wanted) and len(coords):
                    by_class.setdefault(name, []).append(coords)
        if not by_class:
            return None
        choices = by_class[sorted(by_class)[int(rng.integers(len(by_class)))]]
        coords = choices[int(rng.integers(len(choices)))]
        return coords[int(rng.integers(len(coords)))]

    def __getitems__(self, indices: Sequence[int]) -> list[dict[str, Any]]:
        """The items of one batch; in a DataLoader worker, built in one shared batch tensor.

        All patches of a batch have one shape (when their images have as many channels), so
        a worker writes each image straight into its slot of a shared-memory batch, which the
        collate step hands over without stacking, and builds the instance masks in shared
        memory, so nothing is copied again on the way to the main process.

        Args:
            indices: Item indices.

        Returns:
            The items, in order.
        """
        if len(indices) < 2 or self.options.transform is not None or not in_worker():
            return super().__getitems__(indices)
        records = [self._index.item(index)[0] for index in indices]
        channels = {int(image_volume(self._cache, r).array.shape[0]) for r in records}
        if len(channels) != 1:
            return super().__getitems__(indices)
        slots = shared_batch((len(indices), channels.pop(), *self._patch.size))
        return [
            self._item(index, shared=False, image_out=slot)
            for index, slot in zip(indices, slots, strict=True)
        ]

    def _item(
        self, index: int, *, shared: bool, image_out: torch.Tensor | None = None
    ) -> dict[str, Any]:
        record, slot = self._index.item(index)
        origin, foreground = self.patch_origin(index)
        size = self._patch.size

        def view(array: VolumeArray, frame: int, record: ImageRecord) -> VolumeArray:
            return crop(as_volume(array), origin, size)  # outside: 0, background in labels

        assembler = ItemAssembler(
            options=dataclasses.replace(self.options, transform=None),
            cache=self._cache,
            view=view,
            frame_entry_args=_no_frames,
            label_space=self.label_space,
            space=self._labels.entities,
            luts=self._luts,
            contiguous=False,
        )
        item = assembler.item(record, slot, shared_image=shared, image_out=image_out)
        spatial = _spatial(image_volume(self._cache, record).array)
        if self._patch.pad_value != 0:
            _pad_outside(item["image"], origin, spatial, self._patch.pad_value)
        if "metainfo" in item:
            _add_patch_meta(item["metainfo"], origin, size, foreground, spatial)
        transform = self.options.transform
        return transform(item) if transform is not None else item

    def __repr__(self) -> str:
        return f"{super().__repr__()[:-1]}, patches {self._patch.size} x {self._patch.per_volume})"


def _spatial(array: VolumeArray) -> tuple[int, ...]:
    """``(D, H, W)`` of a channels-first array (a 2-D image has ``D = 1``), without reading it."""
    shape = tuple(int(n) for n in array.shape[1:])
    return shape if len(shape) == 3 else (1, *shape)


def _no_frames(array: VolumeArray, frame: int) -> tuple[int | None, int | None]:
    return None, None


def _pad_outside(
    image: torch.Tensor, origin: Sequence[int], spatial: Sequence[int], value: float
) -> None:
    """Set the voxels of a ``(C, D, H, W)`` patch that lie outside the volume to ``value``."""
    for axis, (o, n) in enumerate(zip(origin, spatial, strict=True)):
        size = image.shape[1 + axis]
        before, after = max(0, -o), max(0, o + size - n)
        index: list[slice] = [slice(None)] * image.dim()
        if before:
            index[1 + axis] = slice(0, min(before, size))
            image[tuple(index)] = value
        if after:
            index[1 + axis] = slice(max(0, size - after), size)
            image[tuple(index)] = value


def _add_patch_meta(
    meta: dict[str, Any],
    origin: tuple[int, int, int],
    size: tuple[int, ...],
    foreground: bool,
    spatial: Sequence[int],
) -> None:
    """Patch facts; ``affine`` becomes the patch's (voxel ``origin`` of the volume is its 0)."""
    volume_affine = meta["affine"]
    affine = volume_affine.clone()
    affine[:3, 3] += volume_affine[:3, :3] @ torch.tensor(origin, dtype=torch.float64)
    meta["volume_affine"] = volume_affine
    meta["affine"] = affine
    meta["patch_origin"] = torch.tensor(origin, dtype=torch.int64)
    meta["patch_size"] = torch.tensor(size, dtype=torch.int64)
    meta["patch_foreground"] = foreground
    meta["volume_shape"] = torch.tensor(tuple(spatial), dtype=torch.int64)


def patch_classes(classes: Collection[str] | str | None) -> frozenset[str] | None:
    """Normalise a class-name argument (a bare string is one name).

    Args:
        classes: Names or ``None``.

    Returns:
        The names as a frozenset, or ``None``.

    Example:
        >>> sorted(patch_classes("liver")), patch_classes(None)
        (['liver'], None)
    """
    if classes is None:
        return None
    return frozenset({classes}) if isinstance(classes, str) else frozenset(classes)
