"""Plotly figures of what is not live: runs compared, the Learn page's diagrams.

Plain data in, a Figure out (no Streamlit calls here); titles and axis labels are in the
session's language (ui.i18n), chosen when built. Labels that come from data (a run's
label, a column's values) go in as text, never as Plotly's markup (ui.text.plotly_text).
Every live or finished run's pictures are drawn in the browser by ui/live.js."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from .i18n import _
from .text import plotly_text

COLOURS = ["#4C78A8", "#F58518", "#54A24B", "#E45756", "#72B7B2", "#B279A2", "#FF9DA6"]
MAX_POINTS = 1500
# Figures get plain lists, never pandas/NumPy integer arrays: plotly.py encodes those as
# typed int64 arrays, which plotly.js in the browser does not draw.


def thin(frame: pd.DataFrame, limit: int = MAX_POINTS) -> pd.DataFrame:
    """Every k-th row (and the last) so a chart never ships more than `limit` points."""
    if len(frame) <= limit:
        return frame
    stride = math.ceil(len(frame) / limit)
    return pd.concat([frame.iloc[::stride], frame.iloc[[-1]]]).drop_duplicates("step")


def _layout(figure: go.Figure, *, height: int = 320, **extra: Any) -> go.Figure:
    figure.update_layout(
        height=height,
        margin=dict(l=10, r=10, t=40, b=10),
        legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0),
        **extra,
    )
    return figure


def overlay_figure(
    curves: dict[str, pd.DataFrame], *, y: str = "loss", title: str = ""
) -> go.Figure:
    """Several runs' curves on one chart."""
    figure = go.Figure()
    for index, (label, frame) in enumerate(curves.items()):
        frame = thin(frame, 800)
        figure.add_scatter(
            x=frame["step"].tolist(),
            y=frame[y].tolist(),
            name=plotly_text(label),
            mode="lines",
            line=dict(color=COLOURS[index % len(COLOURS)]),
        )
    figure.update_xaxes(title=_("step"))
    figure.update_yaxes(title=plotly_text(title or y), type="log")
    return _layout(figure, height=380)


def parallel_coordinates(
    frame: pd.DataFrame,
    dimensions: list[str],
    colour: str,
    *,
    labels: dict[str, str] | None = None,
) -> go.Figure:
    """Hyperparameters against the result, one line per run (axes titled by `labels`).
    Plotly reads markup in an axis's title but shows its tick texts as they are."""
    labels = labels or {}
    axes = []
    for name in dimensions:
        column = frame[name]
        label = plotly_text(labels.get(name, name))
        if not pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
            categories = sorted(column.astype(str).unique())
            codes = column.astype(str).map({c: i for i, c in enumerate(categories)})
            axes.append(
                dict(
                    label=label,
                    values=codes.tolist(),
                    tickvals=list(range(len(categories))),
                    ticktext=categories,
                )
            )
        else:
            axes.append(dict(label=label, values=column.astype(float).tolist()))
    figure = go.Figure(
        go.Parcoords(
            line=dict(
                color=frame[colour].astype(float).tolist(), colorscale="Viridis", showscale=True
            ),
            dimensions=axes,
        )
    )
    return _layout(figure, height=380)


def activation_figure(derivatives: bool) -> go.Figure:
    """sigmoid, tanh and relu (or their derivatives) on [-5, 5]."""
    x = np.linspace(-5, 5, 401)
    sigmoid = 1 / (1 + np.exp(-x))
    curves = {
        "sigmoid": sigmoid * (1 - sigmoid) if derivatives else sigmoid,
        "tanh": 1 - np.tanh(x) ** 2 if derivatives else np.tanh(x),
        "relu": (x > 0).astype(float) if derivatives else np.maximum(x, 0),
    }
    figure = go.Figure()
    for index, (name, y) in enumerate(curves.items()):
        label = f"{name}′" if derivatives else name
        figure.add_scatter(x=x, y=y, name=label, line=dict(color=COLOURS[index], width=2.5))
    if derivatives:
        figure.add_hline(
            y=0.25,
            line=dict(dash="dot", color=COLOURS[0]),
            annotation_text="sigmoid′ ≤ 0.25",
            annotation_position="top left",
        )
        figure.add_hline(
            y=1.0,
            line=dict(dash="dot", color=COLOURS[1]),
            annotation_text="tanh′ ≤ 1",
            annotation_position="bottom right",
        )
        figure.update_yaxes(range=[-0.05, 1.2])
    else:
        figure.update_yaxes(range=[-1.2, 3])
    figure.update_xaxes(title="x")
    return _layout(figure, height=320)


def unrolled_figure(
    seq_len: int, layers: int, *, cell: str = "RNN", max_steps: int = 8
) -> go.Figure:
    """The network unrolled in time: x_t below, a cell per layer and step, arrows h_t."""
    shown = list(range(min(seq_len, max_steps)))
    if seq_len > max_steps:
        shown = shown[: max_steps - 2] + [seq_len - 1]
    figure = go.Figure()
    width, height = 1.0, 0.6
    for column, t in enumerate(shown):
        x = column * 1.6
        figure.add_annotation(
            x=x, y=-1.1, text=f"x<sub>{t}</sub>", showarrow=False, font=dict(size=14)
        )
        figure.add_annotation(
            x=x,
            y=-0.35,
            ax=x,
            ay=-0.95,
            xref="x",
            yref="y",
            axref="x",
            ayref="y",
            showarrow=True,
            arrowhead=2,
            text="",
        )
        for layer in range(layers):
            y = layer * 1.4
            figure.add_shape(
                type="rect",
                x0=x - width / 2,
                x1=x + width / 2,
                y0=y - height / 2,
                y1=y + height / 2,
                fillcolor=COLOURS[layer % 7],
                opacity=0.85,
                line=dict(color="#333"),
            )
            figure.add_annotation(x=x, y=y, text=cell, showarrow=False, font=dict(color="white"))
            label = f"h<sub>{t}</sub><sup>({layer + 1})</sup>"
            figure.add_annotation(
                x=x,
                y=y + height / 2 + 0.4,
                ax=x,
                ay=y + height / 2,
                xref="x",
                yref="y",
                axref="x",
                ayref="y",
                showarrow=True,
                arrowhead=2,
                text=label,
                font=dict(size=12),
            )
            if column + 1 < len(shown):
                gap = column == len(shown) - 2 and shown[-1] != shown[-2] + 1
                figure.add_annotation(
                    x=x + 1.6 - width / 2,
                    y=y,
                    ax=x + width / 2,
                    ay=y,
                    xref="x",
                    yref="y",
                    axref="x",
                    ayref="y",
                    showarrow=True,
                    arrowhead=2,
                    text="⋯" if gap else "",
                )
    figure.update_xaxes(visible=False, range=[-1, len(shown) * 1.6 - 0.6])
    figure.update_yaxes(visible=False, range=[-1.5, layers * 1.4 + 0.2])
    return _layout(figure, height=160 + 110 * layers, showlegend=False)


def folded_figure(layers: int, *, cell: str = "RNN") -> go.Figure:
    """The network folded: one cell per layer whose output h_t loops back as its input at
    the next step (the study note's left-hand picture; unrolled_figure is the right)."""
    figure = go.Figure()
    width, height = 1.0, 0.6
    x = 0.0
    figure.add_annotation(x=x, y=-1.1, text="x<sub>t</sub>", showarrow=False, font=dict(size=14))
    figure.add_annotation(
        x=x, y=-0.35, ax=x, ay=-0.95, xref="x", yref="y", axref="x", ayref="y",
        showarrow=True, arrowhead=2, text="",
    )  # fmt: skip
    for layer in range(layers):
        y = layer * 1.4
        figure.add_shape(
            type="rect", x0=x - width / 2, x1=x + width / 2, y0=y - height / 2,
            y1=y + height / 2, fillcolor=COLOURS[layer % 7], opacity=0.85,
            line=dict(color="#333"),
        )  # fmt: skip
        figure.add_annotation(x=x, y=y, text=cell, showarrow=False, font=dict(color="white"))
        figure.add_annotation(
            x=x, y=y + height / 2 + 0.4, ax=x, ay=y + height / 2, xref="x", yref="y",
            axref="x", ayref="y", showarrow=True, arrowhead=2,
            text=f"h<sub>t</sub><sup>({layer + 1})</sup>", font=dict(size=12),
        )  # fmt: skip
        right, top, bottom = x + width / 2, y + 0.15, y - 0.15
        figure.add_shape(
            type="path",
            path=f"M {right},{top} C {right + 0.7},{top + 0.3} {right + 0.7},{bottom - 0.3} "
            f"{right + 0.02},{bottom}",
            line=dict(color="#333", width=1.5),
        )
        figure.add_annotation(
            x=right, y=bottom, ax=right + 0.25, ay=bottom - 0.12, xref="x", yref="y",
            axref="x", ayref="y", showarrow=True, arrowhead=2, text="",
        )  # fmt: skip
        figure.add_annotation(
            x=right + 0.75, y=y, text=f"h<sub>t−1</sub><sup>({layer + 1})</sup>",
            showarrow=False, xanchor="left", font=dict(size=11),
        )  # fmt: skip
    figure.update_xaxes(visible=False, range=[-0.9, 2.0])
    figure.update_yaxes(visible=False, range=[-1.5, layers * 1.4 + 0.2])
    return _layout(figure, height=160 + 110 * layers, showlegend=False)
