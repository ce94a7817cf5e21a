"""Budget curves: the best-so-far curve ends at the summary's selection (one definition), the
expected best of n random configurations matches a Monte Carlo of the procedure it stands for,
and the report and the dashboard show the same numbers."""

import numpy as np
import pyarrow as pa
import pytest

from dashboard import compare
from fixtures_study import trial_row
from ltray import results as R
from ltray.core.stats import best_of_draws
from ltray.report import budget_curves, method_summary
from ltray.report.layouts import budget_report
from ltray.report.render import text_lines

RNG = np.random.default_rng(7)


def _trials(per_method: dict[str, int], seeds: int = 3, ties: bool = False, statuses: dict | None = None) -> pa.Table:
    """Per method, configurations 0 .. N-1 (knob ``k`` = index), each on ``seeds`` seeds."""
    rows = []
    for method, n in per_method.items():
        for i in range(n):
            val = 0.6 if ties and i in (1, 3) else float(RNG.uniform(0.4, 0.8))
            for s in range(seeds):
                tid = f"{method}-{i}-{s}"
                status = (statuses or {}).get((method, i), "completed")
                row = trial_row(tid, method, {"k": float(i)} if i else {}, s, val + 0.01 * s,
                                float(RNG.uniform(0.4, 0.8)), status=status)
                row.update(config_index=[i])
                rows.append(R.table("trials", row))
    return pa.concat_tables(rows)


@pytest.mark.parametrize("ties", [False, True])
def test_the_last_budget_is_the_summary_selection(ties):
    t = _trials({"ce": 1, "la": 6, "lade": 4}, ties=ties, statuses={("la", 2): "failed", ("lade", 0): "stopped"})
    summary = {m["method"]: m for m in method_summary(t)}
    for c in budget_curves(t):
        last = c["points"][-1]
        assert last["trial_ids"] == summary[c["method"]]["trial_ids"]
        assert last["val"] == summary[c["method"]]["val_bal_acc"] and last["test"] == summary[c["method"]]["test_bal_acc"]
    curves = {c["method"]: c for c in budget_curves(t)}
    assert curves["la"]["configurations"] == 6  # the failed configuration counts against the budget
    assert np.isnan(curves["lade"]["points"][0]["val"]["mean"])  # its defaults were stopped: nothing to select
    vals = [p["val"]["mean"] for p in curves["la"]["points"]]
    assert vals == sorted(vals)  # best so far never falls


def test_budget_one_is_the_published_defaults():
    t = _trials({"la": 5})
    first = budget_curves(t)[0]["points"][0]
    assert first["params"] == {} and first["trial_ids"] == ["la-0-0", "la-0-1", "la-0-2"]


def test_best_of_draws_matches_a_monte_carlo():
    keys = [(0.5, 0), (0.7, -1), (0.7, -2), (0.2, -3), (0.9, -4)]  # a tie: the earlier (higher second key) wins
    for k in (1, 2, 5):
        draws = RNG.integers(0, len(keys), size=(200_000, k))
        winner = np.array([max(row, key=lambda i: keys[i]) for row in draws[:20_000]])
        freq = np.bincount(winner, minlength=len(keys)) / len(winner)
        assert np.allclose(best_of_draws(keys, k), freq, atol=0.012)
        assert best_of_draws(keys, k).sum() == pytest.approx(1.0)


def test_the_expected_best_of_random_configurations_matches_a_monte_carlo_of_the_search():
    t = _trials({"la": 6}, seeds=2)
    rows = [r for r in t.to_pylist()]
    per_config = {}
    for r in rows:
        per_config.setdefault(r["config_index"], []).append(r)
    val = {i: np.mean([r["val_bal_acc"] for r in rs]) for i, rs in per_config.items()}
    test = {i: np.mean([r["test_bal_acc"] for r in rs]) for i, rs in per_config.items()}
    curve = budget_curves(t, sampler="random")[0]
    assert curve["estimate"] == "expected best"
    for point in curve["points"]:
        n = point["n"]
        picks = RNG.integers(1, 6, size=(40_000, n - 1))  # the defaults, then n - 1 draws from the rest
        chosen = [max([0, *row], key=lambda i: (val[i], -i)) for row in picks]
        assert point["val"]["mean"] == pytest.approx(np.mean([val[i] for i in chosen]), abs=0.003)
        assert point["test"]["mean"] == pytest.approx(np.mean([test[i] for i in chosen]), abs=0.003)
    assert curve["points"][0]["val"]["mean"] == pytest.approx(val[0])


def test_a_study_without_configuration_order_says_so_and_the_dashboard_shows_the_same_numbers():
    old = _trials({"ce": 2}).drop(["config_index"])
    old = old.append_column("config_index", pa.nulls(old.num_rows, pa.int64()))
    assert "before ltray 0.3" in budget_curves(old)[0]["note"]
    t = _trials({"ce": 1, "la": 3})
    info = compare.budget_info(t, {"sampler": "tpe"})
    for c, line in zip(budget_curves(t), info["lines"]):
        assert line["test"] == [p["test"]["mean"] * 100 for p in c["points"]]
    text = "\n".join(text_lines(budget_report(t, {"per_method": 3})[1]))
    assert "fewer distinct configurations than search.per_method=3" in text and "ce 1" in text


def test_report_budget_selects_among_the_first_n_configurations_only(tmp_path, capsys):
    from ltray.report.cli import main

    t = _trials({"ce": 1, "la": 4})
    for r in t.to_pylist():
        R.write_table(str(tmp_path / "fx"), "trials", r["trial_id"], R.table("trials", {k: [v] for k, v in r.items()}))
    curves = {c["method"]: c for c in budget_curves(t)}
    for budget in (1, 2, 4):
        assert main([str(tmp_path / "fx"), "--budget", str(budget)]) == 0
        line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("la "))
        test = curves["la"]["points"][budget - 1]["test"]["mean"] * 100
        assert line.split()[5] == f"{test:.2f}", line  # la, val, +-, ci, (n=3), test
    assert main([str(tmp_path / "fx"), "--budget", "-1"]) == 2
