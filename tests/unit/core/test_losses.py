import math

import pytest
import torch
import torch.nn.functional as F

from ltray.core import losses as L
from ltray.errors import LtrayError


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(16, 5, generator=g, dtype=torch.float64)
    y = torch.tensor([0, 0, 0, 1, 1, 2, 0, 0, 1, 3, 0, 0, 1, 2, 0, 4])
    counts = torch.tensor([100.0, 40.0, 12.0, 5.0, 2.0], dtype=torch.float64)
    return logits, y, counts


def test_balanced_softmax_with_equal_counts_is_ce(batch):
    logits, y, _ = batch
    assert torch.allclose(L.balanced_softmax_loss(logits, y, torch.full((5,), 7.0)), F.cross_entropy(logits, y))


def test_la_loss_tau_zero_is_ce_and_tau_one_is_balanced_softmax(batch):
    logits, y, counts = batch
    prior = counts / counts.sum()
    assert torch.allclose(L.logit_adjusted_loss(logits, y, prior, 0.0), F.cross_entropy(logits, y))
    assert torch.allclose(L.logit_adjusted_loss(logits, y, prior, 1.0), L.balanced_softmax_loss(logits, y, counts))


def _lader_loop(logits, y, prior, lam):
    """The official LADELoss written out class by class, sample by sample."""
    N, C = logits.shape
    total = 0.0
    for c in range(C):
        members = [logits[i, c].item() for i in range(N) if y[i] == c]
        t1 = sum(members) / (len(members) + 1e-8)
        vals = [logits[i, c].item() - math.log(prior[c].item() + 1e-9) + math.log(1 / C + 1e-9) for i in range(N)]
        mx = max(vals)
        t2 = mx + math.log(sum(math.exp(v - mx) for v in vals)) - math.log(N)
        total += prior[c].item() * (t1 - t2 - lam * t2 * t2)
    return -total


def test_lader_matches_the_official_formula_written_as_loops(batch):
    logits, y, counts = batch
    prior = counts / counts.sum()
    for lam in (0.0, 0.01, 0.5):
        assert L.lader(logits, y, prior, lam).item() == pytest.approx(_lader_loop(logits, y, prior, lam), rel=1e-10)
    total = L.lade_loss(logits, y, prior, alpha=0.3, lam=0.1)
    assert total.item() == pytest.approx(L.balanced_softmax_loss(logits, y, counts).item()
                                         + 0.3 * _lader_loop(logits, y, prior, 0.1), rel=1e-10)


def test_ldam_margins_and_zero_margin(batch):
    logits, y, counts = batch
    m = L.ldam_margins(counts, 0.5)
    assert m.max().item() == pytest.approx(0.5)
    assert torch.allclose(m * counts**0.25, torch.full((5,), m[0].item() * 100**0.25, dtype=torch.float64))
    cos = torch.tanh(logits)
    assert torch.allclose(L.ldam_loss(cos, y, counts, max_m=0.0, s=30), F.cross_entropy(30 * cos, y))
    # the margin is subtracted from the true class only
    manual = 30 * (cos - F.one_hot(y, 5) * m[y][:, None])
    assert torch.allclose(L.ldam_loss(cos, y, counts, 0.5, 30), F.cross_entropy(manual, y))


def test_drw_weights():
    counts = torch.tensor([100.0, 10.0, 1.0])
    w = L.drw_weights(counts, 0.9999)
    assert w.sum().item() == pytest.approx(3.0) and w[0] < w[1] < w[2]
    expected = (1 - 0.9999) / (1 - 0.9999 ** counts.double())
    assert torch.allclose(w, expected / expected.sum() * 3)
    assert torch.allclose(L.drw_weights(counts, 0.0), torch.ones(3, dtype=torch.float64))
    with pytest.raises(LtrayError):
        L.drw_weights(counts, 1.0)


def test_equalization_limits(batch):
    logits, y, counts = batch
    prior = counts / counts.sum()
    assert torch.allclose(L.equalization_loss(logits, y, prior, 0.0), F.cross_entropy(logits, y))
    # every class below threshold, gamma = 1: only the target and no rival remains -> loss 0
    assert L.equalization_loss(logits, y, prior, 1.1, gamma=1.0).item() == pytest.approx(0.0, abs=1e-12)
    # gamma = 0 never drops a logit: plain CE whatever the threshold
    assert torch.allclose(L.equalization_loss(logits, y, prior, 1.1, gamma=0.0), F.cross_entropy(logits, y))
    # brute force for one threshold
    lam = 0.05
    rows = []
    for i in range(len(y)):
        keep = [j for j in range(5) if j == y[i] or prior[j] >= lam]
        z = logits[i, keep]
        rows.append(-(logits[i, y[i]] - torch.logsumexp(z, 0)))
    assert L.equalization_loss(logits, y, prior, lam, gamma=1.0).item() == pytest.approx(torch.stack(rows).mean().item())


def test_equalization_gamma_drops_each_tail_logit_with_probability_gamma(batch):
    """Tan et al. Eq. 6 with beta ~ Bernoulli(gamma) per sample and class: brute force for one
    draw of the mask (same generator), and the frequency of drops over many draws."""
    logits, y, counts = batch
    prior = counts / counts.sum()
    lam, gamma = 0.05, 0.9
    u = torch.rand(logits.shape, generator=torch.Generator().manual_seed(3))
    rows = []
    for i in range(len(y)):
        keep = [j for j in range(5) if j == y[i] or prior[j] >= lam or u[i, j] >= gamma]
        rows.append(-(logits[i, y[i]] - torch.logsumexp(logits[i, keep], 0)))
    got = L.equalization_loss(logits, y, prior, lam, gamma, generator=torch.Generator().manual_seed(3))
    assert got.item() == pytest.approx(torch.stack(rows).mean().item())
    # one sample of class 0, two tail rivals (classes 3 and 4): its loss reveals how many were dropped
    z = torch.zeros(1, 5, dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    kept = [round(math.exp(L.equalization_loss(z, torch.tensor([0]), prior, lam, gamma, generator=g).item())) - 3
            for _ in range(4000)]  # exp(loss) = 1 + 2 head rivals + kept tail rivals
    assert sum(kept) / (2 * 4000) == pytest.approx(1 - gamma, abs=0.015)  # 3.3 standard errors
    with pytest.raises(LtrayError, match="gamma"):
        L.equalization_loss(logits, y, prior, lam, 1.5)


def test_dive_limits(batch):
    logits, y, counts = batch
    assert torch.allclose(L.dive_loss(logits, logits * 2, y, counts, 3, 0.5, a=0.0), L.balanced_softmax_loss(logits, y, counts))
    # teacher == student, power 1: q equals the student's tempered softmax, KL = 0
    assert L.dive_loss(logits, logits, y, counts, 3.0, 1.0, a=1.0).item() == pytest.approx(0.0, abs=1e-12)
    q = L.dive_target(logits, 3.0, 0.5)
    p = torch.softmax(logits / 3, 1) ** 0.5
    assert torch.allclose(q, p / p.sum(1, keepdim=True))
    kl = (q * (q.log() - F.log_softmax(logits.flip(0) / 3, 1))).sum(1).mean()
    got = L.dive_loss(logits.flip(0), logits, y, counts, 3.0, 0.5, a=0.5)
    assert got.item() == pytest.approx(0.5 * 9 * kl.item() + 0.5 * L.balanced_softmax_loss(logits.flip(0), y, counts).item())


@pytest.mark.parametrize("name", ["ce", "la", "bsce", "lade", "ldam", "eql", "dive"])
def test_gradients_match_finite_differences(batch, name):
    logits, y, counts = batch
    prior = counts / counts.sum()
    teacher = torch.randn(16, 5, dtype=torch.float64)
    fns = {
        "ce": lambda z: L.cross_entropy(z, y),
        "la": lambda z: L.logit_adjusted_loss(z, y, prior, 0.7),
        "bsce": lambda z: L.balanced_softmax_loss(z, y, counts),
        "lade": lambda z: L.lade_loss(z, y, prior, 0.1, 0.05),
        "ldam": lambda z: L.ldam_loss(torch.tanh(z), y, counts, 0.5, 5.0, L.drw_weights(counts)),
        "eql": lambda z: L.equalization_loss(z, y, prior, 0.05, gamma=1.0),  # a fixed mask
        "dive": lambda z: L.dive_loss(z, teacher, y, counts, 2.0, 0.5, 0.5),
    }
    z = logits.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(fns[name], (z,))


def test_bad_shapes_and_labels_are_refused(batch):
    logits, y, counts = batch
    with pytest.raises(LtrayError, match="labels must lie"):
        L.cross_entropy(logits, torch.full((16,), 5))
    with pytest.raises(LtrayError, match=r"\(N,\)"):
        L.balanced_softmax_loss(logits, y[:3], counts)
    with pytest.raises(LtrayError, match="per-class"):
        L.balanced_softmax_loss(logits, y, counts[:4])
    with pytest.raises(LtrayError, match=r"\(N, C\)"):
        L.cross_entropy(logits[0], y)


def test_focal_loss_brute_force_and_limits(batch):
    logits, y, counts = batch
    assert torch.allclose(L.focal_loss(logits, y, 0.0), F.cross_entropy(logits, y))
    p = torch.softmax(logits, 1)[torch.arange(len(y)), y]
    want = ((1 - p) ** 2 * -p.log()).mean()
    assert L.focal_loss(logits, y, 2.0).item() == pytest.approx(want.item())
    w = torch.arange(1.0, 6.0, dtype=torch.float64)
    assert L.focal_loss(logits, y, 2.0, w).item() == pytest.approx((w[y] * (1 - p) ** 2 * -p.log()).mean().item())
    assert L.focal_loss(logits, y, 2.0) < F.cross_entropy(logits, y)  # (1 - p)^gamma < 1 shrinks every term


def test_class_balanced_weights_and_weighted_ce(batch):
    logits, y, counts = batch
    beta = 0.999
    eff = (1 - beta ** counts) / (1 - beta)  # Cui et al.: the effective number of samples
    w = (1 / eff) / (1 / eff).sum() * 5
    assert torch.allclose(L.drw_weights(counts, beta), w)
    ce = torch.stack([F.cross_entropy(logits[i:i + 1], y[i:i + 1]) for i in range(len(y))])
    assert L.weighted_cross_entropy(logits, y, w).item() == pytest.approx((w[y] * ce).mean().item())
    assert torch.allclose(L.weighted_cross_entropy(logits, y, torch.ones(5)), F.cross_entropy(logits, y))
    inv = L.inverse_frequency_weights(counts)
    assert inv.sum().item() == pytest.approx(5) and torch.allclose(inv * counts, (inv * counts)[0].expand(5))
    # beta -> 0: every class has effective number 1, equal weights; beta -> 1: inverse frequency
    assert torch.allclose(L.drw_weights(counts, 1e-12), torch.ones(5, dtype=torch.float64))
    assert torch.allclose(L.drw_weights(counts, 1 - 1e-9), inv, rtol=1e-4)


def test_remix_label_weights_by_the_papers_rule():
    from ltray.methods.remix import remix_weights

    counts = torch.tensor([300.0, 100.0, 10.0])
    w = remix_weights({"kappa": 3.0, "tau": 0.5}, counts)
    y, partner = torch.tensor([0, 2, 1, 0, 1]), torch.tensor([2, 0, 0, 1, 1])
    # ratios n_y / n_partner: 30, 1/30, 1/3, 3, 1
    assert w(0.3, y, partner).tolist() == pytest.approx([0.0, 0.3, 0.3, 0.0, 0.3])  # lambda < tau: head gives way
    assert w(0.8, y, partner).tolist() == pytest.approx([0.8, 1.0, 1.0, 0.8, 0.8])  # 1 - lambda < tau: tail keeps it
    # kappa beyond every ratio: plain mixup
    assert remix_weights({"kappa": 100.0, "tau": 0.5}, counts)(0.3, y, partner).tolist() == pytest.approx([0.3] * 5)
