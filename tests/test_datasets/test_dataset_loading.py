"""Collation, DataLoader construction and a real 2-process torchrun (gloo, CPU) epoch."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from medstore.datasets import VolumeDataset, collate_items
from support.stores import MakeStore, simple_case

HERE = Path(__file__).parent


def test_collate_stacks_lists_and_recurses() -> None:
    batch = collate_items(
        [
            {
                "image": torch.zeros(1, 2),
                "segmentations": {"a": torch.zeros(2, 3)},
                "n": 1,
                "metainfo": {"id": "x", "affine": torch.eye(4)},
            },
            {
                "image": torch.ones(1, 2),
                "segmentations": {"a": torch.zeros(1, 3), "b": torch.ones(1)},
                "n": 2,
                "metainfo": {"id": "y", "affine": torch.eye(4)},
            },
        ]
    )
    assert batch["image"].shape == (2, 1, 2)
    assert isinstance(batch["segmentations"]["a"], list)  # N differs: kept as a list
    assert batch["segmentations"]["b"][0] is None and batch["n"] == [1, 2]
    assert batch["metainfo"]["id"] == ["x", "y"] and batch["metainfo"]["affine"].shape == (2, 4, 4)
    assert collate_items([]) == {}


def test_dataloader_batches_items(make_store: MakeStore) -> None:
    ds = VolumeDataset(
        make_store({f"c{i}": simple_case(i) for i in range(3)}),
        return_as_semantic_segmentation=True,
    )
    batches = list(ds.get_dataloader(batch_size=2))
    assert batches[0]["image"].shape == (2, 1, 4, 5, 6)
    assert batches[0]["segmentations"]["final"].shape == (2, 3, 4, 5, 6)
    assert batches[1]["metainfo"]["id"] == ["c2"]


def test_distributed_sampler_without_process_group(make_store: MakeStore) -> None:
    ds = VolumeDataset(
        make_store({f"c{i}": simple_case(i) for i in range(5)}), return_segmentations=False
    )
    seen = []
    for rank in (0, 1):
        loader = ds.get_dataloader(
            batch_size=1, distributed=True, num_replicas=2, rank=rank, shuffle=False
        )
        seen += [i for b in loader for i in b["metainfo"]["id"]]
    assert sorted(seen) == ["c0", "c0", "c1", "c2", "c3", "c4"]  # padded to 6 with a repeat
    with pytest.raises(ValueError, match="sampler"):
        ds.get_dataloader(distributed=True, num_replicas=2, rank=0, sampler=[0])


def _torchrun(store: Path, out: Path, *extra: str) -> list[list[str]]:
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    assert torchrun is not None
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([str(HERE.parents[1]), os.environ.get("PYTHONPATH", "")]),
    }
    subprocess.run(
        [
            torchrun,
            "--standalone",
            "--nproc_per_node=2",
            str(HERE / "ddp_epoch_script.py"),
            str(store),
            str(out),
            *extra,
        ],
        check=True,
        env=env,
        capture_output=True,
        timeout=120,
    )
    return [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]


@pytest.mark.slow
def test_torchrun_two_ranks_see_each_item_once(make_store: MakeStore, tmp_path: Path) -> None:
    store = make_store({f"c{i}": simple_case(i, shape=(3, 3, 2)) for i in range(6)})
    VolumeDataset(store).prefetch(progress=False)
    ranks = _torchrun(store.root, tmp_path)
    assert len(ranks[0]) == len(ranks[1]) == 3
    assert sorted(ranks[0] + ranks[1]) == [f"c{i}" for i in range(6)]
