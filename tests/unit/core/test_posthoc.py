import numpy as np
import pytest
import torch

from ltray.core.metrics import balanced_accuracy
from ltray.core.posthoc import (estimate_prior_bbse, estimate_prior_em, logit_adjust, pc_adjust, tau_curve,
                                tau_normalize)
from ltray.errors import LtrayError


def _lt_problem(seed=0, N=600, C=8):
    """Logits of a head-biased model: true class signal plus log-prior bias."""
    rng = np.random.default_rng(seed)
    prior = np.array([0.5 ** c for c in range(C)])
    prior /= prior.sum()
    y = rng.integers(0, C, N)
    f = rng.normal(0, 1.5, (N, C)) + 2.0 * np.eye(C)[y] + np.log(prior)
    return f, y, prior


def test_pc_with_target_equal_to_train_is_identity_and_la_zero_is_identity():
    f, _, prior = _lt_problem()
    t = torch.from_numpy(f)
    assert torch.allclose(pc_adjust(t, prior, prior), t)
    assert torch.allclose(logit_adjust(t, prior, 0.0), t)


def test_posthoc_la_equals_pc_with_uniform_target():
    f, _, prior = _lt_problem()
    t = torch.from_numpy(f)
    uni = np.full(prior.size, 1 / prior.size)
    a, b = logit_adjust(t, prior, 1.0), pc_adjust(t, prior, uni)
    assert torch.equal(a.argmax(1), b.argmax(1))
    assert torch.allclose(a - b, (a - b)[:, :1].expand_as(a))  # they differ by a per-row constant


def test_tau_normalize():
    w = torch.randn(6, 4)
    assert torch.allclose(tau_normalize(w, 0.0), w)
    assert torch.allclose(tau_normalize(w, 1.0).norm(dim=1), torch.ones(6))


def _brute(f, y, prior, tau):
    return balanced_accuracy((f - tau * np.log(prior)).argmax(1), y, prior.size)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tau_curve_equals_brute_force_between_and_just_after_breakpoints(seed):
    f, y, prior = _lt_problem(seed)
    curve = tau_curve(f, y, prior, tau_max=3.0)
    b = curve.breakpoints
    assert b[0] == 0 and b[-1] == 3.0 and np.all(np.diff(b) > 0)
    mids = 0.5 * (b[:-1] + b[1:])
    for tau, v in zip(mids, curve.values):
        assert _brute(f, y, prior, tau) == pytest.approx(v, abs=1e-12)
    for tau in b[1:-1]:
        eps = 1e-9 * max(1.0, tau)
        if tau + eps < b[-1]:
            assert _brute(f, y, prior, tau + eps) == pytest.approx(curve.at(tau + eps), abs=1e-12)
    rng = np.random.default_rng(seed)
    for tau in rng.uniform(0, 3, 50):
        assert _brute(f, y, prior, tau) == pytest.approx(curve.at(tau), abs=1e-12)
    # tau* is at least as good as any point of a dense grid, and its value is the true one
    grid = np.linspace(0, 3, 301)
    assert curve.best >= max(_brute(f, y, prior, t) for t in grid) - 1e-12
    assert _brute(f, y, prior, curve.tau_star) == pytest.approx(curve.best)
    # neighbouring segments differ: breakpoints are only where the accuracy changes
    assert np.all(np.abs(np.diff(curve.values)) > 0)


def test_tau_curve_bad_input():
    with pytest.raises(LtrayError):
        tau_curve(np.zeros((3, 2)), np.zeros(4, int), np.array([0.5, 0.5]))
    with pytest.raises(LtrayError):
        tau_curve(np.zeros((3, 2)), np.zeros(3, int), np.array([0.5, 0.5]), tau_max=0)


def _calibrated_posteriors(rng, train_prior, target_prior, N):
    """Posteriors under train_prior of samples whose labels follow target_prior (Gaussian classes)."""
    C = train_prior.size
    y = rng.choice(C, N, p=target_prior)
    mu = 2.5 * np.eye(C)
    x = rng.normal(0, 1, (N, C)) + mu[y]
    loglik = -0.5 * ((x[:, None, :] - mu[None]) ** 2).sum(-1)  # exact class-conditional log densities
    logp = loglik + np.log(train_prior)
    p = np.exp(logp - logp.max(1, keepdims=True))
    return p / p.sum(1, keepdims=True), y


def test_em_recovers_a_known_prior():
    rng = np.random.default_rng(0)
    train = np.array([0.4, 0.3, 0.15, 0.1, 0.05])
    target = np.array([0.05, 0.1, 0.15, 0.3, 0.4])
    probs, y = _calibrated_posteriors(rng, train, target, 20000)
    est = estimate_prior_em(probs, train)
    assert est.sum() == pytest.approx(1.0)
    realised = np.bincount(y, minlength=5) / y.size  # the prior of this very sample
    assert np.abs(est - realised).sum() < 0.02
    assert np.abs(est - target).sum() < 0.03
    assert np.abs(train - target).sum() > 0.5  # the starting point was far


def test_bbse_recovers_a_known_prior():
    rng = np.random.default_rng(1)
    train = np.array([0.4, 0.3, 0.15, 0.1, 0.05])
    target = np.array([0.05, 0.1, 0.15, 0.3, 0.4])
    uni = np.full(5, 0.2)
    val_p, val_y = _calibrated_posteriors(rng, train, uni, 20000)
    test_p, _ = _calibrated_posteriors(rng, train, target, 20000)
    est = estimate_prior_bbse(val_p.argmax(1), val_y, test_p.argmax(1), 5)
    assert np.abs(est - target).sum() < 0.05
    with pytest.raises(LtrayError):
        estimate_prior_bbse([0, 7], [0, 1], [0], 5)
