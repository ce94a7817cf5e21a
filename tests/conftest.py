"""Shared fixtures. One real Ray head node per pytest run (``ray start --head`` on 127.0.0.1 in
its own process group, ended by pid); sweeps and jobs connect to it with --address."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # no token file under the user's HOME
ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def ray_head():
    temp = tempfile.mkdtemp(prefix="ltr", dir="/tmp")  # short: Ray's socket paths have a length limit
    port, dash = _free_port(), _free_port()
    # the head runs job entrypoints with the python found on its PATH: this environment's
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}", "RAY_AUTH_MODE": "disabled"}
    log = open(os.path.join(temp, "head.log"), "w")
    proc = subprocess.Popen(
        [str(VENV_BIN / "ray"), "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={port}",
         "--dashboard-host=127.0.0.1", f"--dashboard-port={dash}", "--num-cpus=2", "--num-gpus=0",
         # its own job agent port: the default (52365) is taken when another Ray runs on this host,
         # and job submission then fails with "No available agent"
         f"--dashboard-agent-listen-port={_free_port()}", f"--ray-client-server-port={_free_port()}",
         f"--temp-dir={temp}", "--disable-usage-stats"],
        stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{dash}"
    deadline = time.time() + 180
    while True:
        try:
            with urllib.request.urlopen(f"{url}/api/version", timeout=2):
                break
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                os.killpg(proc.pid, signal.SIGKILL)
                pytest.fail("ray head did not start: " + open(os.path.join(temp, "head.log")).read()[-3000:])
            time.sleep(1)
    try:
        yield {"address": f"127.0.0.1:{port}", "dashboard": url, "env": env}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        # children that left the group (none expected) would keep temp files busy; remove what we can
        shutil.rmtree(temp, ignore_errors=True)
        log.close()


def run_cli(args: list[str], env: dict | None = None, timeout: int = 600, **kw) -> subprocess.CompletedProcess:
    """Run ``python -m ...`` from the project root with this interpreter."""
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                          env=env or {**os.environ}, timeout=timeout, **kw)
