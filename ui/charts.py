"""Plotly figure builders: plain data in, a Figure out (no Streamlit calls here).

Titles and axis labels are in the session's language (ui.i18n), chosen when built."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .i18n import N_, _

GATE_TITLES = {  # shown with _(): gate_title()
    "i": N_("input gate i"),
    "f": N_("forget gate f"),
    "g": N_("candidate g"),
    "o": N_("output gate o"),
    "c": N_("cell state c"),
    "h": N_("hidden state h"),
    "r": N_("reset gate r"),
    "z": N_("update gate z"),
    "n": N_("candidate n"),
    "pre": N_("pre-activation"),
}
COLOURS = ["#4C78A8", "#F58518", "#54A24B", "#E45756", "#72B7B2", "#B279A2", "#FF9DA6"]
MAX_POINTS = 1500
# Figures get plain lists, never pandas/NumPy integer arrays: plotly.py encodes those as
# typed int64 arrays, which plotly.js in the browser does not draw.


def gate_title(name: str) -> str:
    """The title of a gate or state (by its letter), in the session's language."""
    return _(GATE_TITLES[name]) if name in GATE_TITLES else name


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


def loss_figure(
    steps: pd.DataFrame,
    evaluations: pd.DataFrame,
    *,
    baseline: float | None = None,
    baseline_label: str | None = None,
    solved_at: int | None = None,
    total_steps: int | None = None,
) -> go.Figure:
    """Training loss per step, held-out loss per evaluation, the task's baseline line."""
    figure = go.Figure()
    steps = thin(steps)
    figure.add_scatter(
        x=steps["step"].tolist(),
        y=steps["loss"].tolist(),
        name=_("train loss"),
        mode="lines",
        line=dict(color=COLOURS[0], width=1.5),
    )
    if len(evaluations):
        figure.add_scatter(
            x=evaluations["step"].tolist(),
            y=evaluations["loss"].tolist(),
            name=_("held-out loss"),
            mode="lines+markers",
            line=dict(color=COLOURS[1], width=2),
            marker=dict(size=5),
        )
    if baseline is not None:
        figure.add_hline(
            y=baseline,
            line=dict(color="#888", dash="dash"),
            annotation_text=f"{baseline_label or _('baseline')}: {baseline:.3g}",
            annotation_position="top right",
        )
    if solved_at is not None:
        figure.add_vline(
            x=solved_at,
            line=dict(color=COLOURS[2], width=2),
            annotation_text=_("solved at step {step}").format(step=solved_at),
            annotation_position="top left",
        )
    positive = steps["loss"].dropna()
    log = len(positive) > 0 and (positive > 0).all()
    figure.update_xaxes(title=_("step"), range=[0, total_steps] if total_steps else None)
    figure.update_yaxes(title=_("loss"), type="log" if log else "linear")
    return _layout(figure, height=340)


def gate_heatmaps(layer: dict[str, Any], kept: dict[str, Any], *, names: list[str]) -> go.Figure:
    """Time × unit heatmaps of one layer's gates and states for the probe sequence."""
    columns = min(len(names), 3)
    rows = math.ceil(len(names) / columns)
    figure = make_subplots(
        rows=rows,
        cols=columns,
        subplot_titles=[gate_title(n) for n in names],
        horizontal_spacing=0.06,
        vertical_spacing=0.26 if rows > 1 else 0.14,
    )
    steps, units = kept.get("steps"), kept.get("units")
    unit = _("unit")
    for index, name in enumerate(names):
        values = np.array(layer[name], dtype=float).T  # (units, steps)
        bounded = name in ("i", "f", "o", "r", "z")
        figure.add_heatmap(
            z=values,
            x=steps,
            y=units,
            row=index // columns + 1,
            col=index % columns + 1,
            colorscale="Viridis" if bounded else "RdBu",
            zmin=0 if bounded else None,
            zmax=1 if bounded else None,
            zmid=None if bounded else 0,
            showscale=index == 0,
            colorbar=dict(len=0.5, thickness=10),
            hovertemplate=f"t=%{{x}} {unit}=%{{y}}: %{{z:.3f}}<extra>{name}</extra>",
        )
    figure.update_xaxes(title_text=_("time step"), title_standoff=2)
    figure.update_yaxes(title_text=unit, title_standoff=2)
    return _layout(figure, height=270 * rows)


def gradient_figure(gradient_norms: list[list[float | None]], steps: list[int]) -> go.Figure:
    """‖∂L/∂h_t‖ across time steps, one line per layer, log scale."""
    figure = go.Figure()
    for layer, norms in enumerate(gradient_norms):
        figure.add_scatter(
            x=steps,
            y=norms,
            name=_("layer {layer}").format(layer=layer + 1),
            mode="lines+markers",
            line=dict(color=COLOURS[layer % len(COLOURS)]),
            marker=dict(size=4),
        )
    figure.update_xaxes(title=_("time step t"))
    figure.update_yaxes(title="‖∂L/∂h_t‖", type="log", exponentformat="power")
    return _layout(figure)


def gradient_history_figure(history: list[tuple[int, list[float | None]]], steps: list[int]):
    """How the gradient-through-time profile of layer 1 changed over training."""
    figure = go.Figure()
    count = len(history)
    for index, (step, norms) in enumerate(history):
        shade = 0.25 + 0.75 * (index + 1) / count
        figure.add_scatter(
            x=steps,
            y=norms,
            name=_("step {step}").format(step=step),
            mode="lines",
            line=dict(color=f"rgba(76,120,168,{shade:.2f})"),
        )
    figure.update_xaxes(title=_("time step t"))
    figure.update_yaxes(title=_("‖∂L/∂h_t‖ (layer 1)"), type="log", exponentformat="power")
    return _layout(figure)


def saturation_figure(saturation: dict[str, dict[str, Any]]) -> go.Figure:
    """Per unit: fraction of time steps a gate is < 0.1 (x) against > 0.9 (y)."""
    figure = go.Figure()
    for index, (gate, values) in enumerate(saturation.items()):
        figure.add_scatter(
            x=values["left"],
            y=values["right"],
            name=gate_title(gate),
            mode="markers",
            marker=dict(size=7, opacity=0.7, color=COLOURS[index % 7]),
        )
    figure.add_shape(type="line", x0=0, y0=1, x1=1, y1=0, line=dict(color="#bbb", dash="dot"))
    figure.update_xaxes(title=_("fraction of time steps < 0.1 (closed)"), range=[-0.03, 1.03])
    figure.update_yaxes(title=_("fraction of time steps > 0.9 (open)"), range=[-0.03, 1.03])
    return _layout(figure, height=360)


def predictions_figure(predictions: dict[str, Any]) -> go.Figure | None:
    """Predicted against true values (adding, sine); None for the character tasks."""
    if predictions.get("kind") == "last_value":
        true, predicted = predictions["target"], predictions["predicted"]
        figure = go.Figure()
        figure.add_scatter(x=true, y=predicted, mode="markers", name=_("sequences"))
        finite = [v for v in [*true, *predicted] if v is not None and math.isfinite(v)]
        low, high = min([*finite, 0]), max([*finite, 2])
        figure.add_shape(type="line", x0=low, y0=low, x1=high, y1=high, line=dict(dash="dot"))
        figure.update_xaxes(title=_("true sum"))
        figure.update_yaxes(title=_("predicted sum"))
        return _layout(figure, height=300)
    if "predicted" in predictions and "target" in predictions:
        figure = go.Figure()
        figure.add_scatter(y=predictions["target"], name=_("true next value"), mode="lines")
        figure.add_scatter(y=predictions["predicted"], name=_("predicted"), mode="lines")
        if "input" in predictions:
            figure.add_scatter(
                y=predictions["input"],
                name=_("input"),
                mode="lines",
                line=dict(color="#bbb", dash="dot"),
            )
        figure.update_xaxes(title=_("time step"))
        return _layout(figure, height=300)
    return None


def next_symbol_table(predictions: dict[str, Any]) -> pd.DataFrame | None:
    """Per step: input, target and the top next characters with their probabilities."""
    if predictions.get("kind") != "next_symbol":
        return None
    headers = [_("input"), _("target"), _("top guesses"), _("right")]
    rows = []
    for t, (seen, target, top) in enumerate(
        zip(predictions["input"], predictions["target"], predictions["top"], strict=False)
    ):
        guesses = ",  ".join(f"{_visible(symbol)} {p:.0%}" for symbol, p in top)
        values = [_visible(seen), _visible(target), guesses, top[0][0] == target]
        rows.append({"t": t, **dict(zip(headers, values, strict=True))})
    return pd.DataFrame(rows)


def _visible(symbol: str) -> str:
    return {"\n": "⏎", " ": "␣"}.get(symbol, symbol)


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
            name=label,
            mode="lines",
            line=dict(color=COLOURS[index % len(COLOURS)]),
        )
    figure.update_xaxes(title=_("step"))
    figure.update_yaxes(title=title or y, type="log")
    return _layout(figure, height=380)


def parallel_coordinates(
    frame: pd.DataFrame,
    dimensions: list[str],
    colour: str,
    *,
    labels: dict[str, str] | None = None,
) -> go.Figure:
    """Hyperparameters against the result, one line per run (axes titled by `labels`)."""
    labels = labels or {}
    axes = []
    for name in dimensions:
        column = frame[name]
        label = labels.get(name, name)
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


def grid_heatmap(table: pd.DataFrame, *, title: str) -> go.Figure:
    """A result grid: rows × columns of one field against another."""
    figure = go.Figure(
        go.Heatmap(
            z=table.values,
            x=[str(c) for c in table.columns],
            y=[str(i) for i in table.index],
            colorscale="Viridis_r",
            text=np.vectorize(lambda v: f"{v:.3g}")(table.values),
            texttemplate="%{text}",
            hovertemplate="%{y} × %{x}: %{z:.4g}<extra></extra>",
        )
    )
    figure.update_xaxes(title=table.columns.name, type="category")
    figure.update_yaxes(title=table.index.name, type="category")
    return _layout(figure, height=300, title=title)


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


def small_multiples(curves: dict[str, pd.DataFrame], *, columns: int = 3) -> go.Figure:
    """One small training-loss chart per run, sharing the axes."""
    rows = max(1, math.ceil(len(curves) / columns))
    figure = make_subplots(
        rows=rows,
        cols=columns,
        subplot_titles=list(curves),
        shared_xaxes=True,
        shared_yaxes=True,
        vertical_spacing=0.12 / rows + 0.04,
    )
    for index, frame in enumerate(curves.values()):
        frame = thin(frame, 400)
        figure.add_scatter(
            x=frame["step"].tolist(),
            y=frame["loss"].tolist(),
            mode="lines",
            showlegend=False,
            line=dict(color=COLOURS[index % len(COLOURS)], width=1.5),
            row=index // columns + 1,
            col=index % columns + 1,
        )
    figure.update_yaxes(type="log")
    figure.update_annotations(font_size=11)
    return _layout(figure, height=180 * rows + 60)
