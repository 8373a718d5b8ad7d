"""A large loaded state is kept out of the cyclic garbage collector's full passes (issue 18).

Before: the first full collection after opening a 10^5-image store walked its ~10^6 containers
inside whatever call triggered it (``add_image`` p99 1.07 s at 10^5, 10.3 s at 10^6 in
``bench/bench_scale.py``).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from medstore.datastore import LocalDatastore
from medstore.datastore.store import manifest
from support.stores import MakeStore, simple_case


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
