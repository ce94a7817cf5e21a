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

from dashboard import figures, search_figures
from dashboard.studies import (PAIRED_TABLES, StudyRefused, importances, list_studies, load, optuna_storage, resolve,
                               search_signature, signature)
from ltray.results.schema import TrialStatus
from ltray.results.storage import is_uri, shown

REFRESH_MS = 5000


def create_app(results: str | Path) -> dash.Dash:
    """The app over the studies under ``results`` (a folder or a URI)."""
    root = str(results) if is_uri(str(results)) else str(Path(results).expanduser().resolve())
    app = dash.Dash(__name__, title="ltray dashboard", suppress_callback_exceptions=True)
    app.layout = _layout()
    _choose_study(app, root)
    _overview(app, root)
    _paired(app, root)
    _chosen_graph(app, root, "per-class", "pc-trials",
                  lambda t, c: figures.per_class(t["per_class"], t["trials"], c), multi=True)
    _chosen_graph(app, root, "tau", "tau-trial", lambda t, c: figures.tau_curve(t["tau_curve"], t["trials"], c),
                  multi=False)
    _chosen_graph(app, root, "virtual", "ve-trial", lambda t, c: figures.virtual(t["virtual"], c), multi=False)
    return app


def _graph(id_: str, height: int = 420) -> dcc.Graph:
    return dcc.Graph(id=id_, style={"height": f"{height}px"})


def _section(title: str, *children) -> html.Div:
    return html.Div([html.H3(title), *children], style={"marginBottom": "24px"})


def _layout() -> html.Div:
    """The page: the study picker, a message line, then one section per figure."""
    return html.Div(style={"fontFamily": "sans-serif", "margin": "16px"}, children=[
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
                columns=[{"name": c, "id": c} for c in figures.TRIAL_COLUMNS], style_table={"overflowX": "auto"})),
            _section("Per-shot accuracy", _graph("shots")),
            _section("Paired comparison against CE (seed k vs seed k; bootstrap over seeds and test images)",
                     dash_table.DataTable(id="paired", columns=[{"name": c, "id": c} for c in figures.PAIRED_COLUMNS],
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


def _choose_study(app: dash.Dash, root: str) -> None:
    """The study shown: from the URL, the picker or the last one shown; a name that is not a
    study inside ``root`` is refused with a message."""

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


def _overview(app: dash.Dash, root: str) -> None:
    """The trials table, the best configuration per method, the per-shot and shift figures, the
    trial pickers' options and the search figures."""

    @functools.lru_cache(maxsize=8)
    def search(path: str, sig):  # redrawn when the search state changes; importances only when a trial finishes
        st = optuna_storage(path)
        return search_figures.search_figures(*st, importances=functools.partial(importances, path)) if st else {}

    @app.callback(Output("trials", "data"), Output("best", "children"), Output("shots", "figure"),
                  Output("shifts", "figure"), Output("pc-trials", "options"), Output("tau-trial", "options"),
                  Output("ve-trial", "options"), Output("history", "figure"), Output("importance", "figure"),
                  Output("parallel", "figure"), Output("pareto", "figure"), Output("content", "title"),
                  Input("current", "data"), Input("tick", "n_intervals"))
    def overview(name, _tick):
        empty = figures.empty("", "")
        try:
            path = resolve(root, name)
        except StudyRefused:
            return [], "", empty, empty, [], [], [], empty, empty, empty, empty, ""
        tables, notes = load(path)
        t = tables["trials"]
        ids = [{"label": f"{r['method']} [{r['trial_id']}]", "value": r["trial_id"]}
               for r in t.to_pylist() if r["status"] == TrialStatus.COMPLETED]
        dive = sorted(set(tables["virtual"].column("trial_id").to_pylist()))
        s = search(path, search_signature(path))
        warn = html.Div([html.P(f"Warning: {n}", className="warning") for n in notes]) if notes else ""
        return (figures.trials_rows(t), [warn, _best_list(t)], figures.shot_bars(t), figures.shifts(tables["shifts"], t),
                ids, ids, [{"label": d, "value": d} for d in dive], s.get("history", empty), s.get("importance", empty),
                s.get("parallel", empty), s.get("pareto", figures.empty("Pareto front", "one objective")), name)


def _best_list(trials) -> html.Ul:
    """The selected configuration per method, as the sweep's summary lists it."""
    return html.Ul([html.Li(f"{b['method']}: validation {b['val_bal_acc'] * 100:.2f}, test "
                            f"{b['test_bal_acc'] * 100:.2f} ({b['n']} seed(s)) "
                            + ", ".join(f"{k}={v:.4g}" for k, v in b["params"].items()))
                    for b in figures.best_per_method_info(trials)])


def _paired(app: dash.Dash, root: str) -> None:
    """The paired comparison and the protocol gap, recomputed only when a study file changed."""

    @functools.lru_cache(maxsize=8)
    def compute(path: str, sig: tuple):
        tables, _ = load(path, PAIRED_TABLES)
        return figures.paired_rows(tables), figures.gap_bars(tables)

    @app.callback(Output("paired", "data"), Output("gap", "figure"), Input("current", "data"),
                  Input("tick", "n_intervals"))
    def paired(name, _tick):
        try:
            path = resolve(root, name)
        except StudyRefused:
            return [], figures.empty("", "")
        return compute(path, signature(path))


def _chosen_graph(app: dash.Dash, root: str, graph: str, picker: str, draw, multi: bool) -> None:
    """A graph drawn from the trial(s) picked above it; the first trial(s) until one is picked."""

    @app.callback(Output(graph, "figure"), Input(picker, "value"), Input(picker, "options"), State("current", "data"))
    def update(chosen, options, name):
        try:
            tables, _ = load(resolve(root, name))
        except StudyRefused:
            return figures.empty("", "")
        values = [o["value"] for o in (options or [])]
        if not chosen:
            chosen = values[:2] if multi else (values[0] if values else None)
        return draw(tables, chosen)
