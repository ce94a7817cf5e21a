"""What Ray costs: N trials through ltray.sweep against the same N fit calls in a plain loop
(digits-lt, cnn-small, CE at its defaults, one seed per trial), and trials/hour when 1, 2 or 4
single-worker trials share the machine, each trial a Ray Train run or in-process.

    python benchmarks/sweep_overhead.py [--trials 8] [--epochs 700] [--concurrent 1 2 4]
        [--modes train in_process]

Prints the plain loop's wall time, each sweep's wall time (Ray's start included), the ratio
(goal <= 1.15 for 30 s trials), trials/hour, and, for one trial at a time, the per-trial
start-up cost: (sweep wall - plain loop wall) / trials.
The CPUs are split evenly between the trials at once, as the plain loop has them all.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

from ltray import results as R
from ltray.config import Recipe
from ltray.datasets import DataConfig, load_data
from ltray.train import fit

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--trials", type=int, default=8)
    p.add_argument("--epochs", type=int, default=700, help="700 epochs of digits-lt: about 30 s a trial here")
    p.add_argument("--concurrent", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--modes", nargs="+", default=["train", "in_process"], choices=["train", "in_process"])
    a = p.parse_args()
    recipe = Recipe(epochs=a.epochs, batch_size=128, lr=0.1, warmup_epochs=5, weight_decay=5e-4)
    data = load_data(DataConfig(name="digits-lt", rho=100))
    t0 = time.time()
    for seed in range(a.trials):
        fit(data, "ce", model="cnn-small", recipe=recipe, seed=seed)
    loop = time.time() - t0
    print(f"plain loop: {a.trials} fit calls of {a.epochs} epochs: {loop:.0f} s ({loop / a.trials:.1f} s a trial)",
          flush=True)
    for mode in a.modes:
        for k in a.concurrent:
            run_sweep(a, mode, k, loop)


def run_sweep(a, mode: str, k: int, loop: float) -> None:
    with tempfile.TemporaryDirectory() as results:
        sets = ["methods=ce", "search.num_samples=1", f"repeats={a.trials}", f"train.epochs={a.epochs}",
                f"resources.max_concurrent_trials={k}", f"resources.cpus_per_worker={(os.cpu_count() or 1) / k:g}",
                f"resources.in_process={mode == 'in_process'}"]
        t0 = time.time()
        r = subprocess.run([sys.executable, "-m", "ltray.sweep", "experiments/quickstart.py", "--results", results,
                            "--name", "overhead", "--set", *sets], cwd=ROOT, capture_output=True, text=True,
                           env={**os.environ, "RAY_AUTH_MODE": "disabled"})
        wall = time.time() - t0
        if r.returncode != 0:
            print(r.stdout[-2000:], r.stderr[-2000:])
            return
        done = R.load_study(os.path.join(results, "overhead"), ("trials",))["trials"].num_rows
        # one at a time, whatever a trial takes beyond its plain-loop time is Ray's start-up and
        # reporting; with several at once the trials also share the CPUs, so no such split
        startup = f", ~{(wall - loop) / a.trials:.1f} s of start-up per trial" if k == 1 else ""
        print(f"sweep ({mode}), {k} at once: {wall:.0f} s for {done} trials, ratio to the plain loop {wall / loop:.2f}, "
              f"{a.trials / wall * 3600:.0f} trials/hour{startup}", flush=True)

if __name__ == "__main__":
    main()
