"""Training throughput: ltray's fit against a reference loop written the way the long-tail
repositories do it (torchvision DataLoader + PIL transforms), same ResNet-32, batch 128, same
number of steps, on CIFAR-shaped data. Prints images/s of each and the ratios, in one run.

    python benchmarks/train_throughput.py [--steps 30] [--device cpu|cuda] [--bf16] [--channels-last] [--compile]
"""

import argparse
import time

import numpy as np
import torch

from ltray.config import Recipe
from ltray.datasets import DataBundle, Split
from ltray.datasets.cifar import CIFAR_MEAN, CIFAR_STD
from ltray.models import build_model
from ltray.train import fit


def cifar_shaped(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    y = np.repeat(np.arange(10), n // 10)
    return x, y


def ltray_images_per_s(x, y, steps, bs, device, **opts) -> float:
    t = torch.from_numpy
    tiny = Split(t(y[:10]), t(x[:10]))  # validation/test kept tiny: this measures training
    data = DataBundle("bench", 10, Split(t(y), t(x)), tiny, tiny, "bench", CIFAR_MEAN, CIFAR_STD, "crop_flip", 32)
    recipe = Recipe(epochs=2, batch_size=bs, lr=0.05, warmup_epochs=0, **opts)
    res = fit(data, "ce", model="resnet32", recipe=recipe, seed=0, device=device)
    return res.history[-1]["images_per_s"]  # the second epoch: no first-call warm-up inside it


def reference_images_per_s(x, y, steps, bs, device, workers) -> float:
    import torchvision.transforms as T
    from PIL import Image

    class PILSet(torch.utils.data.Dataset):  # as in LDAM-DRW / BALMS: a PIL image per sample
        tf = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(CIFAR_MEAN, CIFAR_STD)])

        def __len__(self):
            return len(y)

        def __getitem__(self, i):
            return self.tf(Image.fromarray(x[i].transpose(1, 2, 0))), int(y[i])

    net = build_model("resnet32", 10).to(device)
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, weight_decay=2e-4)
    loader = torch.utils.data.DataLoader(PILSet(), batch_size=bs, shuffle=True, num_workers=workers, drop_last=True,
                                         persistent_workers=workers > 0)
    net.train()
    for epoch in range(2):  # the second epoch is timed, as for ltray
        t0, seen = time.perf_counter(), 0
        for xb, yb in loader:
            xb, yb = xb.to(device), yb.to(device)
            loss = torch.nn.functional.cross_entropy(net(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            seen += yb.numel()
        if device == "cuda":
            torch.cuda.synchronize()
    return seen / (time.perf_counter() - t0)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=30, help="steps per epoch")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--bf16", action="store_true")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--compile", action="store_true")
    a = p.parse_args()
    x, y = cifar_shaped(a.steps * a.batch)
    opts = dict(bf16=a.bf16, channels_last=a.channels_last, compile=a.compile)
    print(f"ResNet-32, batch {a.batch}, {a.steps} steps per epoch, device {a.device}, torch threads "
          f"{torch.get_num_threads()}, options {opts}", flush=True)
    ours = ltray_images_per_s(x, y, a.steps, a.batch, a.device, **opts)
    print(f"ltray fit (uint8 tensor on device, batched augmentation): {ours:8.0f} img/s", flush=True)
    # how much of a step the data path is: sample by index, crop + flip, normalise
    from ltray.datasets import augment_batch, to_float

    xt, g = torch.from_numpy(x).to(a.device), torch.Generator().manual_seed(0)
    t0 = time.perf_counter()
    for _ in range(50):
        idx = torch.randint(0, len(y), (a.batch,), generator=g).to(a.device)
        to_float(augment_batch(xt[idx], "crop_flip", g), CIFAR_MEAN, CIFAR_STD)
    data_ms = (time.perf_counter() - t0) / 50 * 1000
    step_ms = a.batch / ours * 1000
    print(f"  its data path: {data_ms:.1f} ms of a {step_ms:.0f} ms step ({data_ms / step_ms:.1%}); the rest is "
          "the model's forward and backward, the same in both loops", flush=True)
    for workers in (2, 0):
        ref = reference_images_per_s(x, y, a.steps, a.batch, a.device, workers)
        print(f"reference DataLoader + PIL, num_workers={workers}:           {ref:8.0f} img/s   "
              f"ratio ltray / reference = {ours / ref:.2f}x", flush=True)


if __name__ == "__main__":
    main()
