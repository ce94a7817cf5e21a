"""The page's comparisons, one trial's view and the study header, on the fixture study: the
paired numbers are ltray.report's, methods come best first, one seed says so, colours and units
are one vocabulary, trials go by what they are."""

import pyarrow as pa
import pytest

from dashboard import compare, style, trial_view
from dashboard.header import header_info, header_text
from ltray import results as R
from ltray.report import paired_table
from ltray.report.render import Diff


def test_paired_view_is_the_reports_numbers_best_first(dashboard_study):
    _, t = dashboard_study
    view = compare.paired_view(t)
    report = {r["row"]: r for r in paired_table(t)}
    assert [c["row"] for c in view["cells"]] == sorted(report, key=lambda k: -report[k]["bal_acc"]["mean"])
    for cell in view["cells"]:
        r = report[cell["row"]]
        assert cell["bal_acc"] == style.pct_ci(r["bal_acc"])
        if "vs_baseline" in r:  # every group's difference, the tail included, as the report prints it
            assert cell["vs few"] == Diff.of(r["vs_baseline"]["few"]).text()
            assert cell["vs bal_acc"] == Diff.of(r["vs_baseline"]["bal_acc"]).text()
        else:
            assert cell["vs bal_acc"] == "baseline"
    one_seed = next(c for c in view["cells"] if c["row"] == "dive")
    assert "1 seed: differences of these two trained models only" in one_seed["vs bal_acc"]
    assert "Holm-adjusted over 1 comparison" in view["caption"]


def test_paired_differences_figure_draws_each_group_with_its_interval(dashboard_study):
    _, t = dashboard_study
    view = compare.paired_view(t)
    fig = compare.paired_differences(view, "fx", train_counts=[120, 60, 30, 15, 8])
    names = [tr.name for tr in fig.data]
    assert names[0].startswith("overall") and any(n.startswith("few") for n in names)
    overall = fig.data[0]
    posthoc = next(d for d in view["diffs"] if d["row"] == "ce + post-hoc LA")
    i = list(overall.y).index("ce + post-hoc LA")
    assert overall.x[i] == pytest.approx(posthoc["bal_acc"]["diff"])
    assert overall.error_x.array[i] == pytest.approx(posthoc["bal_acc"]["hi"] - posthoc["bal_acc"]["diff"])
    assert overall.marker.color == style.SHOT_COLORS["bal_acc"] and fig.layout.title.text.startswith("fx: ")
    none = compare.paired_differences({"cells": [], "caption": "no completed 'ce' trials", "diffs": []}, "fx")
    assert none.layout.height == style.EMPTY_HEIGHT and "no completed 'ce'" in none.layout.annotations[0].text


def test_one_vocabulary_percent_and_colours():
    assert style.pct(0.8412) == "84.1%" and style.pct(float("nan")) == "" and style.pct(None) == ""
    assert style.pct_ci({"n": 3, "mean": 0.5, "ci95": 0.0123}) == "50.0% ± 1.2"
    assert style.pct_ci({"n": 1, "mean": 0.5, "ci95": float("nan")}) == "50.0%"
    assert style.method_color("lade") == style.method_color("lade") != style.method_color("ce")
    assert style.method_color("ce + post-hoc LA") == style.method_color("ce")
    from ltray.methods import method_names

    assert list(style.METHODS) == method_names()  # every registered method has its own colour, in every study
    assert len({style.method_color(m) for m in method_names()}) == len(method_names())
    assert style.shot_labels([150, 50, 10])["few"] == "few (<20 images: 1 class)"
    assert style.shot_labels()["few"] == "few (<20 images)"  # counts unknown: the rule only


def test_trials_go_by_what_they_are_and_open_with_their_card_and_curves(dashboard_study):
    path, t = dashboard_study
    row = next(r for r in t["trials"].to_pylist() if r["trial_id"] == "t4")
    assert trial_view.trial_label(row) == "logit_adjusted tau=1, seed 0 [t4]"
    card = dict(trial_view.trial_card(t["trials"], "t4"))
    assert card["method"] == "logit_adjusted" and card["knobs"] == "tau=1" and card["data subset"] == "abc"
    assert card["test balanced accuracy"] == "58.00%" and card["status"] == "completed"
    epochs = pa.table({"study": ["fx"] * 3, "trial_id": ["t4"] * 3, "epoch": [0, 1, 2],
                       "val_bal_acc": [0.4, 0.5, 0.6], "test_bal_acc": [float("nan")] * 3, "train_loss": [2.0, 1.5, 1.0]})
    info = trial_view.curves_info(epochs, t["trials"], ["t4", "t1"])
    assert len(info) == 1 and info[0]["epoch"] == [0, 1, 2] and info[0]["label"].startswith("logit_adjusted")
    fig = trial_view.curves(info, "fx")
    assert [tr.name for tr in fig.data] == ["logit_adjusted tau=1, seed 0 [t4]: validation",
                                            "logit_adjusted tau=1, seed 0 [t4]: loss"]  # no test tracked: none drawn
    assert list(fig.data[0].y) == [40.0, 50.0, 60.0]


def test_the_header_says_what_the_study_is(dashboard_study, tmp_path):
    path, t = dashboard_study
    (path / "experiment.json").write_text('{"data": {"name": "digits-lt", "rho": 100.0}, "model": {"name": '
                                          '"cnn-small"}, "train": {"epochs": 30}, "methods": ["ce", "dive"], '
                                          '"repeats": 3, "search": {"objectives": ["val_bal_acc"]}}')
    epoch = {"epoch": 0, "lr": 0.1, "train_loss": 1.0, "val_bal_acc": 0.5, "val_many": 0.5, "val_medium": 0.5,
             "val_few": 0.5, "images_per_s": 1.0, "epoch_s": 1.0,
             **dict.fromkeys(("test_bal_acc", "test_many", "test_medium", "test_few", "test_bal_acc_tau_oracle"),
                             float("nan"))}
    R.write_table(str(path), "epochs", "t99", R.table("epochs", {"study": ["fx"], "trial_id": ["t99"],
                                                                 **{k: [v] for k, v in epoch.items()}}))
    text = header_text(header_info(str(path), t["trials"]))
    assert text.startswith("digits-lt rho 100, cnn-small, 30 epochs, 2 methods (ce, dive), 3 seeds, "
                           "selected on val_bal_acc")
    assert "6 completed" in text and "1 cut off (--resume goes on)" in text  # no live run holds the study
    (path / "lease.json").write_text('{"renewed": 1e12}')
    assert "1 running" in header_text(header_info(str(path), t["trials"]))


def test_studies_side_by_side(dashboard_study):
    _, t = dashboard_study
    rows, studies = compare.studies_rows({"rho100": t["trials"], "again": t["trials"]})
    assert studies == ["rho100", "again"] and [r["method"] for r in rows] == ["ce", "dive", "logit_adjusted"]
    assert rows[0]["rho100"] == rows[0]["again"] and rows[0]["rho100"].startswith("50.0% ± ")
