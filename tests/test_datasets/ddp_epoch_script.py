"""Run under torchrun: one epoch of a VolumeDataset through DistributedSampler; write seen ids."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch.distributed as dist
from medstore.datasets import VolumeDataset


def main() -> None:
    """``ddp_epoch_script.py STORE OUT_DIR [drop_last]``: each rank writes ``rank<r>.json``."""
    store, out = sys.argv[1], Path(sys.argv[2])
    drop_last = len(sys.argv) > 3 and sys.argv[3] == "drop_last"
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    ds = VolumeDataset(store, return_segmentations=False)
    loader = ds.get_dataloader(batch_size=2, distributed=True, drop_last=drop_last, seed=7)
    assert loader.sampler is not None
    loader.sampler.set_epoch(0)  # type: ignore[attr-defined]
    seen = [meta_id for batch in loader for meta_id in batch["metainfo"]["id"]]
    (out / f"rank{rank}.json").write_text(json.dumps(seen))
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
