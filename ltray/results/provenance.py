"""Where a row came from: the package versions and the ltray code that wrote it, and when."""

from __future__ import annotations

import functools
import hashlib
import json
import time
from pathlib import Path


def versions() -> str:
    import importlib.metadata as md

    out = {}
    for pkg in ("ltray", "torch", "ray", "optuna", "pyarrow", "numpy"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return json.dumps(out, sort_keys=True)


@functools.cache
def code_version() -> str:
    """Which ltray produced a row: ``<version>+git.<commit>[.dirty];src=<hash>``. The commit
    (with .dirty for uncommitted changes) when the package lives in a git checkout; the source
    hash (sha256 of every ltray .py file, 12 hex digits) always, so a copy without .git (a Ray
    Job's working_dir) is still identified."""
    import importlib.metadata as md
    import subprocess

    pkg = Path(__file__).resolve().parents[1]  # the ltray package
    h = hashlib.sha256()
    for f in sorted(pkg.rglob("*.py")):
        h.update(str(f.relative_to(pkg)).encode() + b"\0" + f.read_bytes() + b"\0")
    try:
        version = md.version("ltray")
    except md.PackageNotFoundError:
        version = "unknown"
    git = ""
    try:
        run = dict(cwd=pkg, capture_output=True, text=True, timeout=10)
        head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], **run)
        if head.returncode == 0:
            dirty = subprocess.run(["git", "status", "--porcelain", "--", "."], **run).stdout.strip()
            git = f"+git.{head.stdout.strip()}" + (".dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):  # no git on this node: the source hash still says which code
        pass
    return f"{version}{git};src={h.hexdigest()[:12]}"


def now() -> str:
    """The time a row is written, UTC, ISO 8601 to the second."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
