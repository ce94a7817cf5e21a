"""The Dash app: lays out the figures of ``dashboard.figures`` for one study at a time.

One page per study (``/<study>``), a study picker, and a refresh every few seconds so a running
sweep's new trial files appear. Read-only.
"""

from __future__ import annotations

import functools
from pathlib import Path
from urllib.parse import unquote

import dash
from dash import Input, Output, State, dash_table, dcc, html

from dashboard import figures as F
from dashboard.studies import (PAIRED_TABLES, StudyRefused, importances, list_studies, load, optuna_storage, resolve,
                               search_signature, signature)
from ltray.storage import is_uri, shown

REFRESH_MS = 5000


def _graph(id_: str, height: int = 420) -> dcc.Graph:
    return dcc.Graph(id=id_, style={"height": f"{height}px"})


def _section(title: str, *children) -> html.Div:
    return html.Div([html.H3(title), *children], style={"marginBottom": "24px"})


def create_app(results: str | Path) -> dash.Dash:
    root = str(results) if is_uri(str(results)) else str(Path(results).expanduser().resolve())
    app = dash.Dash(__name__, title="ltray dashboard", suppress_callback_exceptions=True)
    app.layout = html.Div(style={"fontFamily": "sans-serif", "margin": "16px"}, children=[
        dcc.Location(id="url"),
        dcc.Interval(id="tick", interval=REFRESH_MS),
        dcc.Store(id="current"),
        html.H2("ltray"),
        html.Div([html.Span("study: "), dcc.Dropdown(id="study", clearable=False, style={"width": "420px"})],
                 style={"display": "flex", "alignItems": "center", "gap": "8px"}),
        html.Div(id="message", style={"margin": "12px 0", "color": "#8a4b00"}),
        html.Div(id="content", children=[
            _section("Trials", html.Div(id="best"), dash_table.DataTable(
                id="trials", sort_action="native", filter_action="native", page_size=15,
                columns=[{"name": c, "id": c} for c in F.TRIAL_COLUMNS], style_table={"overflowX": "auto"})),
            _section("Per-shot accuracy", _graph("shots")),
            _section("Paired comparison against CE (seed k vs seed k; bootstrap over seeds and test images)",
                     dash_table.DataTable(id="paired", columns=[{"name": c, "id": c} for c in F.PAIRED_COLUMNS],
                                          style_table={"overflowX": "auto"}),
                     _graph("gap")),
            _section("Shifted test label distributions", _graph("shifts")),
            _section("Per-class accuracy", dcc.Dropdown(id="pc-trials", multi=True, placeholder="trials"),
                     _graph("per-class")),
            _section("Post-hoc tau curve", dcc.Dropdown(id="tau-trial", placeholder="trial"), _graph("tau")),
            _section("DiVE virtual examples", dcc.Dropdown(id="ve-trial", placeholder="DiVE trial"), _graph("virtual")),
            _section("Search", _graph("history"), _graph("importance"), _graph("parallel"), _graph("pareto")),
        ]),
    ])

    @app.callback(Output("study", "options"), Output("study", "value"), Output("url", "pathname"),
                  Output("current", "data"), Output("message", "children"),
                  Input("url", "pathname"), Input("study", "value"), Input("tick", "n_intervals"),
                  State("current", "data"))
    def choose(pathname, picked, _tick, current):
        names = list_studies(root)
        options = [{"label": n, "value": n} for n in names]
        if not names:
            return options, None, "/", None, html.Div([
                html.P(f"No study in {shown(root)} yet. Run a first one:"),
                html.Pre("python -m ltray.sweep experiments/quickstart.py"),
                html.P("then reload this page (it also refreshes by itself).")])
        trigger = dash.ctx.triggered_id
        wanted = picked if trigger == "study" else (unquote((pathname or "/").lstrip("/")) or current or names[0])
        try:
            resolve(root, wanted)
        except StudyRefused as e:
            return options, None, dash.no_update, None, str(e)
        return options, wanted, f"/{wanted}", wanted, ""

    @functools.lru_cache(maxsize=8)
    def _search(path: str, sig):  # redrawn when the search state changes; importances only when a trial finishes
        st = optuna_storage(path)
        return F.search_figures(*st, importances=functools.partial(importances, path)) if st else {}

    @app.callback(Output("trials", "data"), Output("best", "children"), Output("shots", "figure"),
                  Output("shifts", "figure"), Output("pc-trials", "options"), Output("tau-trial", "options"),
                  Output("ve-trial", "options"), Output("history", "figure"), Output("importance", "figure"),
                  Output("parallel", "figure"), Output("pareto", "figure"), Output("content", "title"),
                  Input("current", "data"), Input("tick", "n_intervals"))
    def overview(name, _tick):
        empty = F._empty("", "")
        try:
            path = resolve(root, name)
        except StudyRefused:
            return [], "", empty, empty, [], [], [], empty, empty, empty, empty, ""
        tables, notes = load(path)
        t = tables["trials"]
        ids = [{"label": f"{r['method']} [{r['trial_id']}]", "value": r["trial_id"]}
               for r in t.to_pylist() if r["status"] == "completed"]
        dive = sorted(set(tables["virtual"].column("trial_id").to_pylist()))
        best = F.best_per_method_info(t)
        best_div = html.Ul([html.Li(f"{b['method']}: validation {b['val_bal_acc'] * 100:.2f}, test "
                                    f"{b['test_bal_acc'] * 100:.2f} ({b['n']} seed(s)) "
                                    + ", ".join(f"{k}={v:.4g}" for k, v in b["params"].items()))
                            for b in best])
        search = _search(path, search_signature(path))
        warn = html.Div([html.P(f"Warning: {n}", className="warning") for n in notes]) if notes else ""
        return (F.trials_rows(t), [warn, best_div], F.shot_bars(t), F.shifts(tables["shifts"], t), ids, ids,
                [{"label": d, "value": d} for d in dive], search.get("history", empty), search.get("importance", empty),
                search.get("parallel", empty), search.get("pareto", F._empty("Pareto front", "one objective")), name)

    @app.callback(Output("paired", "data"), Output("gap", "figure"), Input("current", "data"),
                  Input("tick", "n_intervals"))
    def paired(name, _tick):
        try:
            path = resolve(root, name)
        except StudyRefused:
            return [], F._empty("", "")
        return _paired(path, signature(path))

    @functools.lru_cache(maxsize=8)
    def _paired(path: str, sig: tuple):  # recomputed only when one of the study's files changed
        tables, _ = load(path, PAIRED_TABLES)
        return F.paired_rows(tables), F.gap_bars(tables)

    def chosen_graph(graph: str, picker: str, draw, multi: bool) -> None:
        """A graph drawn from the trial(s) picked above it; the first trial(s) until one is picked."""

        @app.callback(Output(graph, "figure"), Input(picker, "value"), Input(picker, "options"),
                      State("current", "data"))
        def update(chosen, options, name):
            try:
                tables, _ = load(resolve(root, name))
            except StudyRefused:
                return F._empty("", "")
            values = [o["value"] for o in (options or [])]
            if not chosen:
                chosen = values[:2] if multi else (values[0] if values else None)
            return draw(tables, chosen)

    chosen_graph("per-class", "pc-trials", lambda t, c: F.per_class(t["per_class"], t["trials"], c), multi=True)
    chosen_graph("tau", "tau-trial", lambda t, c: F.tau_curve(t["tau_curve"], t["trials"], c), multi=False)
    chosen_graph("virtual", "ve-trial", lambda t, c: F.virtual(t["virtual"], c), multi=False)

    return app
