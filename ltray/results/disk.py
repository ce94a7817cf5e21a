"""The results disk: free space, a full disk recognised in any error, and whether results can be
written at all. A full disk stops a study with one error and loses nothing: the trials it cut
off get no result and run again on --resume."""

from __future__ import annotations

import errno
import os
import shutil

from ltray.errors import LtrayError
from ltray.results.storage import is_uri, open_store


class ResultsFull(RuntimeError):
    """The results disk is (nearly) full: the trial did not finish and is not recorded as failed,
    so ``--resume`` runs it again once there is space."""


FULL = "results disk full"  # in every ResultsFull message: the driver finds it in Tune's errors


def free_mb(path: str) -> float:
    """Free space (MiB) on the disk holding path; unbounded for an object store (a URI)."""
    store = open_store(path)
    if not store.local:
        return float("inf")
    return shutil.disk_usage(store.root).free / 2**20


def check_space(study_dir: str, min_free_mb: float) -> None:
    free = free_mb(study_dir)
    if free < min_free_mb:
        raise ResultsFull(f"{FULL}: {free:.0f} MiB free under {study_dir}, below resources.min_free_mb={min_free_mb:g}")


def disk_full(e: BaseException | None) -> bool:
    """ENOSPC/EDQUOT anywhere in the chain, or in a remote error's text (Ray wraps worker errors)."""
    seen = 0
    while e is not None and seen < 20:
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if FULL in str(e) or "No space left on device" in str(e) or "Disk quota exceeded" in str(e):
            return True
        e, seen = e.__cause__ or e.__context__, seen + 1
    return False


def check_writable(results: str, min_free_mb: float = 0.0) -> None:
    """Fail before Ray starts if results cannot be written there (read-only, no space, a file; on
    a URI: no such bucket, no credentials)."""
    if is_uri(results):
        store, probe = open_store(results), f".ltray-write-probe-{os.getpid()}"
        try:
            store.write_bytes(b"\0", probe)
            store.remove(probe)
        except OSError as e:
            raise LtrayError(f"cannot write results under {results}: {e}. Check the bucket exists and this machine "
                             "(and every node) has credentials for it (AWS_* variables for S3; AWS_ENDPOINT_URL_S3 "
                             "for an S3-compatible server)") from None
        return
    probe = os.path.join(results, f".ltray-write-probe-{os.getpid()}")
    try:
        os.makedirs(results, exist_ok=True)
        with open(probe, "wb") as f:
            f.write(b"\0" * 4096)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        raise LtrayError(f"cannot write results under {results}: {e.strerror or e}. Fix the folder (permissions, "
                         "free space) or pass --results elsewhere; a study stopped this way resumes with --resume") from None
    finally:
        try:
            os.remove(probe)
        except OSError:
            pass
    try:
        check_space(results, min_free_mb)
    except ResultsFull as e:
        raise LtrayError(f"{e}. Free space or pass --results elsewhere; a study stopped this way resumes with "
                         "--resume") from None
