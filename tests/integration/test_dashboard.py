"""The dashboard in a real headless Chromium (Debian's chromium, driven by Playwright)."""

import os
import shutil
import subprocess
import sys
import time
import urllib.request

import pytest

from conftest import ROOT, _free_port
from dashboard.studies import StudyRefused, resolve
from fixtures_study import write_study

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.browser
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-quic"]


@pytest.fixture
def server(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "dashboard", "--results", str(results), "--port", str(port)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    for _ in range(120):
        try:
            urllib.request.urlopen(url, timeout=1)
            break
        except OSError:
            assert proc.poll() is None, proc.stdout.read()
            time.sleep(0.5)
    yield url, results
    proc.terminate()
    out = proc.communicate(timeout=10)[0]
    assert "on http://127.0.0.1:" in out  # bound to this machine only, by default


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"no Chromium at {CHROMIUM}: .ci/run installs Debian's chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield b
        b.close()


def _traces(page, graph_id: str) -> int:
    page.wait_for_function(f"() => document.querySelector('#{graph_id} .js-plotly-plot') && "
                           f"document.querySelector('#{graph_id} .js-plotly-plot').data", timeout=30000)
    return page.evaluate(f"() => document.querySelector('#{graph_id} .js-plotly-plot').data.length")


def test_pick_a_study_and_see_its_graphs(server, browser, tmp_path):
    url, results = server
    write_study(results, "fx")
    write_study(results, "other", with_optuna=False)
    (results / "fx" / "trials" / "broken.parquet").write_bytes(b"PAR1 not really parquet")
    page = browser.new_page(viewport={"width": 1400, "height": 2400})
    page.goto(url)
    page.wait_for_selector("#study .Select-value-label, #study [class*='singleValue'], #study", timeout=30000)
    # pick the study through the picker: open it, choose "fx"
    page.click("#study")
    page.get_by_text("fx", exact=True).last.click()
    page.wait_for_url(f"{url}/fx", timeout=30000)
    page.wait_for_function("() => document.querySelector('#shots .js-plotly-plot') && "
                           "document.querySelector('#shots .js-plotly-plot').data.length === 4", timeout=30000)
    assert _traces(page, "shots") == 4  # many, medium, few, overall
    page.wait_for_function("() => document.querySelector('#shifts .js-plotly-plot').data.length === 9", timeout=30000)
    assert _traces(page, "shifts") == 9  # 3 methods x (none, PC true, PC EM)
    page.wait_for_function("() => document.querySelector('#budget .js-plotly-plot').data.length === 6", timeout=30000)
    assert _traces(page, "budget") == 6  # 3 methods x (test, validation)
    # components render a moment after the graphs: wait for them rather than count at once
    page.wait_for_selector("text=Warning: skipped unreadable results file", timeout=30000)
    assert "broken.parquet" in page.content()
    page.wait_for_selector("#trials td", timeout=30000)
    # the paired comparison against CE, from the stored test logits
    page.wait_for_selector("#paired td:has-text('baseline')", timeout=30000)
    # one paired seed per method here: no test, and the row says so
    assert page.locator("#paired td:has-text('1 seed: differences of these two trained models only')").count() >= 1
    # only CE + post-hoc LA (on CE's own 3 seeds) is tested: the caption says over how many comparisons
    assert "p Holm-adjusted over 1 comparison" in page.inner_text("#paired-caption")
    # live: a trial finishing while the page is open shows up at the next refresh
    from fixtures_study import trial_row
    from ltray import results as R

    R.write_table(str(results / "fx"), "trials", "t9",
                  R.table("trials", trial_row("t9", "lade", {"alpha": 0.1, "lam": 0.01}, 0, 0.7, 0.69)))
    page.wait_for_selector("#trials td:has-text('t9')", timeout=30000)
    page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
    assert (tmp_path / "dashboard.png").stat().st_size > 10000
    page.close()


def test_path_traversal_from_the_browser_is_refused(server, browser):
    url, results = server
    write_study(results, "fx", with_optuna=False)
    secret = results.parent / "secret"
    write_study(results.parent, "secret", with_optuna=False)  # a study-like folder outside --results
    page = browser.new_page()
    page.goto(f"{url}/..%2Fsecret")
    page.wait_for_selector("text=refused study", timeout=30000)
    assert "secret" not in page.locator("#study").inner_text()
    page.close()
    assert secret.is_dir()


def test_empty_results_folder_says_how_to_start(server, browser):
    url, _ = server
    page = browser.new_page()
    page.goto(url)
    page.wait_for_selector("text=python -m ltray.sweep experiments/quickstart.py", timeout=30000)
    page.close()


def test_resolve_refuses_names_outside_the_results_folder(tmp_path):
    results = tmp_path / "results"
    write_study(results, "fx", with_optuna=False)
    write_study(tmp_path, "outside", with_optuna=False)
    (results / "link").symlink_to(tmp_path / "outside")
    assert resolve(results, "fx") == str((results / "fx").resolve())
    for bad in ("../outside", "/etc", "fx/../../outside", "link", "", None, "nope", "fx/trials"):
        with pytest.raises(StudyRefused):
            resolve(results, bad)
