"""A large loaded state is kept out of the cyclic garbage collector's full passes (issue 18).

Before: the first full collection after opening a 10^5-image store walked its ~10^6 containers
inside whatever call triggered it (``add_image`` p99 1.07 s at 10^5, 10.3 s at 10^6 in
``bench/bench_scale.py``).
"""

from __future__ import annotations

import gc
import json
import time
import weakref
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from medstore.datastore import LocalDatastore
from medstore.datastore.store import manifest
from support.nifti import make_nifti
from support.stores import MakeStore, simple_case

pytestmark = pytest.mark.contract


@pytest.fixture
def label_file(tmp_path: Path) -> Path:
    return make_nifti(tmp_path / "src" / "label.nii.gz", np.ones((6, 5, 4), np.uint8))


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()


@pytest.mark.usefixtures("unfrozen")
def test_a_large_state_is_frozen_and_a_small_one_is_not(
    make_store: MakeStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = make_store({"a": simple_case(0), "b": simple_case(1)})
    store.close()
    LocalDatastore(store.root, read_only=True)
    assert gc.get_freeze_count() == 0  # 2 images: left to the collector
    monkeypatch.setattr(manifest, "FREEZE_FROM_IMAGES", 2)
    reader = LocalDatastore(store.root, read_only=True)
    assert gc.get_freeze_count() > 0
    assert reader.list_images() == ["a", "b"]


@pytest.mark.usefixtures("unfrozen")
def test_close_gives_a_frozen_state_back_to_the_collector(
    make_store: MakeStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = make_store({"a": simple_case(0), "b": simple_case(1)})
    store.close()
    monkeypatch.setattr(manifest, "FREEZE_FROM_IMAGES", 2)
    reader = LocalDatastore(store.root, read_only=True)
    assert gc.get_freeze_count() > 0
    reader.close()
    assert gc.get_freeze_count() == 0


def test_a_store_dropped_without_close_is_freed_by_reference_counting(
    make_store: MakeStore, label_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: the fold timer held the session strongly (a cycle): a frozen state leaked.

    A save still waiting in the journal is folded in first (the countdown holds the session
    until then), so MONAI Label sees it.
    """
    monkeypatch.setenv("MEDSTORE_COMPACT_AFTER_S", "0.3")
    store = make_store({"a": simple_case(0)})
    store.close()
    writer = LocalDatastore(store.root, lock_timeout=5.0)
    writer.save_label("a", str(label_file), "draft", {})  # arms the fold timer on the journal path
    session = weakref.ref(writer._session)
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        del writer
        deadline = time.monotonic() + 20.0  # thread scheduling on a loaded machine, not speed
        while session() is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert session() is None
    finally:
        if was_enabled:
            gc.enable()
    on_disk = json.loads(store.layout.manifest.read_bytes())
    assert "draft" in on_disk["objects"]["a"]["labels"]
