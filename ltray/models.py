"""Models by name: backbone (images -> features) + a linear or cosine (LDAM) head."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ltray.errors import LtrayError

HEADS = ("linear", "cosine", "lws")


class BasicBlock(nn.Module):
    """CIFAR ResNet block with the parameter-free "option A" shortcut (He et al. 2016, LDAM-DRW)."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.pad = cout - cin
        self.stride = stride

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        sc = x
        if self.stride != 1 or self.pad:
            sc = F.pad(x[:, :, :: self.stride, :: self.stride], (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))
        return F.relu(out + sc)


class ResNet32(nn.Module):
    """The CIFAR ResNet-32: 3 stages of 5 basic blocks (16, 32, 64 channels); 64-d features."""

    feature_dim = 64

    def __init__(self, in_channels: int = 3, blocks: int = 5):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        layers, cin = [], 16
        for cout, stride in ((16, 1), (32, 2), (64, 2)):
            for b in range(blocks):
                layers.append(BasicBlock(cin, cout, stride if b == 0 else 1))
                cin = cout
        self.layers = nn.Sequential(*layers)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)

    def forward(self, x):
        x = self.layers(F.relu(self.bn1(self.conv1(x))))
        return F.adaptive_avg_pool2d(x, 1).flatten(1)


class SmallCNN(nn.Module):
    """A small CNN for 8x8 digits: 3 conv-BN-ReLU layers, one 2x2 pool; 128-d features."""

    feature_dim = 128

    def __init__(self, in_channels: int = 1):
        super().__init__()
        c = [in_channels, 32, 64, 128]
        layers = []
        for i in range(3):
            layers += [nn.Conv2d(c[i], c[i + 1], 3, 1, 1, bias=False), nn.BatchNorm2d(c[i + 1]), nn.ReLU(inplace=True)]
            if i == 1:
                layers.append(nn.MaxPool2d(2))
        self.body = nn.Sequential(*layers)

    def forward(self, x):
        return F.adaptive_avg_pool2d(self.body(x), 1).flatten(1)


class TinyCNN(nn.Module):
    """A CPU-sized CNN for 28x28 images (fashion-mnist-lt's benchmark): conv-BN-ReLU at 16, 32 and
    64 channels with a 2x2 pool after the first two; 64-d features. About 2 M multiply-adds per
    28x28 image, 15x fewer than cnn-small at that size."""

    feature_dim = 64

    def __init__(self, in_channels: int = 1, width: float = 1.0):
        super().__init__()
        c = [in_channels, *(round(n * width) for n in (16, 32, 64))]
        self.feature_dim = c[-1]
        layers = []
        for i in range(3):
            layers += [nn.Conv2d(c[i], c[i + 1], 3, 1, 1, bias=False), nn.BatchNorm2d(c[i + 1]), nn.ReLU(inplace=True)]
            if i < 2:
                layers.append(nn.MaxPool2d(2))
        self.body = nn.Sequential(*layers)

    def forward(self, x):
        return F.adaptive_avg_pool2d(self.body(x), 1).flatten(1)


class Identity(nn.Module):
    """Features are the inputs themselves (gaussian-lt: a linear model on raw coordinates)."""

    def __init__(self, dim: int):
        super().__init__()
        self.feature_dim = dim

    def forward(self, x):
        return x.flatten(1).float()


class CosineHead(nn.Module):
    """LDAM's NormedLinear: cosine between normalised features and normalised class weights."""

    def __init__(self, dim: int, num_classes: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_classes, dim).uniform_(-1, 1).renorm_(2, 0, 1e-5).mul_(1e5))

    def forward(self, feats):
        return F.normalize(feats, dim=1) @ F.normalize(self.weight, dim=1).T


class ScaledLinear(nn.Module):
    """LWS (Kang et al. ICLR 2020): a linear classifier times a learnable per-class scale f_c
    (initialised to 1): ``f_c (w_c . x + b_c)``. The linear part is loaded from a trained model
    and frozen; only the scales learn."""

    def __init__(self, dim: int, num_classes: int):
        super().__init__()
        self.linear = nn.Linear(dim, num_classes)
        self.scale = nn.Parameter(torch.ones(num_classes))

    def forward(self, feats):
        return self.linear(feats) * self.scale


class Classifier(nn.Module):
    """backbone (features) + head; ``features(x)`` gives (N, D) for cRT and tau-normalisation."""

    def __init__(self, backbone: nn.Module, head: nn.Module):
        super().__init__()
        self.backbone, self.head = backbone, head

    def features(self, x):
        return self.backbone(x)

    def forward(self, x):
        return self.head(self.backbone(x))


EXPERT_WIDTH = 0.75
"""Channels of an expert's branch, as a fraction of the single model's: RIDE's and SADE's
``reduce_dimension`` (ResNet-32's stages 2 and 3 at 24 and 48 channels instead of 32 and 64)."""


def _resnet_parts(in_channels: int, width: float):
    """ResNet-32 as RIDE and SADE split it: conv1 and stage 1 shared, stages 2 and 3 per expert."""
    def trunk():
        net = ResNet32(in_channels)
        return nn.Sequential(net.conv1, net.bn1, nn.ReLU(), *list(net.layers)[:5])

    def branch():
        c2, c3 = round(32 * width), round(64 * width)
        blocks, cin = [], 16
        for cout, stride in ((c2, 2), (c3, 2)):
            for b in range(5):
                blocks.append(BasicBlock(cin, cout, stride if b == 0 else 1))
                cin = cout
        for m in nn.Sequential(*blocks).modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
        return nn.Sequential(*blocks, nn.AdaptiveAvgPool2d(1), nn.Flatten()), c3
    return trunk, branch


def _cnn_parts(in_channels: int, width: float, channels: tuple[int, int, int], pools: tuple[int, ...]):
    """A small CNN split after its first block: that block shared, the other two per expert."""
    def block(cin, cout, i):
        return [nn.Conv2d(cin, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                *([nn.MaxPool2d(2)] if i in pools else [])]

    def trunk():
        return nn.Sequential(*block(in_channels, channels[0], 0))

    def branch():
        c1, c2 = round(channels[1] * width), round(channels[2] * width)
        return nn.Sequential(*block(channels[0], c1, 1), *block(c1, c2, 2), nn.AdaptiveAvgPool2d(1), nn.Flatten()), c2
    return trunk, branch


EXPERT_PARTS = {
    "resnet32": lambda in_channels, width: _resnet_parts(in_channels, width),
    "cnn-small": lambda in_channels, width: _cnn_parts(in_channels, width, (32, 64, 128), (1,)),
    "cnn-tiny": lambda in_channels, width: _cnn_parts(in_channels, width, (16, 32, 64), (0, 1)),
}


class Experts(nn.Module):
    """A multi-expert model (RIDE, SADE, BalPoE): a shared trunk, then E branches, each with its own
    head. Training gives every expert's logits, (N, E, C), for the method's loss; evaluation gives
    their mean, (N, C), so every metric and post-hoc rule reads it as one model's logits.
    ``expert_logits(x)`` gives (N, E, C) in either mode."""

    def __init__(self, name: str, num_classes: int, in_channels: int, head: str, experts: int,
                 width: float = EXPERT_WIDTH):
        super().__init__()
        if name not in EXPERT_PARTS:
            raise LtrayError(f"model {name!r} has no multi-expert form; use one of {', '.join(EXPERT_PARTS)}")
        trunk, branch = EXPERT_PARTS[name](in_channels, width)
        self.trunk = trunk()
        branches = [branch() for _ in range(experts)]
        self.branches = nn.ModuleList(b for b, _ in branches)
        make = {"linear": nn.Linear, "cosine": CosineHead}[head]
        self.head = nn.ModuleList(make(dim, num_classes) for _, dim in branches)

    def expert_logits(self, x):
        shared = self.trunk(x)
        return torch.stack([h(b(shared)) for b, h in zip(self.branches, self.head)], dim=1)

    def forward(self, x):
        out = self.expert_logits(x)
        return out if self.training else out.mean(1)


def _torchvision(name: str, in_channels: int) -> nn.Module:
    import torchvision  # only these models need it; importing it costs ~1 s per fresh worker

    net = getattr(torchvision.models, name)(weights=None)  # never downloads weights
    if in_channels != 3:
        net.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
    net.feature_dim = net.fc.in_features
    net.fc = nn.Identity()
    return net


def _linear(in_channels: int, in_dim: int) -> nn.Module:
    if in_dim < 1:
        raise LtrayError("the linear model needs the input dimension")
    return Identity(in_dim)


# name -> backbone builder (image channels, flat input size) -> module with .feature_dim. Adding a
# model is one entry; tests/test_models.py builds and runs every one.
BACKBONES = {
    "resnet32": lambda in_channels, in_dim: ResNet32(in_channels),
    "cnn-small": lambda in_channels, in_dim: SmallCNN(in_channels),
    "cnn-tiny": lambda in_channels, in_dim: TinyCNN(in_channels),
    # cnn-tiny at 1.375x the channels: the parameters of a 3-expert cnn-tiny (a single model matched for capacity)
    "cnn-tiny-wide": lambda in_channels, in_dim: TinyCNN(in_channels, width=1.375),
    "linear": _linear,
    **{name: (lambda in_channels, in_dim, name=name: _torchvision(name, in_channels))
       for name in ("resnet34", "resnet50", "resnext50_32x4d")},
}
MODELS = tuple(BACKBONES)


def build_model(name: str, num_classes: int, in_channels: int = 3, head: str = "linear", in_dim: int = 0,
                experts: int = 0) -> Classifier | Experts:
    """A model by name; ``in_dim`` is the flat input size for ``linear``; ``experts`` > 0: that
    many experts on a shared trunk (:class:`Experts`)."""
    if experts:
        return Experts(name, num_classes, in_channels, head, experts)
    if name not in BACKBONES:
        raise LtrayError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    if head not in HEADS:
        raise LtrayError(f"unknown head {head!r}; choose one of {', '.join(HEADS)}")
    bb = BACKBONES[name](in_channels, in_dim)
    h = {"linear": nn.Linear, "cosine": CosineHead, "lws": ScaledLinear}[head](bb.feature_dim, num_classes)
    return Classifier(bb, h)
