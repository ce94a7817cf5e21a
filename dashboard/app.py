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
from dash.exceptions import PreventUpdate

from dashboard import figures, search_figures
from dashboard.studies import (PAIRED_TABLES, StudyRefused, importances, list_studies, load, optuna_storage, resolve,
                               search_signature, search_studies, shared, signature, trials_with)
from ltray.report import method_summary, search_settings
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
    _chosen_graph(app, root, "per-class", "pc-trials", "per_class",
                  lambda t, c: figures.per_class(t["per_class"], t["trials"], c), multi=True)
    _chosen_graph(app, root, "tau", "tau-trial", "tau_curve",
                  lambda t, c: figures.tau_curve(t["tau_curve"], t["trials"], c), multi=False)
    _chosen_graph(app, root, "virtual", "ve-trial", "virtual", lambda t, c: figures.virtual(t["virtual"], c),
                  multi=False)
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
        dcc.Store(id="overview-seen"),  # what the page shows: a tick with nothing new sends nothing
        dcc.Store(id="paired-seen"),
        html.H2("ltray"),
        html.Div([html.Span("study: "), dcc.Dropdown(id="study", clearable=False, style={"width": "420px"})],
                 style={"display": "flex", "alignItems": "center", "gap": "8px"}),
        html.Div(id="message", style={"margin": "12px 0", "color": "#8a4b00"}),
        html.Div(id="content", children=[
            _section("Trials", html.Div(id="best"), dash_table.DataTable(
                id="trials", sort_action="native", filter_action="native", page_size=15,
                columns=[{"name": c, "id": c} for c in figures.TRIAL_COLUMNS], style_table={"overflowX": "auto"})),
            _section("Per-shot accuracy", _graph("shots")),
            _section("Paired comparison against CE (seed k vs seed k)", html.P(id="paired-caption"),
                     dash_table.DataTable(id="paired", columns=[{"name": c, "id": c} for c in figures.PAIRED_COLUMNS],
                                          style_table={"overflowX": "auto"}),
                     _graph("gap")),
            _section("Shifted test label distributions", _graph("shifts")),
            _section("Per-class accuracy", dcc.Dropdown(id="pc-trials", multi=True, placeholder="trials"),
                     _graph("per-class")),
            _section("Post-hoc tau curve", dcc.Dropdown(id="tau-trial", placeholder="trial"), _graph("tau")),
            _section("DiVE virtual examples", dcc.Dropdown(id="ve-trial", placeholder="DiVE trial"), _graph("virtual")),
            _section("Tuning budget", _graph("budget")),
            _section("Search", dcc.Dropdown(id="search-study", clearable=False, placeholder="Optuna study",
                                            style={"width": "420px"}),
                     _graph("history"), _graph("importance"), _graph("parallel"), _graph("pareto")),
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
    trial pickers' options and the search figures. A tick with no new file sends nothing: the
    page holds the signature of what it shows (``overview-seen``)."""

    @functools.lru_cache(maxsize=8)
    def search(path: str, sig, which: str | None) -> tuple[dict, str]:  # redrawn when the search state changes
        try:
            st = optuna_storage(path, which)
            return (search_figures.search_figures(*st, importances=functools.partial(importances, path))
                    if st else {}), ""
        except Exception as e:  # a damaged optuna.db (or an unreachable database) costs the search figures only
            return {}, (f"the search state of {shown(path)} cannot be read ({type(e).__name__}: "
                        f"{str(e).splitlines()[0][:200] if str(e) else ''}); the search figures are left out")

    @app.callback(Output("trials", "data"), Output("best", "children"), Output("shots", "figure"),
                  Output("shifts", "figure"), Output("pc-trials", "options"), Output("tau-trial", "options"),
                  Output("ve-trial", "options"), Output("history", "figure"), Output("importance", "figure"),
                  Output("parallel", "figure"), Output("pareto", "figure"), Output("budget", "figure"),
                  Output("search-study", "options"), Output("content", "title"), Output("overview-seen", "data"),
                  Input("current", "data"), Input("tick", "n_intervals"), Input("search-study", "value"),
                  State("overview-seen", "data"))
    def overview(name, _tick, which, seen):
        empty = figures.empty("", "")
        try:
            path = resolve(root, name)
        except StudyRefused:
            return [], "", empty, empty, [], [], [], empty, empty, empty, empty, empty, [], "", None
        seeing = repr((name, signature(path, ("trials", "virtual")), search_signature(path), which))
        if seeing == seen:
            raise PreventUpdate  # nothing changed since this page drew it: nothing is sent
        return (*shared(("overview", path, seeing), lambda: draw(path, which)), name, seeing)

    def draw(path: str, which: str | None) -> tuple:
        """Every output but the last two, computed once per state of the study's files."""
        tables, notes = load(path, ("trials",))
        t = tables["trials"]
        shifts, more = load(path, ("shifts",), _selected(t))
        ids = [{"label": f"{r['method']} [{r['trial_id']}]", "value": r["trial_id"]}
               for r in t.to_pylist() if r["status"] == TrialStatus.COMPLETED]
        s, note = search(path, search_signature(path), which)
        warn = html.Div([html.P(f"Warning: {n}", className="warning") for n in (*notes, *more, *([note] if note else []))])
        return (figures.trials_rows(t), [warn, _best_list(t)], figures.shot_bars(t), figures.shifts(shifts["shifts"], t),
                ids, ids, [{"label": d, "value": d} for d in trials_with(path, "virtual")],
                *(s.get(k, figures.empty(k, note or "")) for k in ("history", "importance", "parallel")),
                s.get("pareto", figures.empty("Pareto front", note or "one objective")),
                figures.budget(t, search_settings(path)), [{"label": n, "value": n} for n in search_studies(path)])


def _selected(trials) -> list[str]:
    """The trials of every method's selected configuration (what the comparisons are made of)."""
    return [tid for m in method_summary(trials) for tid in m["trial_ids"]]


def _best_list(trials) -> html.Ul:
    """The selected configuration per method, as the sweep's summary lists it."""
    return html.Ul([html.Li(f"{b['method']}: validation {b['val_bal_acc'] * 100:.2f}, test "
                            f"{b['test_bal_acc'] * 100:.2f} ({b['n']} seed(s)) "
                            + ", ".join(f"{k}={v:.4g}" for k, v in b["params"].items()))
                    for b in figures.best_per_method_info(trials)])


def _paired(app: dash.Dash, root: str) -> None:
    """The paired comparison and the protocol gap, from the selected configurations' trials only
    (their logits, per-class counts and epochs), recomputed only when one of their files changed."""

    def compute(path: str, sig: tuple):
        trials, _ = load(path, ("trials",))
        tables, _ = load(path, PAIRED_TABLES, _selected(trials["trials"]))
        tables = {**tables, **trials}
        return (*figures.paired_view(tables), figures.gap_bars(tables))

    @app.callback(Output("paired", "data"), Output("paired-caption", "children"), Output("gap", "figure"),
                  Output("paired-seen", "data"),
                  Input("current", "data"), Input("tick", "n_intervals"), State("paired-seen", "data"))
    def paired(name, _tick, seen):
        try:
            path = resolve(root, name)
        except StudyRefused:
            return [], "", figures.empty("", ""), None
        trials, _ = load(path, ("trials",))
        sig = (signature(path, ("trials",)), signature(path, PAIRED_TABLES, _selected(trials["trials"])))
        seeing = repr((name, sig))
        if seeing == seen:
            raise PreventUpdate
        return (*shared(("paired", path, sig), lambda: compute(path, sig)), seeing)


def _chosen_graph(app: dash.Dash, root: str, graph: str, picker: str, table: str, draw, multi: bool) -> None:
    """A graph drawn from the trial(s) picked above it (their files of ``table`` only); the first
    trial(s) until one is picked."""

    @app.callback(Output(graph, "figure"), Input(picker, "value"), Input(picker, "options"), State("current", "data"))
    def update(chosen, options, name):
        try:
            path = resolve(root, name)
        except StudyRefused:
            return figures.empty("", "")
        values = [o["value"] for o in (options or [])]
        if not chosen:
            chosen = values[:2] if multi else (values[0] if values else None)
        ids = list(chosen) if multi else [chosen] if chosen else []
        trials, _ = load(path, ("trials",))
        picked, _ = load(path, (table,), ids)
        return draw({**trials, **picked}, chosen)
