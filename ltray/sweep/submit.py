"""Submit a sweep to a Ray cluster as a Ray Job, with this project as its working_dir.

    python -m ltray.submit --address http://HOST:8265 experiments/dive.py [sweep args] [--no-wait]

The experiment is validated here first (data paths are checked on the cluster). A cluster with
Ray's token authentication on (a head started where a token exists, as Ray does by default once
a local ``ray.init`` wrote ``~/.ray/auth_token``) gets its token sent: from ``RAY_AUTH_TOKEN``,
the file ``RAY_AUTH_TOKEN_PATH`` names, or ``~/.ray/auth_token``. The cluster's
Python environment must have ltray's dependencies (``pip install -e .`` there, or a
runtime_env); results go to ``--results``, which must be a path the cluster can write (a shared
filesystem) or a pyarrow URI; a relative path is made absolute here.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import urllib.error
import urllib.request
import sys
import time
from pathlib import Path

import ltray
from ltray.errors import LtrayError
from ltray.config import apply_overrides, load_experiment, validate

PROJECT = Path(ltray.__file__).resolve().parent.parent
# gitignore patterns, as Ray reads them: a leading "/" anchors one at the project's top (a bare
# "results" would also drop the package ltray/results/, and the job would import whatever ltray
# the cluster happens to have installed)
EXCLUDES = ["/.git", "/.venv", "/venv", "/results", "/data", "__pycache__", ".pytest_cache", ".hypothesis",
            "*.egg-info", "docs/*.png"]


def build_entrypoint(experiment: str, sweep_args: list[str]) -> tuple[str, str]:
    """The job's command line and the experiment path relative to the project."""
    exp_path = Path(experiment).resolve()
    try:
        rel = exp_path.relative_to(PROJECT)
    except ValueError:
        raise LtrayError(f"{experiment} is outside the project folder {PROJECT}, which is what the job uploads; "
                         "put the experiment file under experiments/") from None
    args = list(sweep_args)
    if "--results" in args:
        i = args.index("--results")
        if i + 1 >= len(args):
            raise LtrayError("--results needs a value")
        if "://" not in args[i + 1]:
            args[i + 1] = str(Path(args[i + 1]).resolve())
    else:
        args += ["--results", str((Path.cwd() / "results").resolve())]
    return shlex.join(["python", "-m", "ltray.sweep", str(rel), *args]), str(rel)


# A head whose job agent is still starting (or busy) answers "No available agent to submit job,
# please try again later" (HTTP 500): seen here on a loaded 2-core machine. Retry that one answer
# for up to a minute; anything else is an error at once.
AGENT_WAIT_S = 60.0


def _submit(client, entrypoint: str, wait_s: float = AGENT_WAIT_S) -> str:
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return client.submit_job(entrypoint=entrypoint,
                                     runtime_env={"working_dir": str(PROJECT), "excludes": EXCLUDES})
        except RuntimeError as e:
            if "No available agent" not in str(e) or time.monotonic() > deadline:
                raise LtrayError(f"the Ray job server refused the job: {e}") from e
            time.sleep(2.0)


def auth_mode(url: str) -> str:
    """"token" when the job server wants a token, else "disabled" (also for a Ray too old to
    say: it has no token authentication). Ray serves the answer without authentication."""
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/api/authentication_mode", timeout=10) as r:
            return json.loads(r.read().decode()).get("authentication_mode", "disabled")
    except urllib.error.HTTPError as e:
        if e.code == 404:
            return "disabled"
        raise LtrayError(f"cannot reach the Ray job server at {url}: HTTP {e.code} {e.reason}") from None
    except (OSError, ValueError) as e:
        raise LtrayError(f"cannot reach the Ray job server at {url}: {e}") from None


def find_token() -> str:
    """The token Ray's own clients would use: $RAY_AUTH_TOKEN, the file $RAY_AUTH_TOKEN_PATH, or
    ~/.ray/auth_token (its first line); "" when there is none."""
    if os.environ.get("RAY_AUTH_TOKEN", "").strip():
        return os.environ["RAY_AUTH_TOKEN"].strip()
    path = os.environ.get("RAY_AUTH_TOKEN_PATH") or os.path.join(os.path.expanduser("~"), ".ray", "auth_token")
    try:
        with open(path, encoding="utf-8") as f:
            return f.readline().strip()
    except OSError:
        if os.environ.get("RAY_AUTH_TOKEN_PATH"):
            raise LtrayError(f"RAY_AUTH_TOKEN_PATH names {path}, which cannot be read") from None
        return ""


def connect(address: str):
    """A job client of the cluster's job server, and whether it sends a token (it does when the
    cluster wants one)."""
    from ray.job_submission import JobSubmissionClient

    url = address if "://" in address else f"http://{address}"
    headers = {}
    if auth_mode(url) == "token":
        token = find_token()
        if not token:
            raise LtrayError(f"the Ray cluster at {address} requires its authentication token and none was found "
                             "here: set RAY_AUTH_TOKEN to it (on the head, `ray get-auth-token` prints it) or "
                             "RAY_AUTH_TOKEN_PATH to a file holding it, or copy it to ~/.ray/auth_token")
        headers = {"Authorization": f"Bearer {token}"}
    try:
        return JobSubmissionClient(url, headers=headers), bool(headers)
    except Exception as e:  # refused token, job server not up yet
        raise LtrayError(f"cannot use the Ray job server at {address}: {str(e).splitlines()[0]}") from e


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ltray.submit", description=__doc__.split("\n\n")[0],
                                usage="%(prog)s --address URL experiment.py [sweep args] [--no-wait]")
    p.add_argument("--address", required=True, help="the cluster's job server, e.g. http://HOST:8265")
    p.add_argument("--no-wait", action="store_true", help="print the job id and return at once")
    p.add_argument("experiment")
    a, sweep_args = p.parse_known_args(argv)
    try:
        overrides, it = [], iter(range(len(sweep_args)))
        for i in it:  # collect --set values to validate the experiment as the job will see it
            if sweep_args[i] == "--set":
                j = i + 1
                while j < len(sweep_args) and not sweep_args[j].startswith("--"):
                    overrides.append(sweep_args[j])
                    j += 1
        if "--address" in sweep_args:
            raise LtrayError("--address is the job server here; the job connects to its own cluster")
        exp = apply_overrides(load_experiment(a.experiment), overrides)
        validate(exp, None, local_data=False)
        entrypoint, _ = build_entrypoint(a.experiment, sweep_args)
        client, with_token = connect(a.address)
        job_id = _submit(client, entrypoint)
    except LtrayError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"submitted job {job_id}: {entrypoint}", flush=True)
    if a.no_wait:
        auth = "RAY_AUTH_MODE=token " if with_token else ""  # Ray's CLI sends its token only in token mode
        print(f"follow it: {auth}ray job logs --address {a.address} --follow {job_id}")
        return 0

    async def follow():
        async for lines in client.tail_job_logs(job_id):
            print(lines, end="", flush=True)

    asyncio.run(follow())
    for _ in range(60):  # the log stream can end a moment before the status settles
        status = client.get_job_status(job_id)
        if status.is_terminal():
            break
        time.sleep(1)
    print(f"job {job_id}: {status}")
    return 0 if str(status) == "SUCCEEDED" else 1


if __name__ == "__main__":
    sys.exit(main())
