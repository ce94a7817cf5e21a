import numpy as np
import pytest
import torch

from ltray.core.metrics import balanced_accuracy, per_class_accuracy, shot_accuracy, virtual_example_distribution
from ltray.errors import LtrayError


def test_per_class_and_balanced_accuracy():
    y = np.array([0, 0, 0, 0, 1, 1, 2])
    p = np.array([0, 0, 1, 0, 1, 0, 2])
    pc = per_class_accuracy(p, y, 4)
    assert pc[:3].tolist() == [0.75, 0.5, 1.0] and np.isnan(pc[3])
    assert balanced_accuracy(p, y, 4) == pytest.approx((0.75 + 0.5 + 1.0) / 3)
    logits = torch.nn.functional.one_hot(torch.from_numpy(p), 4).float()
    assert np.allclose(per_class_accuracy(logits, y, 4)[:3], pc[:3])
    with pytest.raises(LtrayError):
        per_class_accuracy(p[:3], y, 4)
    with pytest.raises(LtrayError):
        per_class_accuracy(p, y, 2)


def test_shot_groups_boundaries():
    counts = np.array([101, 100, 20, 19, 5])
    acc = np.array([1.0, 0.5, 0.3, 0.2, 0.0])
    s = shot_accuracy(acc, counts)
    assert s["many"] == 1.0  # only > 100 is many-shot
    assert s["medium"] == pytest.approx(0.4)  # 100 and 20 are medium
    assert s["few"] == pytest.approx(0.1)  # < 20 is few
    assert np.isnan(shot_accuracy(acc[1:], counts[1:])["many"])


def test_virtual_example_distribution():
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    raw = virtual_example_distribution(logits)
    assert raw.sum() == pytest.approx(2.0)
    assert np.allclose(raw, torch.softmax(logits, 1).sum(0).numpy())
    # higher temperature and power < 1 flatten it
    flat = virtual_example_distribution(logits, tau=3.0, power=0.5)
    assert flat.sum() == pytest.approx(2.0) and flat.std() < raw.std()
    assert np.allclose(virtual_example_distribution(logits, power=0.0), [2 / 3] * 3)


def test_per_class_precision_by_hand():
    from ltray.core.metrics import per_class_precision

    pred = np.array([0, 0, 0, 1, 1, 2])
    y = np.array([0, 0, 1, 1, 2, 2])
    p = per_class_precision(pred, y, 4)
    assert p[:3].tolist() == pytest.approx([2 / 3, 1 / 2, 1.0]) and np.isnan(p[3])  # class 3 never predicted


def test_ece_brute_force_and_perfect_calibration():
    import torch

    from ltray.core.metrics import expected_calibration_error

    rng = np.random.default_rng(0)
    f = rng.normal(0, 2, (500, 4))
    y = rng.integers(0, 4, 500)
    p = torch.softmax(torch.as_tensor(f), 1).numpy()
    conf, right = p.max(1), p.argmax(1) == y
    want = 0.0
    for b in range(15):  # bins (b/15, (b+1)/15]
        inside = (conf > b / 15) & (conf <= (b + 1) / 15)
        if inside.any():
            want += inside.sum() / 500 * abs(right[inside].mean() - conf[inside].mean())
    assert expected_calibration_error(f, y) == pytest.approx(want)
    # a classifier whose confidence is 0.75 and which is right 3 times out of 4: ECE 0
    f2 = np.log(np.array([[0.75, 0.25]] * 4))
    assert expected_calibration_error(f2, np.array([0, 0, 0, 1])) == pytest.approx(0.0, abs=1e-12)
    assert expected_calibration_error(f2, np.array([1, 1, 1, 1])) == pytest.approx(0.75)


def test_temperature_scaling_finds_the_nll_minimum_and_fixes_overconfidence():
    import torch

    from ltray.core.metrics import expected_calibration_error
    from ltray.core.posthoc import fit_temperature

    rng = np.random.default_rng(1)
    f = rng.normal(0, 1, (2000, 5))
    y = torch.distributions.Categorical(logits=torch.as_tensor(f)).sample().numpy()  # calibrated at T = 1
    over = f * 3.0  # the same model, three times too confident
    t = fit_temperature(over, y)
    grid = np.exp(np.linspace(np.log(0.5), np.log(10), 2001))
    nll = [float(torch.nn.functional.cross_entropy(torch.as_tensor(over) / g, torch.as_tensor(y))) for g in grid]
    assert t == pytest.approx(grid[int(np.argmin(nll))], rel=2e-3)  # the brute-force minimum
    assert t == pytest.approx(3.0, rel=0.1)
    assert expected_calibration_error(over / t, y) < expected_calibration_error(over, y) / 3
