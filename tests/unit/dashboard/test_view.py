"""A refresh of the same figure is a patch that leaves the axes' ranges (the user's zoom) alone."""

import plotly.graph_objects as go
from dash import Patch

from dashboard import view
from dashboard.style import empty, titled


def _bars(y):
    fig = go.Figure(go.Bar(x=["a", "b"], y=y))
    return titled(fig, "fx", "bars")


def test_first_send_is_the_whole_figure():
    fig = _bars([1, 2])
    sent, shape = view.send(fig, None)
    assert sent is fig and shape


def test_same_shape_sends_a_patch_without_the_axes_ranges():
    _, shape = view.send(_bars([1, 2]), None)
    sent, again = view.send(_bars([3, 4]), shape)
    assert isinstance(sent, Patch) and again == shape
    ops = sent.to_plotly_json()["operations"]
    locations = [tuple(o["location"]) for o in ops]
    assert ("data",) in locations and ("layout", "title") in locations
    assert not [loc for loc in locations if loc[-1] in view.VIEW]  # range and autorange stay the user's
    assert [o for o in ops if o["location"] == ["data"]][0]["params"]["value"][0]["y"] == [3, 4]


def test_a_new_shape_or_a_set_range_is_sent_whole():
    _, shape = view.send(_bars([1, 2]), None)
    sent, _ = view.send(empty("bars", "no trial yet", "fx"), shape)  # the empty state has hidden axes
    assert isinstance(sent, go.Figure)
    fixed = _bars([1, 2]).update_yaxes(range=[0, 100])
    _, fixed_shape = view.send(fixed, shape)
    sent, _ = view.send(_bars([1, 2]).update_yaxes(range=[0, 50]), fixed_shape)
    assert isinstance(sent, go.Figure)  # the figure's own range changed: not the user's to keep
