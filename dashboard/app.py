"""The Dash app: one page per study (``/<study>``), a study picker that switches without reloading
the page, a header saying what the study is, then its sections, tail first. Read-only.

The page refreshes every few seconds so a running sweep's new trial files appear; a refresh with
nothing new sends nothing, and a figure that does update keeps the user's zoom, legend and
picks (``uirevision``). The callbacks are in ``dashboard.callbacks``.
"""

from __future__ import annotations

from pathlib import Path

import dash
from dash import dash_table, dcc, html
from dash.dash_table import FormatTemplate
from dash.dash_table.Format import Format, Scheme

from dashboard import callbacks, compare
from dashboard.figures import PERCENT_COLUMNS, TRIAL_COLUMNS
from dashboard.style import FIGURE_HEIGHT, graph_config
from ltray.results.schema import TrialStatus
from ltray.results.storage import is_uri

REFRESH_MS = 5000
TABLE_STYLE = {"overflowX": "auto"}
CELL_STYLE = {"whiteSpace": "normal", "height": "auto", "textAlign": "left", "fontFamily": "sans-serif",
              "fontSize": "13px", "minWidth": "60px", "maxWidth": "360px"}


def create_app(results: str | Path) -> dash.Dash:
    """The app over the studies under ``results`` (a folder or a URI)."""
    root = str(results) if is_uri(str(results)) else str(Path(results).expanduser().resolve())
    app = dash.Dash(__name__, title="ltray dashboard", suppress_callback_exceptions=True)
    app.layout = _layout()
    callbacks.register(app, root)
    return app


def _graph(id_: str) -> dcc.Graph:
    # no fixed height: each figure sets its own (an empty state is one line, not a screen)
    return dcc.Graph(id=id_, config=graph_config(id_), style={"minHeight": "40px"},
                     figure={"layout": {"height": FIGURE_HEIGHT}})


def _section(title: str, *children) -> html.Div:
    return html.Div([html.H3(title, style={"marginBottom": "4px"}), *children], style={"marginBottom": "28px"})


def _table(id_: str, columns=(), **kw) -> dash_table.DataTable:
    """A table that wraps rather than hides columns, and exports its rows as CSV."""
    return dash_table.DataTable(id=id_, columns=list(columns), export_format="csv", style_table=TABLE_STYLE,
                                style_cell=CELL_STYLE, **kw)


def _trial_columns() -> list[dict]:
    out = []
    for c in TRIAL_COLUMNS:
        if c in PERCENT_COLUMNS:
            out.append({"name": c, "id": c, "type": "numeric", "format": FormatTemplate.percentage(1)})
        elif c in ("wall_s", "best_epoch", "seed"):
            out.append({"name": "best_epoch (from 0)" if c == "best_epoch" else c, "id": c, "type": "numeric",
                        "format": Format(precision=0, scheme=Scheme.fixed)})
        else:
            out.append({"name": c, "id": c})
    return out


def _layout() -> html.Div:
    """The page: the study picker, a message line, the study's header, then its sections."""
    picker = lambda id_, multi, ph: dcc.Dropdown(id=id_, multi=multi, placeholder=ph, style={"maxWidth": "900px"})  # noqa: E731
    return html.Div(style={"fontFamily": "sans-serif", "margin": "16px", "maxWidth": "1600px"}, children=[
        dcc.Location(id="url", refresh="callback-nav"),  # a new study is a new URL, not a page reload
        dcc.Interval(id="tick", interval=REFRESH_MS),
        dcc.Store(id="current"),
        dcc.Store(id="overview-seen"),  # what the page shows: a tick with nothing new sends nothing
        dcc.Store(id="paired-seen"),
        html.H2("ltray"),
        html.Div([html.Span("study: "), dcc.Dropdown(id="study", clearable=False, style={"width": "420px"})],
                 style={"display": "flex", "alignItems": "center", "gap": "8px"}),
        html.Div(id="message", style={"margin": "12px 0", "color": "#8a4b00", "overflowWrap": "anywhere"}),
        html.Div(id="study-header", style={"margin": "8px 0 20px", "color": "#333", "overflowWrap": "anywhere"}),
        # a spinner over the page while a study is read (not for a refresh that finds nothing new: delay_show)
        dcc.Loading(delay_show=400, target_components={"trials": "data"}, overlay_style={"visibility": "visible",
                    "opacity": 0.6}, children=html.Div(id="content", children=[
            _section("Trials", html.Div(id="best"),
                     dcc.Dropdown(id="status-filter", multi=True, placeholder="every status",
                                  options=[{"label": s, "value": s} for s in TrialStatus], style={"maxWidth": "520px"}),
                     _table("trials", _trial_columns(), sort_action="native", filter_action="native", page_size=15),
                     html.P("Click a row to open that trial below.", style={"color": "#666", "fontSize": "13px"})),
            _section("Trial", html.Div(id="trial-card"), _graph("trial-curves")),
            _section("Per-shot accuracy", _graph("shots")),
            _section("Against the baseline, tail first", html.P(id="paired-caption"), _graph("paired-diffs"),
                     _table("paired", [{"name": c.replace("bal_acc", "overall"), "id": c} for c in compare.PAIRED_COLUMNS]), _graph("gap")),
            _section("Experts of multi-expert methods", _table("experts", [
                {"name": c.replace("bal_acc", "overall"), "id": c} for c in compare.EXPERT_COLUMNS])),
            _section("Shifted test label distributions", _graph("shifts"),
                     _table("shift-summary", [{"name": c, "id": c} for c in ("method", "rule", "mean over shifts",
                                                                              "seeds")])),
            _section("Training curves", picker("curve-trials", True, "trials"), _graph("curves")),
            _section("Per-class accuracy", picker("pc-trials", True, "trials"), _graph("per-class")),
            _section("Post-hoc tau curve", picker("tau-trial", False, "trial"), _graph("tau")),
            _section("Tuning budget", _graph("budget")),
            _section("DiVE virtual examples", picker("ve-trial", False, "DiVE trial"), _graph("virtual")),
            _section("Search", picker("search-study", False, "Optuna study"), _graph("history"), _graph("importance"),
                     _graph("parallel"), _graph("pareto")),
            _section("Compare studies", picker("compare-studies", True, "studies to put side by side"),
                     _table("compare")),
        ])),
    ])
