"""Post-hoc rules on stored logits: logit adjustment, PC softmax, tau-normalisation, the exact
tau curve, and label-shift estimation (EM, BBSE). No retraining."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ltray.core.metrics import balanced_accuracy
from ltray.errors import LtrayError


def _np(x, dtype=np.float64) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype)


def _log_vec(p, like: torch.Tensor) -> torch.Tensor:
    v = torch.as_tensor(p, dtype=like.dtype, device=like.device)
    if v.shape != like.shape[-1:]:
        raise LtrayError(f"prior must be ({like.shape[-1]},), got {tuple(v.shape)}")
    if (v <= 0).any():
        raise LtrayError("priors must be strictly positive to take their log")
    return torch.log(v)


def fit_temperature(logits, y, lo: float = 0.05, hi: float = 20.0, iters: int = 80) -> float:
    """Temperature scaling (Guo et al. ICML 2017): the T > 0 minimising the NLL of softmax(f / T)
    on (validation) logits (N, C) and labels (N,). The NLL is convex in 1/T, so a golden-section
    search over log T in [lo, hi] finds it to ~1e-15 relative width. T only rescales: the
    argmax, and so every accuracy, is unchanged."""
    f = torch.as_tensor(logits, dtype=torch.float64)
    yt = torch.as_tensor(np.asarray(y), dtype=torch.int64)
    if f.ndim != 2 or yt.shape != (f.shape[0],) or f.shape[0] == 0:
        raise LtrayError(f"fit_temperature wants logits (N, C) and labels (N,), got {tuple(f.shape)}, {tuple(yt.shape)}")

    def nll(log_t: float) -> float:
        return float(torch.nn.functional.cross_entropy(f / math.exp(log_t), yt))

    a, b = math.log(lo), math.log(hi)
    g = (math.sqrt(5) - 1) / 2
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = nll(c), nll(d)
    for _ in range(iters):
        if fc <= fd:
            b, d, fd = d, c, fc
            c = b - g * (b - a)
            fc = nll(c)
        else:
            a, c, fc = c, d, fd
            d = a + g * (b - a)
            fd = nll(d)
    return math.exp((a + b) / 2)


def logit_prior(train_counts, balanced: bool) -> np.ndarray:
    """The label prior inside a model's logits, (C,) float64: the training prior, or uniform when
    training already removed it (a balanced loss or sampler; ``methods.logits_are_balanced``).
    Every post-hoc rule divides out this prior (docs/METHODS.md: no double counting)."""
    n = np.asarray(train_counts, dtype=np.float64)
    return np.full(n.size, 1.0 / n.size) if balanced else n / n.sum()


def logit_adjust(logits: torch.Tensor, prior, tau: float = 1.0) -> torch.Tensor:
    """Post-hoc logit adjustment (Menon et al.): ``f - tau * log(prior)``; (N, C) -> (N, C)."""
    logits = torch.as_tensor(logits)
    return logits - tau * _log_vec(prior, logits)


def pc_adjust(logits: torch.Tensor, train_prior, target_prior) -> torch.Tensor:
    """PC softmax (LADE): ``f - log(train_prior) + log(target_prior)``; (N, C) -> (N, C).

    For a model trained with the prior inside its loss (LA, BSCE, LADE), pass a uniform
    ``train_prior`` so only the target prior is added (docs/METHODS.md: no double counting).
    """
    logits = torch.as_tensor(logits)
    return logits - _log_vec(train_prior, logits) + _log_vec(target_prior, logits)


def tau_normalize(weight: torch.Tensor, tau: float) -> torch.Tensor:
    """tau-normalised classifier (Kang et al.): rows ``w_c / ||w_c||^tau``; (C, D) -> (C, D)."""
    norms = weight.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return weight / norms**tau


@dataclass(frozen=True)
class TauCurve:
    """Balanced accuracy as an exact step function of tau.

    ``values[k]`` holds for tau in the open interval ``(breakpoints[k], breakpoints[k+1])``;
    ``breakpoints`` (K+1,) starts at 0 and ends at tau_max; ``tau_star`` is the midpoint of the
    first interval with the highest value.
    """

    breakpoints: np.ndarray
    values: np.ndarray
    tau_star: float
    best: float

    def at(self, tau) -> np.ndarray:
        """Value of the curve at tau (scalar or array); at a breakpoint, the interval to its right."""
        k = np.searchsorted(self.breakpoints, np.asarray(tau, dtype=np.float64), side="right") - 1
        return self.values[np.clip(k, 0, self.values.size - 1)]


def tau_curve(logits, y, prior, tau_max: float = 3.0) -> TauCurve:
    """Exact balanced accuracy of ``argmax_c f_c - tau * log(prior_c)`` for tau in [0, tau_max].

    logits (N, C), y (N,), prior (C,). Each class score is a line in tau, so a sample is
    correct on one interval [lo_i, hi_i] (its line on the upper envelope): solve for it in
    O(N C), then sweep the 2N interval ends. No grid: every breakpoint is found.
    """
    f = _np(logits)
    y = _np(y, np.int64)
    lp = np.log(_np(prior))
    if f.ndim != 2 or y.shape != (f.shape[0],) or lp.shape != (f.shape[1],):
        raise LtrayError(f"tau_curve wants logits (N, C), y (N,), prior (C,); got {f.shape}, {y.shape}, {lp.shape}")
    if not tau_max > 0:
        raise LtrayError(f"tau_max must be > 0, got {tau_max}")
    N, C = f.shape
    # Sample i is correct at tau iff for every c: d_ic >= tau * e_ic, with
    # d = f_y - f_c and e = lp_y - lp_c.
    d = f[np.arange(N), y][:, None] - f
    e = lp[y][:, None] - lp[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        r = d / e
    lo = np.max(np.where(e < 0, r, -np.inf), axis=1, initial=-np.inf)
    hi = np.min(np.where(e > 0, r, np.inf), axis=1, initial=np.inf)
    never = np.any((e == 0) & (d < 0), axis=1)  # a rival with the same prior and a higher score
    lo = np.maximum(lo, 0.0)
    hi = np.minimum(hi, tau_max)
    ok = (~never) & (lo < hi)
    classes, per = np.unique(y, return_counts=True)
    weight = np.zeros(int(y.max()) + 1 if N else 1)
    weight[classes] = 1.0 / (per * classes.size)  # each sample's share of the balanced accuracy
    w = weight[y[ok]]
    pos = np.concatenate([lo[ok], hi[ok]])
    delta = np.concatenate([w, -w])
    order = np.argsort(pos, kind="stable")
    pos, delta = pos[order], delta[order]
    bps, first = np.unique(pos, return_index=True)
    level = np.cumsum(delta)
    # value just right of each unique position: cumulative sum after its last event
    last = np.append(first[1:], pos.size) - 1
    after = level[last] if pos.size else np.zeros(0)
    breakpoints = np.unique(np.concatenate([[0.0], bps, [tau_max]]))
    values = np.zeros(breakpoints.size - 1)
    if bps.size:
        k = np.searchsorted(bps, breakpoints[:-1], side="right") - 1
        values = np.where(k >= 0, after[np.clip(k, 0, None)], 0.0)
    # merge neighbours with equal value: breakpoints only where the accuracy changes
    keep = np.concatenate([[True], ~np.isclose(values[1:], values[:-1], rtol=0, atol=1e-12)])
    values = values[keep]
    breakpoints = np.append(breakpoints[:-1][keep], tau_max)
    kbest = int(np.argmax(values))
    tau_star = 0.5 * (breakpoints[kbest] + breakpoints[kbest + 1])
    return TauCurve(breakpoints, values, float(tau_star), float(values[kbest]))


def estimate_prior_em(probs, train_prior, max_iter: int = 1000, tol: float = 1e-8) -> np.ndarray:
    """Saerens, Latinne & Decaestecker (2002): EM re-estimation of the test label prior.

    probs (N, C): the model's posteriors under ``train_prior`` (C,) on unlabelled test images.
    Returns the estimated target prior, (C,) float64, summing to 1.
    """
    p = _np(probs)
    p0 = _np(train_prior)
    if p.ndim != 2 or p0.shape != (p.shape[1],):
        raise LtrayError(f"estimate_prior_em wants probs (N, C) and prior (C,); got {p.shape}, {p0.shape}")
    p0 = p0 / p0.sum()
    pt = p0.copy()
    for _ in range(max_iter):
        post = p * (pt / p0)
        post /= post.sum(1, keepdims=True)
        new = post.mean(0)
        if np.abs(new - pt).sum() < tol:
            pt = new
            break
        pt = new
    return pt


def estimate_prior_bbse(val_preds, val_labels, test_preds, num_classes: int) -> np.ndarray:
    """Black-box shift estimation (Lipton et al. 2018) from hard predictions.

    val_preds, val_labels (M,): predictions and labels on a labelled held-out set (the source);
    test_preds (N,): predictions on the unlabelled target. Solves ``C w = mu`` with
    ``C[i, j] = P(pred=i, y=j)`` and ``mu[i] = P_target(pred=i)``; returns ``w * p_source``
    clipped at 0 and normalised, (C,) float64.
    """
    vp, vy, tp = (_np(a, np.int64) for a in (val_preds, val_labels, test_preds))
    K = num_classes
    if vp.shape != vy.shape:
        raise LtrayError(f"val_preds {vp.shape} and val_labels {vy.shape} must match")
    for a in (vp, vy, tp):
        if a.size and (a.min() < 0 or a.max() >= K):
            raise LtrayError(f"predictions/labels must lie in [0, {K})")
    conf = np.zeros((K, K))
    np.add.at(conf, (vp, vy), 1.0)
    conf /= max(vp.size, 1)
    mu = np.bincount(tp, minlength=K) / max(tp.size, 1)
    w = np.linalg.lstsq(conf, mu, rcond=None)[0]
    q = np.clip(w, 0, None) * np.bincount(vy, minlength=K) / max(vy.size, 1)
    return q / q.sum() if q.sum() > 0 else np.full(K, 1.0 / K)


TAUNORM_GRID = np.round(np.linspace(0.0, 2.0, 21), 10)  # tau in [0, 2], Kang et al.


def tau_normalized_results(features: dict[str, np.ndarray], labels: dict[str, np.ndarray], weight: torch.Tensor,
                           num_classes: int) -> dict:
    """tau-normalised classifier (Kang et al. ICLR 2020): logits = features @ (w_c / ||w_c||^tau).T,
    bias dropped; tau* picked on validation over a 0.1 grid of [0, 2] (the features are not
    linear in tau, so no exact curve). ``features``: {"val": (N_val, D), "test": (N_test, D)},
    ``Classifier.features`` in eval mode; ``labels``: the same splits' (N,); ``weight``: the
    linear head's (C, D). Returns tau*, validation and test balanced accuracy at tau*, and test
    balanced accuracy at tau = 1."""

    feats = {s: torch.as_tensor(f).double() for s, f in features.items()}
    w = torch.as_tensor(weight).double()

    def bal(split, tau):
        return balanced_accuracy((feats[split] @ tau_normalize(w, tau).T).numpy(), labels[split], num_classes)

    val_curve = [bal("val", t) for t in TAUNORM_GRID]
    k = int(np.argmax(val_curve))
    return {"tau_star": float(TAUNORM_GRID[k]), "val_bal_acc": float(val_curve[k]),
            "test_bal_acc": bal("test", float(TAUNORM_GRID[k])), "test_bal_acc_tau1": bal("test", 1.0)}
