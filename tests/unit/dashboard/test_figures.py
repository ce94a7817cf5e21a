"""Every figure function on small in-memory tables: the right traces with the right values."""

import math

import pytest

from dashboard import figures, search_figures
from fixtures_study import COUNTS, write_study
from ltray import results as R


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    study = write_study(tmp_path_factory.mktemp("r"))
    return study, R.load_study(str(study))


def test_trials_rows_and_best(tables):
    _, t = tables
    rows = figures.trials_rows(t["trials"])
    assert len(rows) == 6 and rows[3]["params"] == "tau=1" and rows[0]["val_bal_acc"] == 0.5
    best = {b["method"]: b for b in figures.best_per_method_info(t["trials"])}
    # selection on validation: tau=1 (val 0.60) beats tau=2 (val 0.55) although tau=2 tests higher
    assert best["logit_adjusted"]["params"] == {"tau": 1.0} and best["logit_adjusted"]["test_bal_acc"] == 0.58
    assert best["ce"]["n"] == 3 and best["ce"]["test_bal_acc"] == pytest.approx(0.50)


def test_shot_bars(tables):
    _, t = tables
    fig = figures.shot_bars(t["trials"])
    assert [tr.name for tr in fig.data] == ["many (>100)", "medium", "few (<20)", "overall"]
    assert list(fig.data[0].x) == ["ce", "dive", "logit_adjusted"]
    assert fig.data[3].y[0] == pytest.approx(50.0)  # ce overall: mean of 48, 50, 52
    assert fig.data[0].y[0] == pytest.approx(70.0)
    info = figures.shot_bars_info(t["trials"])
    assert info["repeats"] and info["ci95"]["bal_acc"][0] == pytest.approx(4.302653 * 0.02 / math.sqrt(3))  # t(0.975, 2)
    assert info["ci95"]["bal_acc"][2] is None  # one seed: no error bar
    assert fig.data[0].error_y.visible


def test_shifts(tables):
    _, t = tables
    fig = figures.shifts(t["shifts"], t["trials"])
    assert len(fig.data) == 3 * 3  # methods x (none, PC true, PC EM)
    first = fig.data[0]
    assert list(first.x) == figures.SHIFT_ORDER and first.x[0] == "forward50" and first.x[-1] == "backward50"
    assert first.name == "ce: no adjustment"
    pc = [tr for tr in fig.data if tr.name == "logit_adjusted: PC, true prior"][0]
    none = [tr for tr in fig.data if tr.name == "logit_adjusted: no adjustment"][0]
    assert pc.y[0] - none.y[0] == pytest.approx(5.0 + 2 * 1.0)  # +0.05 and two rows further in the fixture


def test_per_class(tables):
    _, t = tables
    fig = figures.per_class(t["per_class"], t["trials"], ["t1", "t4"])
    assert len(fig.data) == 6 and fig.layout.xaxis.type == "log"  # per trial: recall raw, post-hoc, precision
    assert list(fig.data[0].x) == COUNTS and fig.data[0].y[0] == pytest.approx(90.0)
    assert fig.data[1].name.endswith("post-hoc tau*") and fig.data[1].y[-1] == pytest.approx(40.0)
    assert fig.data[2].name.endswith("precision") and fig.data[2].y[0] == pytest.approx(50.0)
    assert len(figures.per_class(t["per_class"], t["trials"], []).data) == 0


def test_tau_curve(tables):
    _, t = tables
    fig = figures.tau_curve(t["tau_curve"], t["trials"], "t4")
    assert [tr.name for tr in fig.data] == ["validation", "test"]
    assert list(fig.data[0].x) == [0.0, 0.8, 3.0] and fig.data[0].line.shape == "hv"
    assert fig.layout.shapes[0].x0 == 0.8  # tau* marked


def test_virtual(tables):
    _, t = tables
    fig = figures.virtual(t["virtual"], "t6")
    assert len(fig.data) == 4 and fig.data[0].name == "label distribution"
    for tr in fig.data:
        assert sum(tr.y) == pytest.approx(1.0)
    assert fig.data[0].y[0] == pytest.approx(120 / sum(COUNTS))
    assert len(figures.virtual(t["virtual"], None).data) == 0


def test_search_figures_from_the_optuna_storage(tables):
    study, _ = tables
    figs = search_figures.search_figures(f"sqlite:///{study / 'optuna.db'}", "fx")
    assert set(figs) == {"history", "importance", "parallel"}
    assert len(figs["history"].data) >= 1 and len(figs["history"].data[0].y) == 6
