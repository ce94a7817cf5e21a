"""The dashboard through Dash's own HTTP endpoint (the requests a browser posts): a damaged
optuna.db costs the search figures only, a refresh with nothing new sends nothing, and requests
that arrive together share one read of the study."""

import threading
import time

import pytest

from dashboard import studies
from dashboard.app import create_app
from fixtures_study import TRIALS, trial_row, write_study
from ltray import results as R


def _callback(app, output: str) -> dict:
    return next({"key": k, **cb} for k, cb in app.callback_map.items() if output in k)


def _post(client, cb: dict, study: str, tick: int, seen=None):
    def value(dep):
        if (dep["id"], dep["property"]) == ("current", "data"):
            return study
        if dep["id"] == "search-study":
            return None  # the first of the study's Optuna studies
        return tick if dep["property"] == "n_intervals" else seen

    body = {"output": cb["key"], "outputs": [{"id": o.split(".")[0], "property": o.split(".")[1]}
                                             for o in cb["key"].strip(".").split("...")],
            "inputs": [{**d, "value": value(d)} for d in cb["inputs"]],
            "state": [{**d, "value": value(d)} for d in cb.get("state", [])], "changedPropIds": ["tick.n_intervals"]}
    return client.post("/_dash-update-component", json=body)


@pytest.fixture()
def app(tmp_path):
    write_study(tmp_path / "results")
    studies._cache.clear()
    studies._made.clear()
    return create_app(tmp_path / "results")


@pytest.mark.parametrize("damage", [b"random bytes, not a database" * 40, b"", "truncated"])
def test_a_damaged_optuna_db_costs_the_search_figures_only(app, tmp_path, damage):
    db = tmp_path / "results" / "fx" / "optuna.db"
    db.write_bytes(db.read_bytes()[:4096] if damage == "truncated" else damage)
    r = _post(app.server.test_client(), _callback(app, "trials.data"), "fx", 1)
    assert r.status_code == 200
    out = r.get_json()["response"]
    assert len(out["trials"]["data"]) == len(TRIALS)  # every Parquet table is still shown
    assert out["shots"]["figure"]["data"]
    assert "search state cannot be read" in str(out["best"]["children"]) and "cannot be read" in str(out["best"]["children"])


def test_a_refresh_with_nothing_new_sends_nothing(app, tmp_path):
    client, cb = app.server.test_client(), _callback(app, "trials.data")
    first = _post(client, cb, "fx", 1)
    seen = first.get_json()["response"]["overview-seen"]["data"]
    again = _post(client, cb, "fx", 2, seen)
    assert again.status_code == 204 and again.data == b""  # Dash's "no update": nothing sent
    R.write_table(str(tmp_path / "results" / "fx"), "trials", "t9",
                  R.table("trials", trial_row("t9", "ce", {}, 3, 0.6, 0.55)))  # a sweep writes a new row
    new = _post(client, cb, "fx", 3, seen)
    assert new.status_code == 200 and len(new.get_json()["response"]["trials"]["data"]) == len(TRIALS) + 1


def test_requests_that_arrive_together_share_one_read(tmp_path, monkeypatch):
    path = str(write_study(tmp_path / "results"))
    studies._cache.clear()
    reads, real = [], R.read_study

    def slow_read(*args, **kwargs):
        reads.append(args)
        time.sleep(0.3)  # a large study: every waiting request would read it again
        return real(*args, **kwargs)

    monkeypatch.setattr(R, "read_study", slow_read)
    got = []
    threads = [threading.Thread(target=lambda: got.append(studies.load(path, ("trials",)))) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(reads) == 1 and len(got) == 10 and all(g[0]["trials"].num_rows == len(TRIALS) for g in got)
