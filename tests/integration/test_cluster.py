"""A real two-node Ray cluster on this machine: a head and a worker node whose private folder is a
tmpfs in its own mount namespace (so nothing is shared by accident), with results on a real
S3-protocol server. Needs root for ``unshare --mount`` (CI runs as root)."""

import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
import uuid

import pytest

from conftest import VENV_BIN, _wait, node_env, run_cli, start_head, stop
from ltray import results as R
from ltray.results import search_storage

pytestmark = pytest.mark.ray
TINY = ["train.epochs=2", "train.warmup_epochs=1", "methods=ce,balanced_softmax"]


def _alive_nodes(dashboard: str) -> list[str]:
    with urllib.request.urlopen(f"{dashboard}/api/v0/nodes?limit=100", timeout=10) as r:
        nodes = json.load(r)["data"]["result"]["result"]
    return [n["node_id"] for n in nodes if n["state"] == "ALIVE"]


@pytest.fixture(scope="module")
def two_nodes(s3, tmp_path_factory):
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.fail("the two-node test needs root and unshare (util-linux) for the worker's private mount")
    private = tmp_path_factory.mktemp("node2-private")  # a tmpfs of its own inside node 2's namespace
    temp = tempfile.mkdtemp(prefix="ltn", dir="/tmp")
    env = node_env(s3["env"])
    head_proc, head = start_head(temp, env, num_cpus=1)
    log = open(os.path.join(temp, "worker.log"), "w")
    worker = subprocess.Popen(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c",
         'mount -t tmpfs ltray-node2 "$1" && exec "$2" start --block --address="$3" --node-ip-address=127.0.0.1 '
         '--num-cpus=1 --num-gpus=0 --disable-usage-stats', "sh", str(private), str(VENV_BIN / "ray"), head["address"]],
        stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)

    class Ready:  # _wait's context manager: ready once both nodes are alive
        def __enter__(self):
            if len(_alive_nodes(head["dashboard"])) < 2:
                raise OSError("one node")

        def __exit__(self, *exc):
            return False

    try:
        _wait(Ready, worker, temp, "worker.log")
        yield {**head, "private": private, "nodes": set(_alive_nodes(head["dashboard"]))}
    finally:
        stop(worker)
        stop(head_proc)
        log.close()
        shutil.rmtree(temp, ignore_errors=True)


def test_a_study_on_two_nodes_lands_every_row_on_the_uri(two_nodes, s3):
    results = f"{s3['bucket']}/{uuid.uuid4().hex[:8]}/results"
    args = ["-m", "ltray.sweep", "experiments/quickstart.py", "--address", two_nodes["address"], "--results", results,
            "--name", "two", "--set", *TINY, "search.num_samples=2", "repeats=2", "resources.max_concurrent_trials=2"]
    t0 = time.time()
    r = run_cli(args, env=two_nodes["env"], timeout=900)
    wall = time.time() - t0
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-3000:]
    tabs = R.load_study(f"{results}/two")
    trials = tabs["trials"].to_pylist()
    assert len(trials) == 4 and {t["status"] for t in trials} == {"completed"}
    # the run ended: its working copy of the search went, and the --resume below starts from the study's copy
    assert not os.path.exists(os.path.dirname(search_storage.local_db(f"{results}/two")))
    # two configurations x two seeds, two at once on nodes of one CPU each: both nodes trained, and
    # every row reached the URI
    assert {t["node"] for t in trials} == two_nodes["nodes"]
    for name in ("epochs", "per_class", "tau_curve", "shifts", "logits"):
        assert set(tabs[name].column("trial_id").to_pylist()) == {t["trial_id"] for t in trials}, name
    print(f"\ntwo-node study: {wall:.0f} s wall, " + ", ".join(f"{k} {v.num_rows} rows" for k, v in tabs.items()))
    # the report reads the URI; a finished study resumes from it without training anything again
    rep = run_cli(["-m", "ltray.report", f"{results}/two"], env=two_nodes["env"], timeout=300)
    assert rep.returncode == 0 and "balanced_softmax" in rep.stdout, rep.stderr
    again = run_cli(args + ["--resume"], env=two_nodes["env"], timeout=900)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "search state: resuming from the copy" in again.stdout, again.stdout[-3000:]  # none was left here
    after = R.load_study(f"{results}/two", ("trials",))["trials"].to_pylist()
    assert sorted((t["trial_id"], t["finished_at"]) for t in after) == sorted((t["trial_id"], t["finished_at"]) for t in trials)


def test_a_local_results_folder_on_two_nodes_is_refused_before_any_trial(two_nodes):
    results = two_nodes["private"] / "results"
    r = run_cli(["-m", "ltray.sweep", "experiments/quickstart.py", "--address", two_nodes["address"],
                 "--results", str(results), "--name", "local", "--set", *TINY, "search.num_samples=2"],
                env=two_nodes["env"], timeout=600)
    assert r.returncode == 2, r.stdout[-3000:] + r.stderr[-3000:]
    err = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(err) == 1 and "not shared by every node" in err[0] and "s3://" in err[0], r.stderr
    node2 = [n for n in two_nodes["nodes"] if n[:12] in err[0]]
    assert len(node2) == 1  # the worker node is named, the head is not
    assert not (results / "local" / "trials").exists()
