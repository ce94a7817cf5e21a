"""Send a figure so that the user's view of it survives: zoom, pan and hidden legend entries.

Dash 4's ``dcc.Graph`` writes a zoom back into its ``figure`` prop, and Plotly's ``uirevision``
keeps only the GUI edits the figure does not set itself, so a whole new figure from the server
resets the zoom at every refresh. A refresh of the same study therefore sends a ``Patch``: new
traces and layout, except each axis's range, which stays what the user made it. A figure whose
layout changed shape (an empty state becoming a plot, other axes) is sent whole.
"""

from __future__ import annotations

import json
import re

import plotly.graph_objects as go
from dash import Patch

AXIS = re.compile(r"^[xy]axis\d*$")
VIEW = ("range", "autorange")  # what a zoom or a double-click changes


def shape(layout: dict) -> str:
    """What a patch cannot change: the layout's keys, each axis's keys and any range the figure sets itself."""
    out = {}
    for k, v in sorted(layout.items()):
        if k == "template":
            continue
        if AXIS.match(k) and isinstance(v, dict):
            out[k] = sorted(v) + [json.dumps(v.get(r), default=str) for r in VIEW]
        else:
            out[k] = None
    return json.dumps(out)


def send(fig: go.Figure, shown: str | None) -> tuple[go.Figure | Patch, str]:
    """(what to send, the figure's shape): a patch keeping the axes' ranges when the page shows
    a figure of this shape already (``shown``), else the whole figure."""
    d = fig.to_plotly_json()
    s = shape(d["layout"])
    if s != shown:
        return fig, s
    p = Patch()
    p["data"] = d["data"]
    for k, v in d["layout"].items():
        if AXIS.match(k) and isinstance(v, dict):
            for kk, vv in v.items():
                if kk not in VIEW:
                    p["layout"][k][kk] = vv
        else:
            p["layout"][k] = v
    return p, s
