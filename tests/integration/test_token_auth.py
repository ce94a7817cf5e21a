"""A cluster under Ray's token authentication (what `ray start --head` turns on by itself once a
token file exists): ``ltray.submit`` sends the token it finds where Ray's own clients look, and
without one says what to set, before anything is submitted. A real head with token auth on."""

import os
import secrets
import shutil
import tempfile

import pytest

from conftest import node_env, run_cli, start_head, stop
from ltray import results as R

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def token_head(s3):
    temp = tempfile.mkdtemp(prefix="ltk", dir="/tmp")  # short: Ray's socket paths have a length limit
    home = os.path.join(temp, "head-home")
    os.makedirs(home)
    token = secrets.token_hex(32)
    proc, head = start_head(temp, node_env(s3["env"], {"HOME": home, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}),
                            num_cpus=1)
    try:
        yield {**head, "token": token, "temp": temp}
    finally:
        stop(proc)
        shutil.rmtree(temp, ignore_errors=True)


def _client_env(tmp_path, **extra) -> dict:
    """A user's shell on another machine: its own HOME, Ray's defaults (no RAY_AUTH_MODE)."""
    home = tmp_path / "home"
    (home / ".ray").mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in node_env().items() if not k.startswith("RAY_AUTH")}
    return {**env, "HOME": str(home), **extra}


def _submit(token_head, tmp_path, env, *extra):
    return run_cli(["-m", "ltray.submit", "--address", token_head["dashboard"], "experiments/quickstart.py",
                    "--results", str(tmp_path / "results"), "--name", "tok", "--set", "methods=ce",
                    "search.num_samples=1", "train.epochs=2", "train.warmup_epochs=1", "resources.in_process=true",
                    *extra], env=env, timeout=900)


def test_without_a_token_the_submission_says_what_to_set(token_head, tmp_path):
    r = _submit(token_head, tmp_path, _client_env(tmp_path))
    assert r.returncode == 2, r.stdout + r.stderr
    assert "requires its authentication token" in r.stderr and "RAY_AUTH_TOKEN" in r.stderr
    assert "submitted job" not in r.stdout
    bad = _submit(token_head, tmp_path, _client_env(tmp_path, RAY_AUTH_TOKEN="0" * 64))
    assert bad.returncode == 2 and "cannot use the Ray job server" in bad.stderr, bad.stderr


def test_the_token_in_the_users_ray_folder_is_sent_and_the_job_runs(token_head, tmp_path):
    env = _client_env(tmp_path)
    (tmp_path / "home" / ".ray" / "auth_token").write_text(token_head["token"] + "\n")
    r = _submit(token_head, tmp_path, env)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-3000:]
    assert "SUCCEEDED" in r.stdout
    (trial,) = R.load_study(str(tmp_path / "results" / "tok"), ("trials",))["trials"].to_pylist()
    assert trial["status"] == "completed"
    nowait = _submit(token_head, tmp_path, {**env, "RAY_AUTH_TOKEN": token_head["token"]}, "--name", "tok2",
                     "--no-wait")
    assert nowait.returncode == 0 and "RAY_AUTH_MODE=token ray job logs" in nowait.stdout, nowait.stdout
