"""The MONAI path: datalist() + LoadImaged, and VolumeDataset, each training a small UNet."""

from __future__ import annotations

import torch
from medstore.datasets import VolumeDataset
from medstore.datastore.store.local import LocalDatastore
from support.stores import MakeStore, simple_case


def _store(make_store: MakeStore) -> LocalDatastore:
    return make_store({f"c{i}": simple_case(i, shape=(16, 16, 8)) for i in range(3)})


def _unet() -> torch.nn.Module:
    from monai.networks.nets import UNet

    torch.manual_seed(0)
    return UNet(
        spatial_dims=3,
        in_channels=1,
        out_channels=3,
        channels=(4, 8),
        strides=(2,),
        num_res_units=0,
    )


def _train_two_steps(
    net: torch.nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]], loss_fn: torch.nn.Module
) -> list[float]:
    before = [p.detach().clone() for p in net.parameters()]
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    losses = []
    for image, target in batches[:2]:
        opt.zero_grad()
        loss = loss_fn(net(image), target)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert all(torch.isfinite(torch.tensor(losses)))
    assert any(not torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))
    return losses


def test_datalist_feeds_monai_load_imaged(make_store: MakeStore) -> None:
    from monai.data import CacheDataset, DataLoader, Dataset
    from monai.losses import DiceCELoss
    from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged

    datalist = _store(make_store).datalist()
    assert len(datalist) == 3 and {"image", "label"} <= set(datalist[0])
    transform = Compose(
        [LoadImaged(keys=["image", "label"]), EnsureChannelFirstd(keys=["image", "label"])]
    )
    assert len(CacheDataset(datalist, transform, progress=False)) == 3
    loader = DataLoader(Dataset(datalist, transform), batch_size=2)
    batches = [(b["image"].float(), b["label"].long()) for b in loader]
    assert batches[0][0].shape == (2, 1, 16, 16, 8)  # MONAI keeps the file's own layout
    _train_two_steps(_unet(), batches, DiceCELoss(to_onehot_y=True, softmax=True))


def test_volume_dataset_trains_a_unet(make_store: MakeStore) -> None:
    from monai.losses import DiceLoss

    ds = VolumeDataset(
        _store(make_store),
        return_as_semantic_segmentation=True,
        semantic_seg_merge_strategy="union",
        return_metainfo=False,
    )
    loader = ds.get_dataloader(batch_size=2, num_workers=0)
    batches = [(b["image"], b["segmentations"].float()) for b in loader]
    assert batches[0][0].shape == (2, 1, 8, 16, 16)  # canonical (C, D, H, W)
    assert batches[0][1].shape == (2, 3, 8, 16, 16)
    _train_two_steps(_unet(), batches, DiceLoss(softmax=True))
