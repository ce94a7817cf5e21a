"""Batched tensor transforms of in-memory images (crop, flip, normalisation on the model's
device) and the PIL pipeline of ``list-file`` datasets."""

from __future__ import annotations

import torch

def augment_batch(x: torch.Tensor, kind: str, generator: torch.Generator | None = None) -> torch.Tensor:
    """Random crop (zero padding) and, for "crop_flip", horizontal flip, batched; x (N, C, H, W)."""
    if kind == "none" or x.ndim != 4:
        return x
    pad = 4 if kind == "crop_flip" else 1
    N, C, H, W = x.shape
    dev = x.device
    xp = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    off = torch.randint(0, 2 * pad + 1, (2, N), generator=generator, device="cpu").to(dev)
    rows = (torch.arange(H, device=dev)[None, :] + off[0][:, None])  # (N, H)
    cols = (torch.arange(W, device=dev)[None, :] + off[1][:, None])  # (N, W)
    n = torch.arange(N, device=dev)[:, None, None]
    out = xp.permute(0, 2, 3, 1)[n, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
    if kind == "crop_flip":
        flip = (torch.rand(N, generator=generator, device="cpu") < 0.5).to(dev)
        out = torch.where(flip[:, None, None, None], out.flip(3), out)
    return out.contiguous()


def to_float(x: torch.Tensor, mean, std) -> torch.Tensor:
    """uint8 images (N, C, H, W) -> normalised float32; float features pass through."""
    if x.dtype != torch.uint8:
        return x.float()
    m = torch.tensor(mean, device=x.device).view(1, -1, 1, 1)
    s = torch.tensor(std, device=x.device).view(1, -1, 1, 1)
    return (x.float() / 255.0 - m) / s


class ImageList(torch.utils.data.Dataset):
    """PIL images from a list of paths; training crops RandomResizedCrop + flip, eval centre crop."""

    def __init__(self, paths: list[str], labels: torch.Tensor, size: int, train: bool, mean, std):
        import torchvision.transforms as T

        self.paths, self.labels = paths, labels
        norm = T.Normalize(mean, std)
        if train:
            self.tf = T.Compose([T.RandomResizedCrop(size), T.RandomHorizontalFlip(), T.ToTensor(), norm])
        else:
            self.tf = T.Compose([T.Resize(int(size * 256 / 224)), T.CenterCrop(size), T.ToTensor(), norm])

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        from PIL import Image

        with Image.open(self.paths[i]) as im:
            return self.tf(im.convert("RGB")), self.labels[i]
