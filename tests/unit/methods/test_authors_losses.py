"""Class-balanced focal and weight balancing against their authors' code, written out term by
term in float64 the way that code computes them (value and gradient): richardaecn/class-
balanced-loss ``src/cifar_main.py`` (TensorFlow's sigmoid_cross_entropy_with_logits and the
log1p modulator), and ShadeAlsha/LTR-weight-balancing ``utils/class_balanced_loss.py`` (BCE on
softmax probabilities, mean over N x C) and ``utils/regularizers.py`` (MaxNorm_via_PGD)."""

import math

import pytest
import torch

from ltray.methods import get_method
from ltray.methods.cb_focal import sigmoid_prior_bias
from ltray.methods.weight_balancing import max_norm, max_norm_radius

COUNTS = [500.0, 120.0, 40.0, 9.0, 3.0]


def _batch(seed=0, n=12, scale=3.0):
    g = torch.Generator().manual_seed(seed)
    logits = (torch.randn(n, len(COUNTS), generator=g, dtype=torch.float64) * scale).requires_grad_(True)
    y = torch.randint(0, len(COUNTS), (n,), generator=g)
    return logits, y


def _cb_weights(beta):
    """Their weights: (1 - beta) / (1 - beta^n), divided by their sum, times C."""
    w = [(1 - beta) / (1 - beta**n) for n in COUNTS]
    return [x / sum(w) * len(COUNTS) for x in w]


def _authors_cb_focal(logits, y, beta, gamma):
    """cifar_main.py focal_loss: per entry, TF's BCE with logits max(z,0) - z l + log(1 + e^-|z|)
    times the modulator exp(-gamma l z - gamma log(1 + e^-z)) times alpha (the example's class
    weight tiled over the classes); summed, divided by the sum of the labels."""
    w, total = _cb_weights(beta), 0.0
    for i in range(logits.shape[0]):
        for c in range(logits.shape[1]):
            z, lab = logits[i, c], 1.0 if c == int(y[i]) else 0.0
            bce = torch.clamp(z, min=0) - z * lab + torch.log1p(torch.exp(-torch.abs(z)))
            mod = torch.exp(-gamma * lab * z - gamma * torch.log1p(torch.exp(-z))) if gamma else 1.0
            total = total + w[int(y[i])] * mod * bce
    return total / logits.shape[0]


def _authors_wb_loss(logits, y, beta):
    """class_balanced_loss.py CB_loss(..., "softmax"): F.binary_cross_entropy(softmax, one-hot,
    weight = the example's class weight on every entry), mean over N x C, logs clamped at -100."""
    w, total = _cb_weights(beta), 0.0
    p = torch.softmax(logits, 1)
    for i in range(logits.shape[0]):
        for c in range(logits.shape[1]):
            lab = 1.0 if c == int(y[i]) else 0.0
            ll = lab * torch.clamp(torch.log(p[i, c]), min=-100) + (1 - lab) * torch.clamp(torch.log(1 - p[i, c]), min=-100)
            total = total - w[int(y[i])] * ll
    return total / logits.numel()


def _value_and_grad(f, logits):
    v = f(logits)
    (g,) = torch.autograd.grad(v, logits)
    return v.detach(), g


@pytest.mark.parametrize("gamma", [0.0, 0.5, 1.0, 2.0])
@pytest.mark.parametrize("beta", [0.9999, 0.99])
def test_cb_focal_is_the_authors_sigmoid_focal_loss(beta, gamma):
    logits, y = _batch()
    loss = get_method("cb_focal").make_loss(torch.tensor(COUNTS), 10, {"beta": beta, "gamma": gamma})
    ours = _value_and_grad(lambda z: loss(z, y, 0, None), logits)
    theirs = _value_and_grad(lambda z: _authors_cb_focal(z, y, beta, gamma), logits)
    assert torch.allclose(ours[0], theirs[0], rtol=1e-6) and torch.allclose(ours[1], theirs[1], rtol=1e-5, atol=1e-9)


def test_cb_focal_stays_finite_where_exp_overflows():
    logits, y = _batch(scale=400.0)  # e^-z overflows float64 past z = -709: softplus keeps it finite
    loss = get_method("cb_focal").make_loss(torch.tensor(COUNTS), 10, {"beta": 0.9999, "gamma": 1.0})
    v = loss(logits, y, 0, None)
    assert math.isfinite(v.item()) and torch.isfinite(torch.autograd.grad(v, logits)[0]).all()


def test_cb_focal_starts_each_class_sigmoid_at_one_over_c_without_decay_on_that_bias():
    net = torch.nn.Module()
    net.head = torch.nn.Linear(4, len(COUNTS))
    sigmoid_prior_bias(net, {})
    assert torch.allclose(torch.sigmoid(net.head.bias), torch.full((len(COUNTS),), 1 / len(COUNTS)))
    assert net.head.bias[0].item() == pytest.approx(-math.log(len(COUNTS) - 1))
    assert get_method("cb_focal").decay_head_bias is False


@pytest.mark.parametrize("beta", [0.9999, 0.9])
def test_wb_second_stage_is_the_authors_bce_on_softmax(beta):
    logits, y = _batch(seed=1)
    loss = get_method("wb").make_loss(torch.tensor(COUNTS), 10, get_method("wb").hp({"beta": beta}))
    ours = _value_and_grad(lambda z: loss(z, y, 0, None), logits)
    theirs = _value_and_grad(lambda z: _authors_wb_loss(z, y, beta), logits)
    assert torch.allclose(ours[0], theirs[0], rtol=1e-6) and torch.allclose(ours[1], theirs[1], rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("thresh", [0.0, 0.1, 1.0])
def test_max_norm_radius_comes_from_the_starting_classifier_and_only_longer_rows_move(thresh):
    """regularizers.py: radius = min + thresh (max - min) of the row norms it starts from, set
    once; a row longer than it is scaled onto it, the others (and the bias) are untouched."""
    net = torch.nn.Module()
    net.head = torch.nn.Linear(3, 4)
    start = torch.randn(4, 3, dtype=torch.float32) * torch.tensor([[0.5], [1.0], [2.0], [4.0]])
    net.head.weight.data = start.clone()
    bias = net.head.bias.detach().clone()
    max_norm_radius(net, {"thresh": thresh})
    norms = [float(r.norm()) for r in start]
    radius = min(norms) + thresh * (max(norms) - min(norms))
    assert net.head.max_norm_radius.item() == pytest.approx(radius, rel=1e-6)
    net.head.weight.data *= 3.0  # training moved the rows: the radius stays the starting one
    moved = net.head.weight.detach().clone()
    max_norm(net, {"thresh": thresh})
    want = torch.stack([r if r.norm() <= radius else r * (radius / r.norm()) for r in moved])
    assert torch.allclose(net.head.weight, want, atol=1e-6) and torch.equal(net.head.bias, bias)
    assert "max_norm_radius" in net.head.state_dict()  # a resumed stage keeps the radius it started with
