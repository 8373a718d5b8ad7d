"""DataLoader defaults of make_dataloader: one volume in flight per worker unless asked."""

from __future__ import annotations

import torch
from medstore.datasets.loading.collate import collate_items, make_dataloader


def _data() -> torch.utils.data.TensorDataset:
    return torch.utils.data.TensorDataset(torch.zeros(4, 1))


def test_workers_prefetch_one_item_each_by_default() -> None:
    loader = make_dataloader(_data(), batch_size=1, num_workers=2)
    assert loader.prefetch_factor == 1
    assert loader.collate_fn is collate_items


def test_prefetch_factor_can_be_chosen_and_is_untouched_without_workers() -> None:
    assert make_dataloader(_data(), num_workers=2, prefetch_factor=4).prefetch_factor == 4
    assert make_dataloader(_data()).num_workers == 0
