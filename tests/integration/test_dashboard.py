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
    return page.evaluate(f"() => document.querySelector('#{graph_id} .js-plotly-plot')?.data?.length")


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
                           "document.querySelector('#shots .js-plotly-plot')?.data?.length === 4", timeout=30000)
    assert _traces(page, "shots") == 4  # many, medium, few, overall
    page.wait_for_function("() => document.querySelector('#shifts .js-plotly-plot')?.data?.length === 9", timeout=30000)
    assert _traces(page, "shifts") == 9  # 3 methods x (none, PC true, PC EM)
    page.wait_for_function("() => document.querySelector('#budget .js-plotly-plot')?.data?.length === 6", timeout=30000)
    assert _traces(page, "budget") == 6  # 3 methods x (test, validation)
    # components render a moment after the graphs: wait for them rather than count at once
    page.wait_for_selector("text=Warning: skipped unreadable results file", timeout=30000)
    assert "broken.parquet" in page.content()
    page.wait_for_selector("#trials td", timeout=30000)
    # the paired comparison against CE, from the stored test logits
    page.wait_for_selector("#paired td:has-text('baseline')", timeout=30000)
    # one paired seed per method here: no test, and the row says so
    assert page.locator("#paired td:has-text('1 seed: differences of these two trained models only')").count() >= 1
    assert _traces(page, "paired-diffs") >= 1  # the differences per shot group, drawn
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
    page.goto(f"{url}/nope")  # a missing study: one line, and the server's folders stay off the page
    page.wait_for_selector("#message:has-text(\"no study 'nope'\")", timeout=30000)
    assert str(results) not in page.content() and str(results.parent) not in page.inner_text("body")
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


def test_a_view_researchers_keep_open(server, browser):
    """The page keeps what the user did while a sweep writes new files: a zoom survives the
    update that redraws its figure; switching studies changes the URL without reloading the
    page; the header says what the study is; a trials row opens that trial; the status filter,
    CSV export and studies side by side are there."""
    url, results = server
    write_study(results, "fx")
    write_study(results, "other", with_optuna=False)
    (results / "fx" / "experiment.json").write_text('{"data": {"name": "digits-lt", "rho": 100.0}, "model": '
                                                    '{"name": "cnn-small"}, "train": {"epochs": 30}, "methods": '
                                                    '["ce", "dive", "logit_adjusted"], "repeats": 3}')
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    page.goto(f"{url}/fx")
    page.wait_for_selector("#study-header:has-text('digits-lt rho 100, cnn-small, 30 epochs')", timeout=30000)
    assert _traces(page, "shots") == 4
    page.evaluate("() => { window.__stayed = true; }")  # gone if the page reloads
    layouts = []  # the app's layout is fetched once per page load
    page.on("request", lambda r: layouts.append(r.url) if "/_dash-layout" in r.url else None)
    # zoom the per-shot bars with the mouse, as a user does (a drag along the y axis)
    page.locator("#shots").scroll_into_view_if_needed()
    box = page.locator("#shots .nsewdrag").first.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.2, box["y"] + box["height"] * 0.2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.7, box["y"] + box["height"] * 0.6, steps=10)
    page.mouse.up()
    page.wait_for_function("() => document.querySelector('#shots .js-plotly-plot')?.layout?.yaxis?.autorange === false",
                           timeout=30000)
    zoomed = page.evaluate("() => document.querySelector('#shots .js-plotly-plot').layout.yaxis.range")
    # hide a shot group by clicking its legend entry
    entry = page.locator("#shots .legendtoggle").first.bounding_box()
    page.mouse.click(entry["x"] + 5, entry["y"] + 5)
    page.wait_for_function("() => document.querySelector('#shots .js-plotly-plot').data[0].visible === 'legendonly'",
                           timeout=30000)
    from fixtures_study import trial_row
    from ltray import results as R

    R.write_table(str(results / "fx"), "trials", "t9",
                  R.table("trials", trial_row("t9", "ce", {}, 3, 0.9, 0.9)))  # changes the bars
    page.wait_for_selector("#trials td:has-text('t9')", timeout=30000)
    page.wait_for_function("() => document.querySelector('#shots .js-plotly-plot')?.data?.[0]?.y?.some(v => v > 50.1)",
                           timeout=30000)  # redrawn with the new trial
    rng = page.evaluate("() => document.querySelector('#shots .js-plotly-plot').layout.yaxis.range")
    assert rng == pytest.approx(zoomed), (rng, zoomed)  # the user's zoom survived the update
    assert page.evaluate("() => document.querySelector('#shots .js-plotly-plot').data[0].visible") == "legendonly"
    # a row opens its trial
    page.click("#trials td:has-text('t4')")
    page.wait_for_selector("#trial-card td:has-text('logit_adjusted')", timeout=30000)
    assert "tau=1" in page.inner_text("#trial-card")
    with page.expect_download() as download:  # the table's rows as CSV, in the browser
        page.click("#trials button:has-text('Export')")
    csv = open(download.value.path()).read()
    assert download.value.suggested_filename.endswith(".csv") and "t9" in csv, csv[:300]
    # the status filter narrows the table with its own filter
    page.click("#status-filter")
    page.get_by_text("duplicate", exact=True).last.click()
    page.wait_for_function("() => !document.querySelector('#trials td[data-dash-column=trial_id]')", timeout=30000)
    # switch studies through the picker: the URL changes, the page does not reload
    page.click("#study")
    page.get_by_text("other", exact=True).last.click()
    page.wait_for_url(f"{url}/other", timeout=30000)
    page.wait_for_selector("#shots .gtitle:has-text('other:')", timeout=30000)
    assert page.evaluate("() => window.__stayed === true") and layouts == []  # no reload
    page.click("#compare-studies")
    page.get_by_text("fx", exact=True).last.click()
    page.wait_for_selector("#compare td:has-text('58.0% (n=1; val 60.0%)')", timeout=30000)  # fx's logit_adjusted
    assert "fx: test" in page.inner_text("#compare")
    page.close()


def test_a_refresh_with_nothing_new_sends_no_figure(server, browser):
    """Once the page shows a study, the 5 s refresh asks the server and gets nothing back until a
    file changes: no figure is re-sent (an idle tab costs the server almost nothing)."""
    url, results = server
    write_study(results, "fx")
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    page.goto(f"{url}/fx")
    assert _traces(page, "shots") == 4
    page.wait_for_selector("#paired td:has-text('baseline')", timeout=30000)
    sent = []  # the answers to the refresh's own requests ("" for 204: nothing to update)

    def finished(r):
        # only what the 5 s tick asked (a first drawing still under way on a slow machine is not a re-send)
        if "/_dash-update-component" in r.url and "tick.n_intervals" in (r.post_data_json or {}).get("changedPropIds", []):
            sent.append(r.response().body().decode() if r.response().status == 200 else "")

    page.on("requestfinished", finished)
    page.wait_for_timeout(11_000)  # two refreshes (every 5 s)
    assert sent, "the page did not refresh"
    assert not [b for b in sent if '"figure"' in b], [b[:200] for b in sent if '"figure"' in b]


def test_the_verdict_stays_on_screen_at_800_px(server, browser):
    url, results = server
    write_study(results, "fx")
    page = browser.new_page(viewport={"width": 800, "height": 900})
    page.goto(f"{url}/fx")
    cell = page.locator("#paired td[data-dash-column='vs bal_acc']").first
    cell.wait_for(timeout=30000)
    cell.scroll_into_view_if_needed()
    box = cell.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 800, box
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 800  # no sideways scrolling of the page
