"""Issue 12 case 8, reads: a tracked image swapped for a FIFO or device is never opened.

The scans and the copies already refuse anything but regular files. An image that is tracked
and then replaced on disk by a FIFO (or a ``/dev/zero``-like device) was still opened by every
read: ``get_image``, ``probe_image``/``read_image`` and a ``VolumeDataset`` item waited forever
for a writer. Each now fails at once with ``ImageReadError`` naming the file.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable

import pytest
from medstore.datastore.errors import ImageReadError
from medstore.datastore.imaging import probe_image, read_image
from medstore.datastore.store.local import LocalDatastore
from support.stores import MakeStore, simple_case

pytestmark = [pytest.mark.contract, pytest.mark.timeout(20)]  # contract: once per write path


def _volume_item(store: LocalDatastore) -> object:
    from medstore.datasets import VolumeDataset

    dataset = VolumeDataset(store, return_segmentations=False)
    return [dataset[i] for i in range(len(dataset))]


_READS: list[Callable[[LocalDatastore], object]] = [
    lambda store: store.get_image("a"),
    lambda store: probe_image(store.get_image_uri("a")),
    lambda store: read_image(store.get_image_uri("a")),
    _volume_item,
]


@pytest.mark.parametrize("read", _READS, ids=["get_image", "probe", "read", "VolumeDataset"])
def test_a_tracked_image_swapped_for_a_fifo_fails_at_once(
    make_store: MakeStore, read: Callable[[LocalDatastore], object]
) -> None:
    store = make_store({"a": simple_case(1, (4, 4, 4)), "b": simple_case(2, (4, 4, 4))})
    path = store.root / "a.nii.gz"
    path.unlink()
    os.mkfifo(path)
    with pytest.raises(ImageReadError, match=r"a\.nii\.gz.*not a regular file"):
        read(store)


def test_a_tracked_image_swapped_for_a_device_fails_at_once(make_store: MakeStore) -> None:
    store = make_store({"a": simple_case(1, (4, 4, 4))})
    path = store.root / "a.nii.gz"
    path.unlink()
    try:
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 5))  # a /dev/zero of its own
    except PermissionError:
        pytest.skip("creating a character device needs root")
    with pytest.raises(ImageReadError, match=r"a\.nii\.gz.*not a regular file"):
        store.get_image("a")
    with pytest.raises(ImageReadError, match=r"a\.nii\.gz.*not a regular file"):
        read_image(path)
