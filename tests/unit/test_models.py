import pytest
import torch

from ltray.errors import LtrayError
from ltray.models import MODELS, build_model


def test_resnet32_shape_and_size():
    m = build_model("resnet32", 100)
    assert m.features(torch.randn(2, 3, 32, 32)).shape == (2, 64)
    assert m(torch.randn(2, 3, 32, 32)).shape == (2, 100)
    n_conv = sum(isinstance(x, torch.nn.Conv2d) for x in m.modules())
    assert n_conv == 31  # 1 stem + 3 stages x 5 blocks x 2 convs; +1 fc = 32 layers
    assert 0.46e6 < sum(p.numel() for p in m.parameters()) < 0.48e6


def test_cosine_head_outputs_cosines():
    m = build_model("cnn-small", 10, in_channels=1, head="cosine")
    out = m(torch.randn(4, 1, 8, 8))
    assert out.shape == (4, 10) and out.abs().max() <= 1 + 1e-6


def test_torchvision_models_build_without_downloads():
    m = build_model("resnet34", 5)
    assert m.features(torch.randn(1, 3, 64, 64)).shape == (1, 512)


def test_unknown_names():
    with pytest.raises(LtrayError, match="unknown model"):
        build_model("vgg", 10)
    with pytest.raises(LtrayError, match="unknown head"):
        build_model("resnet32", 10, head="arcface")


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("head", ["linear", "cosine"])
def test_every_registered_model_builds_runs_and_learns(name, head):
    """Registry-wide: every model builds without downloads, maps its input to (N, C), and one
    SGD step changes its output (gradients reach the backbone)."""
    torch.manual_seed(0)
    x = torch.randn(2, 5) if name == "linear" else torch.randn(2, 3, 32, 32)
    m = build_model(name, 4, in_channels=3, head=head, in_dim=5 if name == "linear" else 0)
    out = m(x)
    assert out.shape == (2, 4) and torch.isfinite(out).all()
    params = [p for p in m.backbone.parameters()]
    if not params:  # the linear model has no backbone weights: its head learns
        params = list(m.head.parameters())
    before = [p.detach().clone() for p in params]
    torch.nn.functional.cross_entropy(m(x), torch.tensor([0, 3])).backward()
    torch.optim.SGD(m.parameters(), lr=0.1).step()
    assert any(not torch.equal(b, p) for b, p in zip(before, params))
