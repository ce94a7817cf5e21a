import subprocess
import sys


def test_core_and_methods_import_no_ray_optuna_dash():
    code = ("import sys, ltray.core.losses, ltray.core.posthoc, ltray.core.metrics, ltray.core.longtail, ltray.methods, "
            "ltray.train; bad = [m for m in ('ray', 'optuna', 'dash') if m in sys.modules]; print(bad); sys.exit(bool(bad))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
