"""One vocabulary for every figure and table of the dashboard: percent with a % sign, one colour
per shot group and one per method (the same in every figure), shot-group labels that say how
many classes each holds, the study's name in every title, and a one-line figure for an empty
state. Every figure keeps its zoom and legend across refreshes (``uirevision``: the study)."""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go

from ltray.core.metrics import FEW_SHOT, MANY_SHOT, OVERALL, SHOT_GROUPS
from ltray.report import group_masks

SHOT_COLORS = {"many": "#1b9e77", "medium": "#d95f02", "few": "#7570b3", OVERALL: "#555555"}
"""Shot groups (Dark2): many green, medium orange, few purple, overall grey, in every figure."""
METHOD_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                 "#bcbd22", "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd",
                 "#e6550d", "#31a354", "#756bb1", "#636363", "#9c9ede", "#e7ba52", "#ad494a", "#6baed6")
"""One per method, by the method's place among the registered methods: a method keeps its colour
whichever study, figure or subset of methods is shown."""
FIGURE_HEIGHT = 420  # px of a figure with content; an empty state is one line
EMPTY_HEIGHT = 60


METHODS = ("balanced_softmax", "balpoe", "bsce_cbs", "cb_ce", "cb_focal", "ce", "ce_wd", "crt", "dive", "drs",
           "equalization", "focal", "lade", "ldam_drw", "logit_adjusted", "lws", "mixup", "remix", "reweight", "ride",
           "sade", "wb")
"""The registered methods (``ltray.methods.method_names()``, which the dashboard may not import;
a test keeps the two equal): a method's colour is its place here."""


def method_color(method: str) -> str:
    base = method.split(" + ")[0]  # "ce + post-hoc LA" is drawn in CE's colour family
    i = METHODS.index(base) if base in METHODS else sum(map(ord, base))  # a method of one's own: stable across processes
    return METHOD_COLORS[i % len(METHOD_COLORS)]


def pct(v, digits: int = 1) -> str:
    """A fraction as percent with its sign ("84.0%"); "" for a missing value."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return f"{v * 100:.{digits}f}%"


def pct_ci(s: dict, digits: int = 1) -> str:
    """A ``mean_ci`` dict as "84.0% ± 1.2" (the interval's half-width in points), or "84.0%" for one seed."""
    if s["n"] == 0:
        return ""
    return pct(s["mean"], digits) + (f" ± {s['ci95'] * 100:.{digits}f}" if s["n"] > 1 else "")


def shot_labels(train_counts=None) -> dict[str, str]:
    """Each shot group's label, with its class count when the training counts are known:
    "few (<20 images: 3 classes)"."""
    rule = {"many": f">{MANY_SHOT} images", "medium": f"{FEW_SHOT}-{MANY_SHOT} images", "few": f"<{FEW_SHOT} images"}
    out = {OVERALL: "overall (balanced)"}
    masks = group_masks(np.asarray(train_counts)) if train_counts is not None and len(train_counts) else {}
    for g in SHOT_GROUPS:
        n = int(masks[g].sum()) if g in masks else None
        out[g] = f"{g} ({rule[g]}" + (f": {n} class{'es' if n != 1 else ''})" if n is not None else ")")
    return out


def titled(fig: go.Figure, study: str, title: str, height: int = FIGURE_HEIGHT) -> go.Figure:
    """The study's name in the title (an exported PNG says which study it is), the height, and
    the zoom and legend kept across refreshes of the same study."""
    fig.update_layout(title=f"{study}: {title}" if study else title, height=height, uirevision=study or "none",
                      margin=fig.layout.margin.to_plotly_json() or dict(t=60, b=50, l=60, r=20))
    return fig


def empty(title: str, note: str, study: str = "") -> go.Figure:
    """An empty state: one line saying why, not a screen of blank axes."""
    fig = go.Figure()
    fig.update_layout(annotations=[dict(text=f"{title}: {note}" if title else note, showarrow=False, x=0, y=0.5,
                                        xref="paper", yref="paper", xanchor="left")],
                      xaxis_visible=False, yaxis_visible=False, height=EMPTY_HEIGHT, plot_bgcolor="white", margin=dict(t=10, b=10, l=10, r=10),
                      uirevision=study or "none")
    return fig


def graph_config(name: str) -> dict:
    """dcc.Graph's config: the PNG download is named after the figure (the study is in its title)."""
    return {"toImageButtonOptions": {"format": "png", "filename": name, "scale": 2}, "displaylogo": False}
