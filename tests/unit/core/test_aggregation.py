"""SADE's test-time aggregation on a constructed case where the right weights are known."""

import torch

from ltray.core.aggregation import aggregate, learn_weights


def _views(epochs=5, n=600, c=5, seed=0):
    """Expert 0 is right and says the same on both views of an image; experts 1 and 2 guess at
    random, differently on each view (unstable on this test set): agreement favours expert 0."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, c, (n,), generator=g)
    good = 4.0 * torch.nn.functional.one_hot(y, c).double()
    out = []
    for _ in range(epochs):
        pair = []
        for _ in range(2):
            noisy = 4.0 * torch.nn.functional.one_hot(torch.randint(0, c, (n, 2), generator=g), c).double()
            pair.append(torch.cat([good[:, None], noisy], 1))
        out.append(tuple(pair))
    return out, y


def test_the_weight_moves_to_the_expert_the_views_agree_on():
    views, y = _views()
    w = learn_weights(views)
    assert w.sum().item() == torch.tensor(1.0).item() and w[0] > 0.5 > w[1] + w[2] - 0.5
    assert w[0] > w[1] and w[0] > w[2]
    # and the aggregated prediction is the right one far more often than with equal weights
    clean = views[0][0]
    learnt = (aggregate(clean, w).argmax(1) == y).double().mean()
    equal = (aggregate(clean, torch.full((3,), 1 / 3)).argmax(1) == y).double().mean()
    assert learnt >= equal


def test_equally_stable_experts_keep_equal_weights():
    views, _ = _views()
    same = [(a[:, [0, 0, 0]], b[:, [0, 0, 0]]) for a, b in views]  # three copies of one expert
    w = learn_weights(same)
    assert torch.allclose(w, torch.full((3,), 1 / 3, dtype=w.dtype), atol=1e-9)


def test_it_stops_once_a_weight_falls_below_the_threshold():
    views, _ = _views(epochs=5)
    w_one = learn_weights(views[:1])
    w_all = learn_weights(views, stop_below=1.0)  # any weight is below 1: stops after the first epoch
    assert torch.allclose(w_one, w_all)
