"""What a multi-expert model costs: parameters and training throughput (forward + backward + SGD
step, batch 128) of a single model, the same backbone with 3 experts (RIDE / SADE / BalPoE
layout), and, for cnn-tiny, a single model widened to the 3 experts' parameter count
(cnn-tiny-wide). One run, ratios against the single model.

    python benchmarks/experts_cost.py [--steps 30] [--device cpu|cuda]
"""

import argparse
import time

import torch
import torch.nn.functional as F

from ltray.models import build_model

CASES = {"cnn-tiny": (1, 28, [("cnn-tiny", 0), ("cnn-tiny", 3), ("cnn-tiny-wide", 0)]),
         "resnet32": (3, 32, [("resnet32", 0), ("resnet32", 3)])}


def throughput(name: str, experts: int, channels: int, size: int, steps: int, device: str) -> tuple[int, float]:
    torch.manual_seed(0)
    net = build_model(name, 10, channels, "cosine", experts=experts).to(device).train()
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(128, channels, size, size, device=device)
    y = torch.randint(0, 10, (128,), device=device)

    def step():
        out = net(x)
        loss = F.cross_entropy(30 * (out if out.ndim == 2 else out.mean(1)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    for _ in range(3):  # warm-up
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    return sum(p.numel() for p in net.parameters()), steps * 128 / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--device", default="cpu")
    a = p.parse_args()
    for backbone, (channels, size, runs) in CASES.items():
        base = None
        for name, experts in runs:
            params, ips = throughput(name, experts, channels, size, a.steps, a.device)
            base = base or (params, ips)
            label = f"{name}{f' x{experts} experts' if experts else ''}"
            print(f"{label:26s} {params:>9,d} parameters ({params / base[0]:.2f}x)  {ips:8.0f} images/s "
                  f"({ips / base[1]:.2f}x)", flush=True)


if __name__ == "__main__":
    main()
