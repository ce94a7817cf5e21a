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
