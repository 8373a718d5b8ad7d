"""Batches of DataLoader workers built straight in shared memory, so a volume exists once.

A DataLoader worker hands each batch to the main process through shared memory. Built the plain
way, a volume is copied three times on that road: converted to float32 in private memory, stacked
into a private batch, then moved into shared memory when the batch is pickled. Here:

- a batch of one item (the usual case for whole volumes) without a transform has its image
  converted from the cached memory map straight into a shared-memory tensor, which the collate
  step hands over as the batch, as a view, without copying it (a transform might keep a
  reference to the image, so items with one are built privately and copied into the batch);
- a batch of several items is stacked straight into shared memory, as PyTorch's
  ``default_collate`` does, unless the items were built as the slots of one shared batch tensor
  (:func:`shared_batch`; patches, whose items all have one shape), which is then handed over
  as it is;
- a whole volume read once releases its memory map's pages as it is converted, so a worker does
  not go on holding the cache files it has read.

Outside workers everything stays in ordinary private memory. A ``collate_fn`` of one's own gets
the shared-memory image of a batch of one and, like PyTorch's ``default_collate``, copies it into
a second segment.
"""

from __future__ import annotations

import math
import mmap
from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import get_worker_info

from .chunked import ChunkedArray

__all__ = [
    "float32_tensor",
    "in_worker",
    "shared_batch",
    "shared_empty",
    "stack_arrays",
    "stack_tensors",
]

_SLAB_BYTES = 1024 * 1024
"""Source bytes converted between two releases of a map's pages."""
_CAN_RELEASE = hasattr(mmap, "MADV_DONTNEED") and hasattr(mmap.mmap, "madvise")
"""Whether maps can drop their pages here (not on Windows)."""
_SOLE_OWNER = "_medstore_sole_owner"
"""Attribute set on tensors :func:`float32_tensor` created in a worker and gave to one item."""
_BATCH_OF = "_medstore_batch_of"
"""Attribute set on the slots of a :func:`shared_batch` tensor: the batch tensor."""


def in_worker() -> bool:
    """Whether this code runs in a DataLoader worker process.

    Returns:
        ``True`` inside a worker.

    Example:
        >>> in_worker()
        False
    """
    return get_worker_info() is not None


def _contiguous_strides(shape: Sequence[int]) -> tuple[int, ...]:
    """Element strides of a C-contiguous array of ``shape``."""
    strides = [1] * len(shape)
    for axis in range(len(shape) - 2, -1, -1):
        strides[axis] = strides[axis + 1] * max(shape[axis + 1], 1)
    return tuple(strides)


def shared_empty(shape: Sequence[int], dtype: torch.dtype) -> torch.Tensor:
    """An uninitialised contiguous tensor whose storage is a new shared-memory segment.

    A worker's tensor built there goes to the main process without being copied again.

    Args:
        shape: The tensor's shape.
        dtype: Its dtype.

    Returns:
        The tensor.

    Example:
        >>> shared_empty((2, 3), torch.uint8).is_shared()
        True
    """
    nbytes = math.prod(shape) * torch.empty((), dtype=dtype).element_size()
    new_shared = getattr(torch.UntypedStorage, "_new_shared", None)
    if new_shared is None:  # a torch without it: the public route copies an empty buffer first
        return torch.empty(tuple(shape), dtype=dtype).share_memory_()
    # torch's own default_collate allocates its worker batches this way.
    storage: torch.UntypedStorage = new_shared(nbytes)
    return torch.empty(0, dtype=dtype).set_(storage, 0, tuple(shape), _contiguous_strides(shape))


def _mapping_of(array: np.ndarray) -> mmap.mmap | None:
    """The memory map ``array`` reads from (``np.load(mmap_mode=...)`` arrays), if any."""
    base: object = array
    while isinstance(base, np.ndarray):
        base = base.base
    return base if isinstance(base, mmap.mmap) else None


def _convert(array: np.ndarray | ChunkedArray, out: np.ndarray, *, release_source: bool) -> None:
    """Copy ``array`` into ``out`` with a cast, in slabs when its map's pages are released.

    Dropping a read-only file map's pages from the page tables (``MADV_DONTNEED``) leaves them in
    the OS page cache; this process just stops holding them, so converting a whole contiguous
    volume never holds more than one slab of its source beside the output. A chunked cache
    entry decompresses one chunk layer at a time into the output.
    """
    if isinstance(array, ChunkedArray):
        array.copy_into(out)
        return
    mapping = _mapping_of(array) if release_source and _CAN_RELEASE else None
    contiguous = array.flags.c_contiguous and out.flags.c_contiguous
    if mapping is None or not contiguous or array.nbytes <= _SLAB_BYTES:
        np.copyto(out, array, casting="unsafe")
        return
    source, target = array.reshape(-1), out.reshape(-1)  # views: both are contiguous
    step = max(1, _SLAB_BYTES // array.itemsize)
    for start in range(0, source.size, step):
        np.copyto(target[start : start + step], source[start : start + step], casting="unsafe")
        mapping.madvise(mmap.MADV_DONTNEED)


def shared_batch(shape: Sequence[int]) -> list[torch.Tensor]:
    """The slots of a new float32 batch tensor ``shape`` in shared memory, one per item.

    Items whose images are these slots, collated in order by :func:`stack_tensors`, become
    that batch without a copy (a worker's batch otherwise costs a stack into new shared
    memory). Only for tensors that nothing but their items reference.

    Args:
        shape: ``(batch, *item shape)``.

    Returns:
        ``shape[0]`` tensors of shape ``shape[1:]``, views of the batch.

    Example:
        >>> slots = shared_batch((2, 3))
        >>> stack_tensors(slots).shape  # outside a worker: stacked as usual
        torch.Size([2, 3])
    """
    batch = shared_empty(shape, torch.float32)
    slots = list(batch.unbind(0))
    for slot in slots:
        setattr(slot, _BATCH_OF, batch)
    return slots


def _whole_batch(values: Sequence[torch.Tensor]) -> torch.Tensor | None:
    """The :func:`shared_batch` tensor whose slots ``values`` are, all of them in order."""
    found = getattr(values[0], _BATCH_OF, None)
    if not isinstance(found, torch.Tensor) or found.shape[0] != len(values):
        return None
    batch: torch.Tensor = found
    for slot, value in enumerate(values):
        if getattr(value, _BATCH_OF, None) is not batch:
            return None
        if value.data_ptr() != batch[slot].data_ptr() or value.shape != batch.shape[1:]:
            return None
    for value in values:
        delattr(value, _BATCH_OF)
    return batch


def float32_tensor(
    array: np.ndarray | ChunkedArray,
    *,
    shared: bool = False,
    release_source: bool = False,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Convert an array (typically a read-only memory map) to a new float32 tensor.

    Args:
        array: The source array (any numeric dtype, any layout).
        shared: Write the tensor directly into shared memory and mark it as owned by the one
            item it is made for, so :func:`stack_tensors` can hand it to the main process as a
            batch of one without another copy. Only for a tensor that nothing but its item will
            reference (the batch shares its memory): the datasets use it for a DataLoader
            worker's batch of one item when no transform is set. A shared-memory segment costs
            more to set up than private memory, so items of larger batches stay private.
        release_source: ``array`` is read whole, once: release the pages of its memory map as
            they are converted, so they are not counted in this process's memory (they stay in
            the OS page cache).
        out: A float32 tensor of ``array``'s shape to write into (e.g. a :func:`shared_batch`
            slot) instead of a new one; ``shared`` is then ignored.

    Returns:
        A float32 tensor of the same shape that shares no memory with ``array``.

    Example:
        >>> t = float32_tensor(np.arange(6, dtype=np.int16).reshape(2, 3))
        >>> t.dtype, tuple(t.shape), float(t[1, 2])
        (torch.float32, (2, 3), 5.0)
    """
    if out is not None:
        tensor = out
    elif shared:
        tensor = shared_empty(array.shape, torch.float32)
        setattr(tensor, _SOLE_OWNER, True)
    else:
        # numpy's allocator asks for transparent huge pages on large arrays: far fewer page
        # faults than torch.empty for a whole volume.
        tensor = torch.from_numpy(np.empty(array.shape, dtype=np.float32))
    _convert(array, tensor.numpy(), release_source=release_source)
    return tensor


def _handed_over(tensor: torch.Tensor) -> bool:
    """Whether ``tensor`` is a whole, contiguous shared storage built by :func:`float32_tensor`."""
    return (
        getattr(tensor, _SOLE_OWNER, False)
        and tensor.is_contiguous()
        and tensor.untyped_storage().nbytes() == tensor.numel() * tensor.element_size()
    )


def stack_tensors(values: Sequence[torch.Tensor]) -> torch.Tensor:
    """Stack equal-shape tensors along a new first dimension.

    In a worker the result lives in shared memory; a single tensor built by
    :func:`float32_tensor` becomes the batch as a view, without a copy (its item is collated
    once and dropped, so nothing else sees the storage).

    Args:
        values: Tensors of one shape and dtype.

    Returns:
        The stacked tensor.

    Example:
        >>> tuple(stack_tensors([torch.zeros(2, 3), torch.ones(2, 3)]).shape)
        (2, 2, 3)
    """
    first = values[0]
    if not in_worker() or type(first) is not torch.Tensor:
        return torch.stack(list(values))  # subclasses (MetaTensor) batch their own metadata
    if len(values) == 1 and _handed_over(first):
        delattr(first, _SOLE_OWNER)
        return first.unsqueeze(0)
    batch = _whole_batch(values)
    if batch is not None:
        return batch
    out = shared_empty((len(values), *first.shape), first.dtype)
    return torch.stack(list(values), out=out)


def stack_arrays(values: Sequence[np.ndarray]) -> torch.Tensor:
    """Stack equal-shape numpy arrays into a tensor (in shared memory inside a worker).

    Args:
        values: Arrays of one shape.

    Returns:
        The stacked tensor.

    Example:
        >>> tuple(stack_arrays([np.zeros(3), np.ones(3)]).shape)
        (2, 3)
    """
    if not in_worker():
        return torch.from_numpy(np.stack(values))
    try:
        dtype = torch.from_numpy(np.empty(0, np.result_type(*values))).dtype
    except TypeError:  # a dtype torch has no tensor for: fail as outside workers
        return torch.from_numpy(np.stack(values))
    out = shared_empty((len(values), *values[0].shape), dtype)
    np.stack(values, out=out.numpy())
    return out
