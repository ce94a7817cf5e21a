import numpy as np
import pytest

from ltray.core.longtail import lt_counts, lt_indices, shift_names, shifted_test_indices, split_validation
from ltray.errors import LtrayError


def test_cifar_lt_totals_match_published_sizes():
    assert sum(lt_counts(5000, 10, 100)) == 12406
    assert sum(lt_counts(500, 100, 100)) == 10847
    c = lt_counts(500, 100, 100)
    assert c[0] == 500 and c[-1] == 5 and all(a >= b for a, b in zip(c, c[1:]))


def test_rho_one_is_balanced_and_bad_rho_is_refused():
    assert lt_counts(7, 4, 1) == [7, 7, 7, 7]
    for bad in (0.5, 0, -3, float("nan")):
        with pytest.raises(LtrayError, match="rho"):
            lt_counts(10, 5, bad)


def test_lt_indices_keeps_counts_and_is_seeded():
    y = np.repeat(np.arange(5), 30)
    counts = lt_counts(30, 5, 10)
    idx = lt_indices(y, counts, seed=1)
    assert np.bincount(y[idx], minlength=5).tolist() == counts
    assert np.array_equal(idx, lt_indices(y, counts, seed=1))
    assert not np.array_equal(idx, lt_indices(y, counts, seed=2))
    with pytest.raises(LtrayError, match="class 0"):
        lt_indices(y, [31, 1, 1, 1, 1], 0)


def test_split_validation_is_balanced_and_disjoint():
    y = np.repeat(np.arange(4), [10, 8, 6, 5])
    rest, val = split_validation(y, 3, seed=0)
    assert np.bincount(y[val]).tolist() == [3, 3, 3, 3]
    assert np.intersect1d(rest, val).size == 0 and rest.size + val.size == y.size
    with pytest.raises(LtrayError):
        split_validation(y, 6, 0)


def test_shifted_test_sizes_follow_the_lade_protocol():
    C, m = 100, 100
    test_y = np.repeat(np.arange(C), m)
    train_counts = np.array(lt_counts(500, C, 100))
    expected_fw = sum(int(m * 50 ** (-k / (C - 1))) for k in range(C))
    fw = shifted_test_indices(test_y, train_counts, 50, "forward")
    bw = shifted_test_indices(test_y, train_counts, 50, "backward")
    assert fw.size == bw.size == expected_fw
    # head class keeps all m in forward, the tail class all m in backward
    assert (test_y[fw] == 0).sum() == m and (test_y[fw] == C - 1).sum() == int(m / 50)
    assert (test_y[bw] == C - 1).sum() == m and (test_y[bw] == 0).sum() == int(m / 50)
    assert shifted_test_indices(test_y, train_counts, 1, "uniform").size == C * m
    # first n_k images of each class in stored order
    assert np.array_equal(fw[test_y[fw] == 1], np.flatnonzero(test_y == 1)[: int(m * 50 ** (-1 / 99))])


def test_shift_ranking_follows_training_counts_not_class_ids():
    test_y = np.repeat(np.arange(3), 10)
    idx = shifted_test_indices(test_y, np.array([1, 50, 5]), 10, "forward")
    kept = np.bincount(test_y[idx], minlength=3)
    assert kept.tolist() == [1, 10, 3]  # class 1 is the head, class 0 the tail


def test_shift_names_are_the_eleven_sets():
    names = [n for n, _, _ in shift_names()]
    assert len(names) == 11 and names[0] == "forward50" and names[5] == "uniform" and names[-1] == "backward50"
    with pytest.raises(LtrayError):
        shifted_test_indices(np.zeros(3, int), np.ones(1), 2, "sideways")


def test_shifted_sets_have_sades_counts_on_cifar100():
    """SADE (Vanint/SADE-AgnosticLT, imbalance_cifar.py) keeps int(100 f^(c/99)) test images of
    class c forward, int(100 f^((99-c)/99)) backward, f = 1/ratio, all 100 for uniform: ltray's
    sets have exactly those counts for every class of every shift (2,486 images at forward-50 ...
    10,000 uniform). The images differ: SADE shuffles each class with NumPy's seed 0, ltray keeps
    each class's first n in the test set's stored order."""
    import numpy as np

    from ltray.core.longtail import shift_names, shifted_test_indices

    y = np.repeat(np.arange(100), 100)
    counts = np.array([int(500 * 0.01 ** (c / 99)) for c in range(100)])  # CIFAR-100-LT, rho 100
    for name, ratio, direction in shift_names():
        got = np.bincount(y[shifted_test_indices(y, counts, ratio, direction)], minlength=100)
        f = 1 / ratio
        want = np.full(100, 100) if direction == "uniform" else np.array(
            [int(100 * f ** ((c if direction == "forward" else 99 - c) / 99.0)) for c in range(100)])
        assert (got == want).all(), name
