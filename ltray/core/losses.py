"""Training losses of the long-tail methods. Shapes: logits (N, C), y (N,) int64, counts (C,).

Each is written from the formula in docs/METHODS.md and checked against a closed form in
tests/test_losses.py.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ltray.errors import LtrayError


def _check(logits: torch.Tensor, y: torch.Tensor, per_class: torch.Tensor | None = None) -> None:
    if logits.ndim != 2:
        raise LtrayError(f"logits must be (N, C), got shape {tuple(logits.shape)}")
    if y.ndim != 1 or y.shape[0] != logits.shape[0]:
        raise LtrayError(f"labels must be (N,) with N={logits.shape[0]}, got {tuple(y.shape)}")
    C = logits.shape[1]
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= C):
        raise LtrayError(f"labels must lie in [0, {C}), got range [{int(y.min())}, {int(y.max())}]")
    if per_class is not None and per_class.shape != (C,):
        raise LtrayError(f"per-class vector must be ({C},), got {tuple(per_class.shape)}")


def _vec(v, like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(v, dtype=like.dtype, device=like.device)


def cross_entropy(logits: torch.Tensor, y: torch.Tensor, weight=None) -> torch.Tensor:
    """Softmax cross-entropy, mean over the batch (weighted mean if ``weight`` (C,) is given)."""
    _check(logits, y)
    w = None if weight is None else _vec(weight, logits)
    return F.cross_entropy(logits, y, weight=w)


def logit_adjusted_loss(logits: torch.Tensor, y: torch.Tensor, prior, tau: float = 1.0) -> torch.Tensor:
    """Menon et al.: ``CE(f + tau * log(prior), y)``; prior (C,) sums to 1."""
    p = _vec(prior, logits)
    _check(logits, y, p)
    return F.cross_entropy(logits + tau * torch.log(p), y)


def balanced_softmax_loss(logits: torch.Tensor, y: torch.Tensor, counts) -> torch.Tensor:
    """Ren et al.: ``CE(f + log(n), y)``, n (C,) the training counts (= LA loss with tau=1)."""
    n = _vec(counts, logits)
    _check(logits, y, n)
    return F.cross_entropy(logits + torch.log(n), y)


def lader(logits: torch.Tensor, y: torch.Tensor, prior, lam: float) -> torch.Tensor:
    """The LADE regulariser term exactly as hyperconnect/LADE ``LADELoss.forward`` (a scalar).

    T1_c = sum of f_c over the batch's class-c samples / (count_c + 1e-8);
    T2_c = logsumexp_i(f_c - log(pi_c + 1e-9) + log(1/C + 1e-9)) - log N over all N samples;
    returns ``-sum_c pi_c * (T1_c - T2_c - lam * T2_c^2)``.
    """
    p = _vec(prior, logits)
    _check(logits, y, p)
    N, C = logits.shape
    onehot = (y[None, :] == torch.arange(C, device=y.device)[:, None]).to(logits.dtype)  # (C, N)
    count = onehot.sum(1)
    t1 = (logits.T * onehot).sum(1) / (count + 1e-8)
    shifted = (logits - torch.log(p + 1e-9) + math.log(1.0 / C + 1e-9)).T  # (C, N)
    t2 = torch.logsumexp(shifted, dim=1) - math.log(N)
    return -torch.sum((t1 - t2 - lam * t2**2) * p)


def lade_loss(logits: torch.Tensor, y: torch.Tensor, prior, alpha: float = 0.1, lam: float = 0.01) -> torch.Tensor:
    """LADE total: ``CE(f + log(prior), y) + alpha * lader(f, y, prior, lam)`` (Hong et al.)."""
    return logit_adjusted_loss(logits, y, prior, 1.0) + alpha * lader(logits, y, prior, lam)


def ldam_margins(counts, max_m: float = 0.5) -> torch.Tensor:
    """LDAM margins ``m_c = K / n_c^(1/4)`` scaled so that ``max_c m_c = max_m``; (C,) float64."""
    n = torch.as_tensor(counts, dtype=torch.float64)
    if (n <= 0).any():
        raise LtrayError("every class needs at least one training image for LDAM margins")
    m = 1.0 / n**0.25
    return m * (max_m / m.max())


def ldam_loss(cos_logits: torch.Tensor, y: torch.Tensor, counts, max_m: float = 0.5, s: float = 30.0,
              weight=None) -> torch.Tensor:
    """Cao et al.: ``CE(s * (z - m_y * onehot(y)), y, weight)`` on cosine logits z (N, C)."""
    m = ldam_margins(counts, max_m).to(cos_logits)
    _check(cos_logits, y, m)
    z = cos_logits - F.one_hot(y, cos_logits.shape[1]).to(cos_logits) * m[y][:, None]
    w = None if weight is None else _vec(weight, cos_logits)
    return F.cross_entropy(s * z, y, weight=w)


def drw_weights(counts, beta: float = 0.9999) -> torch.Tensor:
    """Deferred re-weighting: ``w_c = (1 - beta) / (1 - beta^n_c)`` normalised to ``sum w = C``."""
    if not 0 <= beta < 1:
        raise LtrayError(f"DRW beta must be in [0, 1), got {beta}")
    n = torch.as_tensor(counts, dtype=torch.float64)
    w = (1.0 - beta) / (1.0 - beta**n)
    return w / w.sum() * n.numel()


def inverse_frequency_weights(counts) -> torch.Tensor:
    """Re-weighting by inverse class frequency: ``w_c = (1 / n_c)``, normalised so ``sum_c w_c = C``."""
    n = torch.as_tensor(counts, dtype=torch.float64)
    w = 1.0 / n
    return w * n.numel() / w.sum()


def weighted_cross_entropy(logits: torch.Tensor, y: torch.Tensor, weight) -> torch.Tensor:
    """``mean_i w_{y_i} CE_i``: each sample's loss times its class weight, averaged over the batch
    (Cui et al.'s class-balanced loss; unlike ``F.cross_entropy(weight=)``, which divides by the
    batch's total weight). weight (C,)."""
    w = _vec(weight, logits)
    _check(logits, y, w)
    return (w[y] * F.cross_entropy(logits, y, reduction="none")).mean()


def focal_loss(logits: torch.Tensor, y: torch.Tensor, gamma: float = 2.0, weight=None) -> torch.Tensor:
    """Softmax focal loss (Lin et al. ICCV 2017): ``mean_i w_{y_i} (1 - p_i)^gamma (-log p_i)`` with
    ``p_i`` the softmax probability of the true class; gamma = 0 is (weighted) CE."""
    _check(logits, y)
    log_p = F.log_softmax(logits, 1).gather(1, y[:, None]).squeeze(1)
    loss = (1 - log_p.exp()).clamp_min(0) ** gamma * -log_p
    if weight is not None:
        loss = _vec(weight, logits)[y] * loss
    return loss.mean()


def sigmoid_focal_loss(logits: torch.Tensor, y: torch.Tensor, gamma: float = 1.0, weight=None) -> torch.Tensor:
    """Sigmoid focal loss as Cui et al.'s class-balanced code computes it (richardaecn/class-
    balanced-loss, ``src/cifar_main.py`` ``focal_loss``): every class is a binary problem,
    ``sum_i sum_c w_{y_i} (1 - p_t)^gamma BCE(z_ic, [c = y_i]) / N`` with ``p_t`` the sigmoid
    probability of the right answer for that class; the example's class weight ``w_{y_i}``
    multiplies all C of its terms. The modulator is computed as the authors do,
    ``exp(-gamma y z - gamma log(1 + e^-z))``, with softplus for the log (equal, and no overflow).
    gamma = 0 is class-weighted sigmoid cross-entropy summed over classes."""
    _check(logits, y)
    target = F.one_hot(y, logits.shape[1]).to(logits.dtype)
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    mod = torch.exp(-gamma * target * logits - gamma * F.softplus(-logits)) if gamma else torch.ones_like(bce)
    w = torch.ones(logits.shape[0], dtype=logits.dtype, device=logits.device) if weight is None \
        else _vec(weight, logits)[y]
    return (w[:, None] * mod * bce).sum() / max(y.numel(), 1)


def softmax_bce_loss(logits: torch.Tensor, y: torch.Tensor, weight=None) -> torch.Tensor:
    """Binary cross-entropy of the softmax probabilities against the one-hot label, averaged over
    the N x C entries, each example's entries weighted by its class's weight: weight balancing's
    second-stage loss as its authors' code computes it (ShadeAlsha/LTR-weight-balancing,
    ``utils/class_balanced_loss.py``, ``CB_loss(..., "softmax", ...)``; torch clamps each log at -100)."""
    _check(logits, y)
    target = F.one_hot(y, logits.shape[1]).to(logits.dtype)
    w = None if weight is None else _vec(weight, logits)[y][:, None].expand_as(target)
    return F.binary_cross_entropy(logits.softmax(1), target, weight=w)


def equalization_loss(logits: torch.Tensor, y: torch.Tensor, prior, lam: float, gamma: float = 0.9,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """Softmax equalization loss (Tan et al. CVPR 2020, Eq. 6): for a sample of class y, the
    logit of a tail class ``j != y`` (``prior_j < lam``) leaves the softmax denominator when
    ``beta = 1``, where beta ~ Bernoulli(gamma) is drawn per sample and class (the paper keeps
    some negative gradients for tail classes; gamma = 0.9 in its configs). gamma = 1 always
    drops them, gamma = 0 is plain CE. logits (N, C), y (N,) -> scalar."""
    p = _vec(prior, logits)
    _check(logits, y, p)
    if not 0.0 <= gamma <= 1.0:
        raise LtrayError(f"equalization gamma must be in [0, 1], got {gamma}")
    drop = (p < lam)[None, :] & (F.one_hot(y, logits.shape[1]) == 0)
    if gamma < 1.0:
        u = torch.rand(logits.shape, generator=generator, device="cpu" if generator is not None else logits.device)
        drop = drop & (u.to(logits.device) < gamma)
    return F.cross_entropy(logits.masked_fill(drop, float("-inf")), y)


def dive_target(teacher: torch.Tensor, tau: float, power: float) -> torch.Tensor:
    """DiVE's distillation target ``normalise(softmax(t / tau) ** power)``, (N, C), detached."""
    q = torch.softmax(teacher.detach() / tau, dim=1) ** power
    return q / q.sum(1, keepdim=True)


def dive_loss(student: torch.Tensor, teacher: torch.Tensor, y: torch.Tensor, counts,
              tau: float = 3.0, power: float = 0.5, a: float = 0.5) -> torch.Tensor:
    """He et al.: ``a * tau^2 * KL(q || softmax(s / tau)) + (1 - a) * BSCE(s, y)``.

    KL is summed over classes and averaged over the batch; q from :func:`dive_target`.
    """
    if teacher.shape != student.shape:
        raise LtrayError(f"teacher logits {tuple(teacher.shape)} must match student {tuple(student.shape)}")
    q = dive_target(teacher, tau, power)
    kl = F.kl_div(F.log_softmax(student / tau, dim=1), q, reduction="batchmean")
    return a * tau**2 * kl + (1 - a) * balanced_softmax_loss(student, y, counts)
