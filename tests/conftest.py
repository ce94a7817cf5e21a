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


def _free_ports(n: int) -> list[int]:
    """n distinct free ports: all held open at once while they are picked (one at a time, the OS
    can hand the same port out twice, and Ray refuses a port given to two of its components)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _free_port() -> int:
    return _free_ports(1)[0]


@pytest.fixture(scope="session")
def s3():
    """A real S3-protocol server (moto's server mode) on 127.0.0.1 and one bucket in it. Every
    process reaches it as AWS tools do: AWS_ENDPOINT_URL_S3 and credential variables in ``env``."""
    port = _free_port()
    temp = tempfile.mkdtemp(prefix="ltray-s3-")
    log = open(os.path.join(temp, "moto.log"), "w")
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    env = {"AWS_ENDPOINT_URL_S3": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "ltray-test",
           "AWS_SECRET_ACCESS_KEY": "ltray-test", "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}
    _wait(lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/moto-api/", timeout=2), proc, temp, "moto.log")
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # this process (load_study in the tests) reads the bucket too
    import pyarrow.fs as pafs

    fs, _ = pafs.FileSystem.from_uri("s3://ltray-test?allow_bucket_creation=true")
    fs.create_dir("ltray-test")
    try:
        yield {"bucket": "s3://ltray-test", "env": env}
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        log.close()
        shutil.rmtree(temp, ignore_errors=True)


def _wait(ready, proc, temp: str, log: str, timeout_s: float = 180) -> None:
    deadline = time.time() + timeout_s
    while True:
        try:
            with ready():
                return
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)
                pytest.fail(f"{log} did not start: " + open(os.path.join(temp, log)).read()[-3000:])
            time.sleep(1)


def start_head(temp: str, env: dict, num_cpus: int = 2, extra: tuple = ()) -> tuple[subprocess.Popen, dict]:
    """``ray start --head --block`` on 127.0.0.1 with free ports, in its own process group."""
    port, dash, agent, client = _free_ports(4)
    log = open(os.path.join(temp, "head.log"), "w")
    proc = subprocess.Popen(
        [str(VENV_BIN / "ray"), "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={port}",
         "--dashboard-host=127.0.0.1", f"--dashboard-port={dash}", f"--num-cpus={num_cpus}", "--num-gpus=0",
         # its own job agent and client ports: the defaults (52365, 10001) are taken when another
         # Ray runs on this host, and job submission then fails with "No available agent"
         f"--dashboard-agent-listen-port={agent}", f"--ray-client-server-port={client}",
         f"--temp-dir={temp}", "--disable-usage-stats", *extra],
        stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{dash}"
    token = env.get("RAY_AUTH_TOKEN") if env.get("RAY_AUTH_MODE") == "token" else None  # a head with token auth on
    ready = urllib.request.Request(f"{url}/api/version", headers={"Authorization": f"Bearer {token}"} if token else {})
    _wait(lambda: urllib.request.urlopen(ready, timeout=2), proc, temp, "head.log")
    return proc, {"address": f"127.0.0.1:{port}", "dashboard": url, "env": env}


def stop(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


def node_env(*extra: dict) -> dict:
    """The environment of Ray nodes and CLIs: this venv's python first on PATH (the head runs job
    entrypoints with the python found there), no Ray token file under HOME."""
    return {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}", "RAY_AUTH_MODE": "disabled",
            **{k: v for e in extra for k, v in e.items()}}


@pytest.fixture(scope="session")
def ray_head(s3):
    """The session's Ray head (2 CPUs); its workers reach the test S3 server."""
    temp = tempfile.mkdtemp(prefix="ltr", dir="/tmp")  # short: Ray's socket paths have a length limit
    proc, head = start_head(temp, node_env(s3["env"]))
    try:
        yield head
    finally:
        stop(proc)
        # children that left the group (none expected) would keep temp files busy; remove what we can
        shutil.rmtree(temp, ignore_errors=True)


def run_cli(args: list[str], env: dict | None = None, timeout: int = 600, **kw) -> subprocess.CompletedProcess:
    """Run ``python -m ...`` from the project root with this interpreter."""
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                          env=env or {**os.environ}, timeout=timeout, **kw)


@pytest.fixture(scope="module")
def dashboard_study(tmp_path_factory):
    """The fixture study (one per test module: some tests add files to it): (its folder, every table)."""
    from fixtures_study import write_study
    from ltray import results as R

    study = write_study(tmp_path_factory.mktemp("r"))
    return study, R.load_study(str(study))
