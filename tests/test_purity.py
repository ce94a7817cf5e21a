import subprocess
import sys


def test_core_and_methods_import_no_ray_optuna_dash():
    code = ("import sys, ltray.core.losses, ltray.core.posthoc, ltray.core.metrics, ltray.core.longtail, ltray.methods, "
            "ltray.train; bad = [m for m in ('ray', 'optuna', 'dash') if m in sys.modules]; print(bad); sys.exit(bool(bad))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_the_command_line_checks_an_experiment_without_ray_or_trackers():
    """``prepare`` validates before Ray starts: the CLI and the logger builders (Ray, mlflow and
    wandb only inside their functions) import none of them."""
    code = ("import sys, ltray.cli, ltray.loggers; bad = [m for m in ('ray', 'optuna', 'mlflow', 'wandb') "
            "if m in sys.modules]; print(bad); sys.exit(bool(bad))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
