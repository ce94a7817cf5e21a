"""Which Ray a sweep uses: without --address a local Ray of its own (Ray's default would join a
cluster `ray start` left running on the machine), inside a Ray Job the job's cluster (its
RAY_ADDRESS), with --address that one. ray.init is stopped at its call; nothing starts."""

import pytest

from ltray.config import Experiment
from ltray.sweep import study


class _Called(Exception):
    pass


@pytest.mark.parametrize("address,ray_address,want", [(None, None, "local"), (None, "127.0.0.1:6379", None),
                                                      ("10.0.0.1:6379", None, "10.0.0.1:6379")])
def test_the_sweep_starts_its_own_ray_unless_told_where(monkeypatch, address, ray_address, want):
    seen = {}

    def init(**kwargs):
        seen.update(kwargs)
        raise _Called

    monkeypatch.setattr(study.ray, "init", init)
    if ray_address:
        monkeypatch.setenv("RAY_ADDRESS", ray_address)
    else:
        monkeypatch.delenv("RAY_ADDRESS", raising=False)
    with pytest.raises(_Called):
        study.launch(Experiment(), "/tmp/unused", address, "run", lambda: None)
    assert seen["address"] == want
