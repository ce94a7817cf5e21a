import math

import pytest

from fixtures_study import write_study
from ltray import results as R
from ltray.core.stats import mean_ci
from ltray.report import la_table, method_summary
from ltray.report.cli import main


def test_mean_ci_uses_the_t_quantile():
    s = mean_ci([0.5, 0.6, 0.7])
    assert s["n"] == 3 and s["mean"] == pytest.approx(0.6) and s["std"] == pytest.approx(0.1)
    assert s["ci95"] == pytest.approx(4.302653 * 0.1 / math.sqrt(3))  # Student t(0.975, 2)
    one = mean_ci([0.4, float("nan"), None])
    assert one["n"] == 1 and math.isnan(one["ci95"])
    assert mean_ci([])["n"] == 0


def test_tables_from_a_stored_study(tmp_path, capsys):
    study = write_study(tmp_path, with_optuna=False)
    trials = R.load_study(str(study))["trials"]
    rows = {r["method"]: r for r in method_summary(trials)}
    assert rows["ce"]["test_bal_acc"]["n"] == 3  # three seeds of one configuration
    assert rows["logit_adjusted"]["params"] == {"tau": 1.0}  # best on validation, not on test
    la = {r["row"]: r for r in la_table(trials)}
    assert la["ERM"]["mean"] == pytest.approx(0.5)
    assert "Equalised loss" not in la  # no equalization trial in this study
    assert main([str(study), "--table", "la"]) == 0 and "ERM" in capsys.readouterr().out
    assert main([str(study), "--table", "shifts"]) == 0 and "forw50" in capsys.readouterr().out
    assert main([str(tmp_path / "missing")]) == 2
