"""The dashboard under a large study: 2,000 trials (digits-lt shapes: 10 classes, 150 validation
and 400 test images, 30 epochs, 3 seeds per configuration) written as real Parquet files with
ltray's own row builders, and its optuna.db.

Measured through Dash's HTTP endpoint (the requests a browser sends), one fresh process per
code version:
- the overview callback cold (first request) and its response size, then a refresh with no new
  file (what every 5 s tick costs);
- the paired-comparison callback cold;
- peak memory (RSS) of the process;
- 20 concurrent overview requests right after a new trial file appeared (a running sweep).

    python benchmarks/dashboard_load.py [--trials 2000] [--before PATH]

``--before PATH``: also measure the ltray checkout at PATH (e.g. a ``git worktree`` of an older
commit) in the same run, and print the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def make_study(root: Path, n_trials: int) -> Path:
    """A study of ``n_trials`` trials under root/big (reused when it is there already)."""
    import numpy as np
    import optuna

    from ltray import results as R
    from ltray.results.rows import trial_tables

    study = root / "big"
    if (study / "done").exists():
        return study
    study.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    counts = np.array([115, 69, 41, 25, 15, 9, 5, 3, 2, 1]) * 1
    methods = ("ce", "balanced_softmax", "logit_adjusted", "lade", "ldam_drw")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    st = optuna.create_study(study_name="big", storage=f"sqlite:///{study / 'optuna.db'}", direction="maximize")
    hist = [{"epoch": e, "lr": 0.1, "train_loss": 1.0 / (e + 1), "val_bal_acc": 0.5, "val_many": 0.6, "val_medium": 0.5,
             "val_few": 0.4, "images_per_s": 1000.0, "epoch_s": 0.1} for e in range(30)]
    for i in range(n_trials):
        config, repeat = divmod(i, 3)
        method = methods[config % len(methods)]
        tau = float(rng.uniform(0.5, 2))
        meta = R.TrialMeta(study="big", trial_id=f"t{i:05d}", method=method, params={"tau": tau}, seed=repeat,
                           repeat=repeat, dataset="digits-lt", rho=100.0, model="cnn-small", num_workers=1,
                           subset_hash=f"h{repeat}")
        yv, yt = np.repeat(np.arange(10), 15), np.repeat(np.arange(10), 40)
        fv = rng.normal(0, 1, (yv.size, 10)).astype(np.float32) + 2 * np.eye(10, dtype=np.float32)[yv]
        ft = rng.normal(0, 1, (yt.size, 10)).astype(np.float32) + 2 * np.eye(10, dtype=np.float32)[yt]
        tabs = trial_tables(meta, balanced=False, tau_max=3.0, val_logits=fv, val_y=yv, test_logits=ft, test_y=yt,
                            train_counts=counts, history=hist, best_epoch=29, wall_s=10.0)
        for name in (*[t for t in tabs if t != "trials"], "trials"):
            R.write_table(str(study), name, meta.trial_id, R.table(name, tabs[name]))
        if repeat == 2:
            st.add_trial(optuna.trial.create_trial(
                params={"method": method, f"{method}.tau": tau},
                distributions={"method": optuna.distributions.CategoricalDistribution(methods),
                               f"{method}.tau": optuna.distributions.FloatDistribution(0.5, 2)},
                value=float(rng.uniform(0.4, 0.8))))
    (study / "experiment.json").write_text(json.dumps({"name": "big", "methods": list(methods)}))
    (study / "done").write_text("")
    return study


def measure(root: str, study: str) -> dict:
    """In this process (the code on sys.path): the numbers of the module docstring."""
    from dashboard.app import create_app

    app = create_app(root)
    client = app.server.test_client()
    out = {}
    overview = _callback(app, "trials.data")
    t0 = time.perf_counter()
    first = _post(client, overview, study, tick=1)
    out["overview_cold_s"] = time.perf_counter() - t0
    out["overview_bytes"] = len(first.data)
    t0 = time.perf_counter()
    again = _post(client, overview, study, tick=2, previous=first)
    out["refresh_nothing_new_s"] = time.perf_counter() - t0
    out["refresh_nothing_new_bytes"] = len(again.data)
    paired = _callback(app, "paired.data")
    t0 = time.perf_counter()
    _post(client, paired, study, tick=1)
    out["paired_cold_s"] = time.perf_counter() - t0
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out.update(_concurrent(app, overview, study, first))
    return out


def _concurrent(app, overview, study: str, first, n: int = 20) -> dict:
    """A new trial file appears, then ``n`` requests at once (a threaded server, as Dash runs)."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app.server, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    src = Path(app_root(app)) / study / "trials"
    files = sorted(src.glob("*.parquet"))
    (src / "zz-new.parquet").write_bytes(files[0].read_bytes())  # a new trial's row, as a sweep writes it
    try:
        import urllib.request

        url = f"http://127.0.0.1:{server.server_port}/_dash-update-component"
        times = []

        def one(i):
            body = json.dumps(_payload(overview, study, tick=10 + i, previous=first)).encode()
            t0 = time.perf_counter()
            req = urllib.request.Request(url, body, {"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=600) as r:
                r.read()
            times.append(time.perf_counter() - t0)

        workers = [threading.Thread(target=one, args=(i,)) for i in range(n)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        times.sort()
        return {"concurrent_median_s": times[len(times) // 2], "concurrent_max_s": times[-1]}
    finally:
        (src / "zz-new.parquet").unlink(missing_ok=True)  # an older dashboard may have moved it aside
        server.shutdown()


def app_root(app) -> str:
    return app._ltray_root if hasattr(app, "_ltray_root") else os.environ["LTRAY_BENCH_ROOT"]


def _callback(app, output: str) -> dict:
    """The callback whose outputs include ``output`` (e.g. "trials.data")."""
    for key, cb in app.callback_map.items():
        if output in key:
            return {"key": key, **cb}
    raise KeyError(output)


def _payload(cb: dict, study: str, tick: int, previous=None) -> dict:
    """What the browser posts: each input's and state's current value."""
    answered = previous.get_json()["response"] if previous is not None and previous.status_code == 200 else {}

    def value(dep):
        cid, prop = dep["id"], dep["property"]
        if (cid, prop) == ("current", "data"):
            return study
        if prop == "n_intervals":
            return tick
        return answered.get(cid, {}).get(prop)  # a store the last answer set (what the page holds)

    outputs = [{"id": o.split(".")[0], "property": o.split(".")[1]} for o in cb["key"].strip(".").split("...")]
    return {"output": cb["key"], "outputs": outputs,
            "inputs": [{**d, "value": value(d)} for d in cb["inputs"]],
            "state": [{**d, "value": value(d)} for d in cb.get("state", [])],
            "changedPropIds": ["tick.n_intervals"]}


def _post(client, cb: dict, study: str, tick: int, previous=None):
    r = client.post("/_dash-update-component", json=_payload(cb, study, tick, previous))
    assert r.status_code in (200, 204), (r.status_code, r.data[:500])
    return r


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trials", type=int, default=2000)
    p.add_argument("--root", default="/tmp/ltray-bench-dashboard")
    p.add_argument("--before", help="an older ltray checkout to measure in the same run")
    p.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args()
    root = Path(a.root) / f"n{a.trials}"
    if a.measure:
        os.environ["LTRAY_BENCH_ROOT"] = str(root)
        print(json.dumps(measure(str(root), "big")))
        return
    t0 = time.time()
    make_study(root, a.trials)
    print(f"study: {a.trials} trials under {root} ({time.time() - t0:.0f} s to make or find)", flush=True)
    runs = {"now": HERE.parent} | ({"before": Path(a.before).resolve()} if a.before else {})
    got = {}
    for label, code in runs.items():
        env = {**os.environ, "PYTHONPATH": str(code)}
        r = subprocess.run([sys.executable, __file__, "--measure", "--trials", str(a.trials), "--root", a.root],
                           capture_output=True, text=True, env=env, cwd=code)
        if r.returncode:
            sys.exit(f"{label}: {r.stderr[-3000:]}")
        got[label] = json.loads(r.stdout.strip().splitlines()[-1])
        print(f"{label} ({code}): " + ", ".join(f"{k} {v:.3g}" for k, v in got[label].items()), flush=True)
    if "before" in got:
        for k in got["now"]:
            b, n = got["before"][k], got["now"][k]
            print(f"  {k}: before {b:.3g}, now {n:.3g}" + (f" ({b / n:.1f}x)" if n else ""))


if __name__ == "__main__":
    main()
