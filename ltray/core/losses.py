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


def _experts(logits: torch.Tensor, y: torch.Tensor, n: int | None = None) -> None:
    if logits.ndim != 3 or (n is not None and logits.shape[1] != n):
        raise LtrayError(f"a multi-expert loss needs (N, E, C) logits{f' with E = {n}' if n else ''}, "
                         f"got {tuple(logits.shape)}")
    _check(logits[:, 0], y)


def inverse_prior(prior) -> torch.Tensor:
    """SADE's "inverse" prior: the priors' ranks reversed (the most frequent class gets the rarest
    class's prior), not 1/pi (Vanint/SADE-AgnosticLT, ``DiverseExpertLoss.inverse_prior``)."""
    p = torch.as_tensor(prior)
    value, order = torch.sort(p)
    rank = torch.argsort(order)  # each class's place among the sorted priors
    return value[p.numel() - 1 - rank]


def sade_loss(logits: torch.Tensor, y: torch.Tensor, prior, tau: float = 2.0) -> torch.Tensor:
    """SADE (Zhang et al. NeurIPS 2022) on three experts' logits (N, 3, C): CE on the first (the
    training distribution), balanced softmax ``CE(z + log pi)`` on the second (uniform), and
    ``CE(z + log pi - tau log pi_inv)`` on the third (the inverse distribution), summed."""
    _experts(logits, y, 3)
    log_p = torch.log(_vec(prior, logits) + 1e-9)
    log_inv = torch.log(_vec(inverse_prior(torch.as_tensor(prior, dtype=torch.float64)), logits) + 1e-9)
    return (F.cross_entropy(logits[:, 0], y) + F.cross_entropy(logits[:, 1] + log_p, y)
            + F.cross_entropy(logits[:, 2] + log_p - tau * log_inv, y))


def ride_loss(cos_logits: torch.Tensor, y: torch.Tensor, counts, max_m: float = 0.5, s: float = 30.0, weight=None,
              diversity: float = -0.45, temperature: float = 1.0, class_temperature=None) -> torch.Tensor:
    """RIDE (Wang et al. ICLR 2021) on E experts' cosine logits (N, E, C), as the authors'
    ``RIDELoss``: per expert, LDAM's CE (margins on the target, ``weight`` once DRW is on) plus
    ``diversity * T^2 * KL(softmax(zbar / T) || softmax(z_k / T))``, where zbar is the (detached)
    mean of the experts' logits s * cos and T the temperature (times ``class_temperature`` per
    class once DRW is on; T^2 uses its mean), summed over the experts. A negative ``diversity``
    pushes the experts apart."""
    _experts(cos_logits, y)
    z = s * cos_logits
    t = temperature * (_vec(class_temperature, z) if class_temperature is not None else torch.ones_like(z[0, 0]))
    target = F.softmax(z.mean(1).detach() / t, dim=1)
    loss = z.new_zeros(())
    for k in range(z.shape[1]):
        loss = loss + ldam_loss(cos_logits[:, k], y, counts, max_m, s, weight)
        loss = loss + diversity * t.mean() ** 2 * F.kl_div(F.log_softmax(z[:, k] / t, dim=1), target,
                                                            reduction="batchmean")
    return loss


def ride_class_temperature(counts, factor: float = 0.05) -> torch.Tensor:
    """RIDE's per-class diversity temperature under DRW: ``C * pi_c * factor + 1 - factor``, over its maximum."""
    n = torch.as_tensor(counts, dtype=torch.float64)
    w = n.numel() * n / n.sum() * factor + 1 - factor
    return w / w.max()


def balpoe_taus(experts: int, tau_min: float = 0.0, tau_max: float = 2.0) -> torch.Tensor:
    """BalPoE's expert taus, evenly spaced from tau_min to tau_max (the authors' "limits"); their
    mean must be 1 for the experts' mean logits to be balanced."""
    return torch.linspace(tau_min, tau_max, experts, dtype=torch.float64)


def balpoe_loss(logits: torch.Tensor, y: torch.Tensor, prior, taus) -> torch.Tensor:
    """BalPoE (Sanchez Aimar et al. CVPR 2023) on E experts' logits (N, E, C): the mean over the
    experts of the logit-adjusted loss ``CE(z_k + tau_k log pi, y)`` (the authors' ``BSExpertLoss``)."""
    _experts(logits, y, len(taus))
    log_p = torch.log(_vec(prior, logits) + 1e-9)
    return sum(F.cross_entropy(logits[:, k] + float(tau) * log_p, y) for k, tau in enumerate(taus)) / len(taus)
