"""What a researcher waits for in the browser on a large study: the cold first paint of a
1,000-trial study (page opened, every section's answer received) and a switch to another
1,000-trial study through the picker. Real headless Chromium, a real dashboard process per code
version, the study files of ``dashboard_load.make_study``.

    python benchmarks/dashboard_paint.py [--trials 1000] [--before PATH]

``--before PATH``: also measure the ltray checkout at PATH in the same run and print the ratios.
"Done" is the last answer of the burst of requests the page sends (no request in flight for 1 s).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dashboard_load import make_study  # noqa: E402

QUIET_S = 1.0


def settle(page, since: float, log: list) -> float:
    """Seconds from ``since`` to the last answer, once nothing has been in flight for QUIET_S."""
    while True:
        page.wait_for_timeout(200)
        open_ = [r for r in log if r[1] is None]
        last = max((r[1] for r in log if r[1] is not None), default=since)
        if not open_ and time.perf_counter() - last > QUIET_S and last > since:
            return last - since


def measure(code: Path, root: Path, port: int) -> dict:
    from playwright.sync_api import sync_playwright

    proc = subprocess.Popen([sys.executable, "-m", "dashboard", "--results", str(root), "--port", str(port)],
                            cwd=code, env={"PYTHONPATH": str(code), "PATH": "/usr/bin:/bin"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(url, timeout=1)
                break
            except OSError:
                time.sleep(0.5)
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path=shutil.which("chromium"), headless=True, args=["--no-sandbox"])
            page = b.new_page(viewport={"width": 1440, "height": 900})
            log: list = []  # [request, finished at]
            page.on("request", lambda r: log.append([r, None]) if "_dash" in r.url else None)

            def finished(r):
                for entry in log:
                    if entry[0] is r:
                        entry[1] = time.perf_counter()

            page.on("requestfinished", finished)
            page.on("requestfailed", finished)
            t0 = time.perf_counter()
            page.goto(f"{url}/big")
            page.wait_for_function("() => document.querySelector('#shots .js-plotly-plot')?.data?.length > 0",
                                   timeout=600_000)
            out = {"first_bars_s": time.perf_counter() - t0, "cold_first_paint_s": settle(page, t0, log)}
            page.click("#study")
            t0 = time.perf_counter()
            page.get_by_text("big2", exact=True).last.click()
            page.wait_for_url(f"{url}/big2", timeout=600_000)
            out["switch_s"] = settle(page, t0, log)
            out["layout_fetches"] = sum(1 for r, _ in log if "_dash-layout" in r.url)
            b.close()
        return out
    finally:
        proc.terminate()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trials", type=int, default=1000)
    p.add_argument("--root", default="/tmp/ltray-bench-paint")
    p.add_argument("--before", help="an older ltray checkout to measure in the same run")
    a = p.parse_args()
    root = Path(a.root) / f"n{a.trials}"
    t0 = time.time()
    make_study(root, a.trials)
    if not (root / "big2").exists():
        shutil.copytree(root / "big", root / "big2")
    print(f"studies: big and big2, {a.trials} trials each, under {root} ({time.time() - t0:.0f} s)", flush=True)
    runs = {"now": Path(__file__).resolve().parent.parent} | ({"before": Path(a.before).resolve()} if a.before else {})
    got = {}
    for i, (label, code) in enumerate(runs.items()):
        got[label] = measure(code, root, 8790 + i)
        print(f"{label} ({code}): " + ", ".join(f"{k} {v:.3g}" for k, v in got[label].items()), flush=True)
    if "before" in got:
        print("before / now: " + ", ".join(f"{k} {got['before'][k] / got['now'][k]:.2f}x"
                                           for k in got["now"] if got["now"][k]))


if __name__ == "__main__":
    main()
