"""The dashboard's callbacks. Every figure of a study is recomputed only when the files it reads
changed (a tick with nothing new sends nothing: the page keeps the signature of what it shows),
once however many requests ask at once (``studies.shared``), and reads only the trials it shows.
"""

from __future__ import annotations

import functools
from urllib.parse import unquote

import dash
from dash import Input, Output, State, html
from dash.exceptions import PreventUpdate

from dashboard import compare, figures, search_figures, trial_view, view
from dashboard.header import header_info, header_text
from dashboard.studies import (PAIRED_TABLES, StudyRefused, importances, list_studies, load, optuna_storage, resolve,
                               search_signature, search_studies, shared, signature, trials_with)
from dashboard.style import empty, pct, titled
from ltray.report import method_summary, search_settings, train_counts
from ltray.results.schema import TrialStatus

SEARCH_FIGURES = ("history", "importance", "parallel", "pareto")


def register(app: dash.Dash, root: str) -> None:
    _choose_study(app, root)
    _overview(app, root)
    _paired(app, root)
    _trial(app, root)
    _pickers(app)
    _chosen_graph(app, root, "curves", "curve-trials", "epochs",
                  lambda t, ids, study: trial_view.curves(trial_view.curves_info(t["epochs"], t["trials"], ids), study))
    _chosen_graph(app, root, "per-class", "pc-trials", "per_class",
                  lambda t, ids, study: figures.per_class(t["per_class"], t["trials"], ids, study=study))
    _chosen_graph(app, root, "tau", "tau-trial", "tau_curve",
                  lambda t, ids, study: figures.tau_curve(t["tau_curve"], t["trials"], ids[0] if ids else None, study))
    _chosen_graph(app, root, "virtual", "ve-trial", "virtual",
                  lambda t, ids, study: figures.virtual(t["virtual"], ids[0] if ids else None, study))
    _compare_studies(app, root)

    @app.callback(Output("trials", "filter_query"), Input("status-filter", "value"))
    def status_filter(statuses):  # the table's own filter, so sorting and paging keep working
        return " || ".join(f'{{status}} = "{s}"' for s in statuses or [])


def _choose_study(app: dash.Dash, root: str) -> None:
    """The study shown: from the URL, the picker or the last one shown; a name that is not a
    study inside ``root`` is refused with one line (never the server's path)."""

    @app.callback(Output("study", "options"), Output("study", "value"), Output("url", "pathname"),
                  Output("current", "data"), Output("message", "children"),
                  Input("url", "pathname"), Input("study", "value"), Input("tick", "n_intervals"),
                  State("current", "data"), State("study", "options"), State("message", "children"))
    def choose(pathname, picked, _tick, current, options_shown, message):
        names = list_studies(root)
        options = [{"label": n, "value": n} for n in names]
        if not names:
            return options, None, dash.no_update, None, html.Div([
                "No study here yet. Run a first one: ", html.Code("python -m ltray.sweep experiments/quickstart.py"),
                " (this page refreshes by itself)."])
        trigger = dash.ctx.triggered_id
        wanted = picked if trigger == "study" else (unquote((pathname or "/").lstrip("/")) or current or names[0])
        try:
            resolve(root, wanted)
        except StudyRefused as e:
            return options, None, dash.no_update, None, str(e)
        path = f"/{wanted}"
        keep = lambda new, old: dash.no_update if new == old else new  # noqa: E731 (a tick that changed nothing sends nothing)
        return (keep(options, options_shown), keep(wanted, picked), keep(path, pathname), keep(wanted, current),
                keep("", message))


def _overview(app: dash.Dash, root: str) -> None:
    """The header, trials table, selected configurations, per-shot and shift figures, tuning
    budget, the pickers' options and the search figures."""

    outputs = ("trials.data", "best.children", "shots.figure", "shifts.figure", "shift-summary.data",
               "pc-trials.options", "tau-trial.options", "ve-trial.options", "curve-trials.options",
               *(f"{k}.figure" for k in SEARCH_FIGURES), "budget.figure", "study-header.children", "content.title",
               "overview-seen.data")

    @app.callback(*(Output(*o.split(".")) for o in outputs), Input("current", "data"), Input("tick", "n_intervals"),
                  Input("search-study", "value"), State("overview-seen", "data"))
    def overview(name, _tick, which, seen):
        try:
            path = resolve(root, name)
        except StudyRefused:
            none = empty("", "")
            return ([], "", none, none, [], [], [], [], [], none, none, none, none, none, "", "", None)
        studies = search_studies(path)  # the picker's default is the first: the same view as no pick (no second draw)
        which = which if which in studies else (studies[0] if studies else None)
        seeing = repr((name, signature(path, ("trials", "virtual", "shifts", "ended")), search_signature(path), which))
        if seen and seeing == seen["state"]:
            raise PreventUpdate  # nothing changed since this page drew it: nothing is sent
        drawn = shared(("overview", path, seeing), lambda: draw(path, name, which))
        sent, shapes = _keeping_view(outputs[:-2], drawn, seen if seen and seen["study"] == name else None)
        return (*sent, name, {"study": name, "state": seeing, "shapes": shapes})

    def draw(path: str, study: str, which: str | None) -> tuple:
        """Every output but the last two, computed once per state of the study's files."""
        tables, notes = load(path, ("trials",))
        t = tables["trials"]
        selected = _selected(t)
        more, also = load(path, ("shifts", "per_class"), selected[:1] + selected)
        counts = _train_counts(more["per_class"])
        shift_info = compare.shifts_info({"trials": t, "shifts": more["shifts"]})
        done = [r for r in t.to_pylist() if r["status"] == TrialStatus.COMPLETED]
        ids = [{"label": trial_view.trial_label(r), "value": r["trial_id"]} for r in done]
        with_epochs = set(trials_with(path, "epochs"))
        curve_ids = [o for o in ids if o["value"] in with_epochs]
        s, note = _search(path, search_signature(path), which, study)
        warn = html.Div([html.P(f"Warning: {n}", className="warning") for n in (*notes, *also, *([note] if note else []))])
        return (figures.trials_rows(t), [warn, _best_list(t)], figures.shot_bars(t, study, counts),
                compare.shifts(shift_info, study), compare.shift_summary_rows(shift_info), ids, ids,
                [{"label": d, "value": d} for d in trials_with(path, "virtual")], curve_ids,
                *(s.get(k, empty(k, note or ("not enough trials yet" if s else "no Optuna study stored"), study))
                  for k in SEARCH_FIGURES[:3]),
                s.get("pareto", empty("Pareto front", note or "one objective: no front", study)),
                compare.budget(t, search_settings(path), study), header_text(header_info(path, t)))

    @app.callback(Output("search-study", "options"), Input("current", "data"), Input("overview-seen", "data"))
    def optuna_studies(name, _seen):  # apart from the overview, which reads the pick: no circular update
        try:
            return [{"label": n, "value": n} for n in search_studies(resolve(root, name))]
        except StudyRefused:
            return []


@functools.lru_cache(maxsize=8)
def _search(path: str, sig, which: str | None, study: str) -> tuple[dict, str]:  # recomputed when the search state changes
    try:
        st = optuna_storage(path, which)
        figs = search_figures.search_figures(*st, importances=functools.partial(importances, path)) if st else {}
    except Exception as e:  # a damaged optuna.db (or an unreachable database) costs the search figures only
        return {}, (f"the search state cannot be read ({type(e).__name__}: "
                    f"{str(e).splitlines()[0][:200] if str(e) else ''}); the search figures are left out")
    for k, fig in figs.items():
        if k == "history":  # objective values are fractions, trials whole numbers
            fig.update_yaxes(tickformat=".0%")
            fig.update_xaxes(tickformat="d")
        titled(fig, study, f"{fig.layout.title.text or k} ({st[1]})")
    return figs, ""


def _keeping_view(names, values, seen) -> tuple[list, dict]:
    """Each figure among ``values`` as ``view.send`` sends it (a patch keeping the user's zoom when
    the page shows this study's figure of that shape already), and the figures' shapes."""
    shown = (seen or {}).get("shapes", {})
    sent, shapes = [], {}
    for name, value in zip(names, values):
        if name.endswith(".figure"):
            value, shapes[name] = view.send(value, shown.get(name))
        sent.append(value)
    return sent, shapes


def _selected(trials) -> list[str]:
    """The trials of every method's selected configuration (what the comparisons are made of)."""
    return [tid for m in method_summary(trials) for tid in m["trial_ids"]]


def _train_counts(per_class):
    """Training images per class (the first selected trial's: every trial of a study has the same
    training set), for the groups' labels; None when no trial is selected."""
    return next(iter(train_counts(per_class).values()), None)


def _best_list(trials) -> html.Ul:
    """The selected configuration per method, as the sweep's summary lists it, best test first."""
    best = sorted(figures.best_per_method_info(trials), key=lambda b: -b["test_bal_acc"])
    return html.Ul([html.Li(f"{b['method']}: validation {pct(b['val_bal_acc'], 2)}, test {pct(b['test_bal_acc'], 2)} "
                            f"({b['n']} seed{'s' if b['n'] != 1 else ''}) "
                            + ", ".join(f"{k}={v:.4g}" for k, v in b["params"].items()))
                    for b in best])


def _paired(app: dash.Dash, root: str) -> None:
    """The paired comparison (table and figure) and the protocol gap, from the selected
    configurations' trials only, recomputed only when one of their files changed."""

    def compute(path: str, study: str):
        trials, _ = load(path, ("trials",))
        tables, _ = load(path, PAIRED_TABLES, _selected(trials["trials"]))
        tables = {**tables, **trials}
        counts = _train_counts(tables["per_class"])
        view = compare.paired_view(tables)
        return (view["cells"], view["caption"], compare.paired_differences(view, study, train_counts=counts),
                compare.gap_bars(tables, study, train_counts=counts), compare.expert_rows(tables))

    @app.callback(Output("paired", "data"), Output("paired-caption", "children"), Output("paired-diffs", "figure"),
                  Output("gap", "figure"), Output("experts", "data"), Output("paired-seen", "data"),
                  Input("current", "data"), Input("tick", "n_intervals"), State("paired-seen", "data"))
    def paired(name, _tick, seen):
        try:
            path = resolve(root, name)
        except StudyRefused:
            return [], "", empty("", ""), empty("", ""), [], None
        trials, _ = load(path, ("trials",))
        sig = (signature(path, ("trials",)), signature(path, PAIRED_TABLES, _selected(trials["trials"])))
        seeing = repr((name, sig))
        if seen and seeing == seen["state"]:
            raise PreventUpdate
        drawn = shared(("paired", path, sig), lambda: compute(path, name))
        sent, shapes = _keeping_view(("paired.data", "paired-caption.children", "paired-diffs.figure", "gap.figure",
                                      "experts.data"),
                                     drawn, seen if seen and seen["study"] == name else None)
        return (*sent, {"study": name, "state": seeing, "shapes": shapes})


def _trial(app: dash.Dash, root: str) -> None:
    """A clicked trials-table row opens that trial: its card and its curves; until one is
    clicked, the first trial of the best method."""

    @app.callback(Output("trial-card", "children"), Output("trial-curves", "figure"),
                  Input("trials", "active_cell"), Input("current", "data"), Input("trials", "data"))
    def show(cell, name, rows):
        try:
            path = resolve(root, name)
        except StudyRefused:
            return "", empty("", "")
        trials, _ = load(path, ("trials",))
        chosen = (cell or {}).get("row_id") or next(iter(_selected(trials["trials"])), None)
        card = trial_view.trial_card(trials["trials"], chosen)
        if not card:
            return html.P("No trial yet."), empty("Training curves", "no trial yet", name)
        epochs, _ = load(path, ("epochs",), [chosen])
        table = html.Table([html.Tr([html.Th(k, style={"textAlign": "left", "paddingRight": "16px"}), html.Td(v)])
                            for k, v in card], style={"fontSize": "13px"})
        return table, trial_view.curves(trial_view.curves_info(epochs["epochs"], trials["trials"], [chosen]), name)


def _pickers(app: dash.Dash) -> None:
    """A picker shows what its figure draws: until the user picks, its default is ticked (the
    first two trials, or the first one); a pick that is still an option survives refreshes."""
    for picker, multi in (("curve-trials", True), ("pc-trials", True), ("tau-trial", False), ("ve-trial", False),
                          ("search-study", False)):
        def keep(options, value, multi=multi):
            values = [o["value"] for o in options or []]
            if multi:
                kept = [v for v in value or [] if v in values]
                return kept or values[:2]
            return value if value in values else (values[0] if values else None)

        app.callback(Output(picker, "value"), Input(picker, "options"), State(picker, "value"))(keep)


def _chosen_graph(app: dash.Dash, root: str, graph: str, picker: str, table: str, draw) -> None:
    """A graph of the trial(s) ticked above it (their files of ``table`` only)."""

    @app.callback(Output(graph, "figure"), Input(picker, "value"), State("current", "data"))
    def update(chosen, name):
        try:
            path = resolve(root, name)
        except StudyRefused:
            return empty("", "")
        ids = list(chosen) if isinstance(chosen, list) else [chosen] if chosen else []
        trials, _ = load(path, ("trials",))
        picked, _ = load(path, (table,), ids)
        return draw({**trials, **picked}, ids, name)


def _compare_studies(app: dash.Dash, root: str) -> None:
    """Studies side by side (e.g. the same methods at two rho): each method's selected configuration."""

    @app.callback(Output("compare-studies", "options"), Input("study", "options"))
    def options(studies):
        return studies or []

    @app.callback(Output("compare", "data"), Output("compare", "columns"), Input("compare-studies", "value"))
    def table(names):
        summaries = {}
        for name in names or []:
            try:
                summaries[name] = load(resolve(root, name), ("trials",))[0]["trials"]
            except StudyRefused:
                continue
        rows, studies = compare.studies_rows(summaries)
        return rows, [{"name": "method", "id": "method"}, *({"name": f"{s}: test", "id": s} for s in studies)]
