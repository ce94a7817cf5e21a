"""Every overview figure on small in-memory tables: the right traces with the right values, in
the page's vocabulary (percent, one colour per shot group and method, the study in the title)."""

import math

import pytest

from dashboard import compare, figures, search_figures, style
from fixtures_study import COUNTS


def test_trials_rows_and_best(dashboard_study):
    _, t = dashboard_study
    rows = figures.trials_rows(t["trials"])
    assert len(rows) == 6 and rows[3]["params"] == "tau=1" and rows[0]["val_bal_acc"] == 0.5
    assert rows[0]["id"] == rows[0]["trial_id"] == "t1"  # a click on the row names its trial
    assert "val_bal_acc" in figures.PERCENT_COLUMNS  # fractions stored, shown in % by the table's format
    best = {b["method"]: b for b in figures.best_per_method_info(t["trials"])}
    # selection on validation: tau=1 (val 0.60) beats tau=2 (val 0.55) although tau=2 tests higher
    assert best["logit_adjusted"]["params"] == {"tau": 1.0} and best["logit_adjusted"]["test_bal_acc"] == 0.58
    assert best["ce"]["n"] == 3 and best["ce"]["test_bal_acc"] == pytest.approx(0.50)


def test_shot_bars(dashboard_study):
    _, t = dashboard_study
    fig = figures.shot_bars(t["trials"], "fx", COUNTS)
    # each group says how many classes it holds (COUNTS: 120, 60, 30, 15, 8)
    assert [tr.name for tr in fig.data] == ["overall (balanced)", "many (>100 images: 1 class)",
                                            "medium (20-100 images: 2 classes)", "few (<20 images: 2 classes)"]
    assert [tr.marker.color for tr in fig.data] == [style.SHOT_COLORS[g] for g in ("bal_acc", "many", "medium", "few")]
    assert list(fig.data[0].x) == ["dive", "logit_adjusted", "ce"]  # best overall first
    assert fig.data[0].y[2] == pytest.approx(50.0)  # ce overall: mean of 48, 50, 52
    assert fig.data[1].y[2] == pytest.approx(70.0)
    assert fig.layout.title.text.startswith("fx: ") and fig.layout.uirevision == "fx"
    info = figures.shot_bars_info(t["trials"])
    assert info["repeats"] and info["ci95"]["bal_acc"][0] == pytest.approx(4.302653 * 0.02 / math.sqrt(3))  # t(0.975, 2)
    assert info["ci95"]["bal_acc"][2] is None  # one seed: no error bar
    assert fig.data[0].error_y.visible


def test_shifts_colour_by_method_dash_by_rule_with_a_summary(dashboard_study):
    _, t = dashboard_study
    info = compare.shifts_info(t)
    fig = compare.shifts(info, "fx")
    assert len(fig.data) == 3 * 3  # methods x (none, PC true, PC EM)
    first = fig.data[0]
    assert list(first.x) == compare.SHIFT_ORDER and first.x[0] == "forward50" and first.x[-1] == "backward50"
    assert first.name == "ce, no adjustment" and first.line.color == style.method_color("ce")
    pc = [tr for tr in fig.data if tr.name == "logit_adjusted, PC, true prior"][0]
    none = [tr for tr in fig.data if tr.name == "logit_adjusted, no adjustment"][0]
    assert pc.y[0] - none.y[0] == pytest.approx(5.0 + 2 * 1.0)  # +0.05 and two rows further in the fixture
    assert pc.line.color == none.line.color and pc.line.dash != none.line.dash
    assert fig.layout.legend.orientation == "h"  # the whole legend under the plot
    ce = [r for r in compare.shift_summary_rows(info) if r["method"] == "ce" and r["rule"] == "no adjustment"][0]
    assert ce["seeds"] == 3 and ce["mean over shifts"].endswith(tuple("0123456789")) and "%" in ce["mean over shifts"]


def test_per_class(dashboard_study):
    _, t = dashboard_study
    fig = figures.per_class(t["per_class"], t["trials"], ["t1", "t4"], study="fx")
    assert len(fig.data) == 6 and fig.layout.xaxis.type == "log"  # per trial: recall raw, post-hoc, precision
    assert list(fig.data[0].x) == COUNTS and fig.data[0].y[0] == pytest.approx(90.0)
    assert fig.data[1].name.endswith("post-hoc tau*") and fig.data[1].y[-1] == pytest.approx(40.0)
    assert fig.data[2].name.endswith("precision") and fig.data[2].y[0] == pytest.approx(50.0)
    assert fig.data[0].name.startswith("ce, seed 0 [t1]")  # trials named by what they are, then the id
    empty = figures.per_class(t["per_class"], t["trials"], [])
    assert len(empty.data) == 0 and empty.layout.height == style.EMPTY_HEIGHT  # one line, not a screen


def test_tau_curve(dashboard_study):
    _, t = dashboard_study
    fig = figures.tau_curve(t["tau_curve"], t["trials"], "t4")
    assert [tr.name for tr in fig.data] == ["validation", "test"]
    assert list(fig.data[0].x) == [0.0, 0.8, 3.0] and fig.data[0].line.shape == "hv"
    assert fig.layout.shapes[0].x0 == 0.8  # tau* marked


def test_virtual(dashboard_study):
    _, t = dashboard_study
    fig = figures.virtual(t["virtual"], "t6")
    assert len(fig.data) == 4 and fig.data[0].name == "label distribution"
    for tr in fig.data:
        assert sum(tr.y) == pytest.approx(100.0)
    assert fig.data[0].y[0] == pytest.approx(100 * 120 / sum(COUNTS))
    assert len(figures.virtual(t["virtual"], None).data) == 0


def test_search_figures_from_the_optuna_storage(dashboard_study):
    study, _ = dashboard_study
    figs = search_figures.search_figures(f"sqlite:///{study / 'optuna.db'}", "fx")
    assert set(figs) == {"history", "importance", "parallel"}
    assert len(figs["history"].data) >= 1 and len(figs["history"].data[0].y) == 6
