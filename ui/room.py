"""The room: every run on this server, under the names their people go by.

Each browser session goes by a friendly name ("Blue Otter"), made up on its first visit
and changed in the sidebar; the runs it starts carry it (JobManager.submit's label).
`room_answer` is what the /api/room route answers: one summary row per run and the new
points of its curve, read from the job manager's memory only, never from the store.
"""

from __future__ import annotations

import math
import random
import threading
from typing import Any

import plotly.graph_objects as go
import streamlit as st

from rnnlab.jobs import JobManager

from .i18n import N_, _
from .state import manager, owner

COLOURS = (
    N_("Blue"),
    N_("Red"),
    N_("Green"),
    N_("Yellow"),
    N_("Purple"),
    N_("Orange"),
    N_("Silver"),
    N_("Golden"),
    N_("Pink"),
    N_("White"),
    N_("Black"),
    N_("Sky-blue"),
)
ANIMALS = (
    N_("Otter"),
    N_("Fox"),
    N_("Turtle"),
    N_("Owl"),
    N_("Tiger"),
    N_("Panda"),
    N_("Dolphin"),
    N_("Rabbit"),
    N_("Penguin"),
    N_("Whale"),
    N_("Squirrel"),
    N_("Deer"),
    N_("Hedgehog"),
    N_("Seal"),
    N_("Crane"),
    N_("Bear"),
)
MAX_NAME = 40  # characters of a name
MAX_NAMED_OWNERS = 2000  # names remembered for runs started without a label
ROOM_RUNS = 60  # rows at most: every active run first, then the latest that ended
ROOM_ENDED = 30  # ended runs kept in the room
ROOM_CURVE_POINTS = 400  # a run's curve in the room: every k-th step, about this many points

# owner -> the name it goes by now: for runs submitted without a label (a Race's runs).
_names: dict[str, str] = {}
_names_lock = threading.Lock()


def _made_up_name() -> str:
    """A colour and an animal no session on this server goes by yet (if one is left)."""
    with _names_lock:
        taken = set(_names.values())
    names = [
        _("{colour} {animal}").format(colour=_(colour), animal=_(animal))
        for colour in COLOURS
        for animal in ANIMALS
    ]
    free = [name for name in names if name not in taken]
    return random.choice(free or names)


def room_name() -> str:
    """This session's name in the room: made up on first use, changed in the sidebar."""
    if "room_name_made_up" not in st.session_state:
        st.session_state.room_name_made_up = _made_up_name()
    name = st.session_state.get("room_name_chosen") or st.session_state.room_name_made_up
    who = owner()
    with _names_lock:
        _names.pop(who, None)  # put back last: the oldest names are forgotten first
        _names[who] = name
        while len(_names) > MAX_NAMED_OWNERS:
            _names.pop(next(iter(_names)))
    return name


def name_picker() -> None:
    """The sidebar's name box: what the room's view calls this session's runs. (The name
    is kept apart from the box, which Streamlit forgets on a page that does not draw it.)"""

    def chosen() -> None:
        typed = " ".join(str(st.session_state.room_name).split())[:MAX_NAME]
        st.session_state.room_name_chosen = typed

    st.session_state.room_name = room_name()
    st.sidebar.text_input(
        _("Your name in the room"),
        key="room_name",
        max_chars=MAX_NAME,
        on_change=chosen,
        help=_("The Room page shows the runs you start under this name. Nothing else is kept."),
    )


def _seq_len(config: dict[str, Any]) -> int:
    """The time steps a run's sequences have (hello: set by its word)."""
    return len(config["word"]) - 1 if config["task"] == "hello" else config["seq_len"]


def room_answer(manager: JobManager, since: dict[str, int]) -> dict[str, Any]:
    """Every active run and the latest ended ones (ROOM_RUNS at most), each with the
    points of its curve after the step `since` gives for it (0 for a run not given).

    A curve keeps the steps that are multiples of steps/ROOM_CURVE_POINTS (and an ended
    run's last one), so an answer holds at most ROOM_RUNS x ROOM_CURVE_POINTS points
    and a run drawn from several answers is the same as one drawn from one. `seen` is
    the step to ask from next time: the last point sent.
    """
    rows = []
    for progress in manager.queue(finished=ROOM_ENDED)[:ROOM_RUNS]:
        seen = since.get(progress.run_id, 0)
        live = manager.live(progress.run_id, since=seen)
        if live is None:  # forgotten since queue() listed it
            continue
        steps, losses = live["points"]["step"], live["points"]["loss"]
        stride = max(1, math.ceil(progress.steps / ROOM_CURVE_POINTS))
        kept = [i for i, step in enumerate(steps) if step % stride == 0]
        ended = live["status"] not in ("queued", "running")
        if ended and steps and (not kept or kept[-1] != len(steps) - 1):
            kept.append(len(steps) - 1)
        config = progress.config
        rows.append(
            {
                "run_id": progress.run_id,
                "name": progress.label or _names.get(progress.owner),
                "status": live["status"],
                "queue_position": live["queue_position"],
                "task": config["task"],
                "cell": config["cell"],
                "activation": config["activation"],
                "hidden_size": config["hidden_size"],
                "num_layers": config["num_layers"],
                "seq_len": _seq_len(config),
                "lr": config["lr"],
                "step": live["step"],
                "steps": live["steps"],
                "loss": live["loss"],
                "held_out_loss": live["held_out_loss"],
                "solved_at": live["solved_at"],
                "steps_per_s": live["steps_per_s"],
                "points": {"step": [steps[i] for i in kept], "loss": [losses[i] for i in kept]},
                "seen": steps[kept[-1]] if kept else seen,
            }
        )
    return {"runs": rows}


def room_labels() -> dict[str, Any]:
    """What the room's JavaScript view shows, in this session's language."""
    return {
        "columns": {
            "rank": "#",
            "name": _("Name"),
            "status": _("Status"),
            "task": _("Task"),
            "cell": _("Cell"),
            "activation": _("Activation"),
            "hidden_size": _("Hidden size"),
            "num_layers": _("Layers"),
            "seq_len": _("Sequence length"),
            "lr": _("Learning rate"),
            "step": _("Step"),
            "loss": _("Train loss"),
            "held_out_loss": _("Held-out loss"),
            "solved_at": _("Solved at step"),
        },
        "statuses": {
            "queued": _("waiting"),
            "running": _("training"),
            "completed": _("finished"),
            "diverged": _("diverged"),
            "stopped": _("stopped"),
            "interrupted": _("interrupted"),
            "failed": _("failed"),
        },
        "queued_at": _("waiting (#{position})"),
        "anonymous": _("anonymous"),
        "empty": _("No runs yet. Runs started on any page of this server appear here."),
        "step_axis": _("step"),
        "loss_axis": _("loss"),
        "not_solved": "—",
    }


def polled_room(labels: dict[str, Any], *, every_s: float) -> None:
    """The room's table and chart as a fragment that reruns every `every_s`: for a page
    that cannot reach the live routes."""

    @st.fragment(run_every=every_s)
    def room() -> None:
        rows = room_answer(manager(), {})["runs"]
        if not rows:
            st.caption(labels["empty"])
            return
        columns = labels["columns"]
        shown = ("cell", "activation", "hidden_size", "num_layers", "seq_len", "lr", "task")
        names = [row["name"] or labels["anonymous"] for row in rows]
        table = [
            {
                columns["name"]: name,
                columns["status"]: labels["statuses"].get(row["status"], row["status"]),
                **{columns[column]: row[column] for column in shown},
                columns["step"]: row["step"],
                columns["loss"]: row["loss"],
                columns["solved_at"]: row["solved_at"],
            }
            for name, row in zip(names, rows, strict=True)
        ]
        st.dataframe(table, hide_index=True, key="room_table")
        figure = go.Figure(
            [
                go.Scatter(
                    x=row["points"]["step"],
                    y=row["points"]["loss"],
                    mode="lines",
                    name=f"{name} · {row['cell']}",
                )
                for name, row in zip(names, rows, strict=True)
            ]
        )
        figure.update_layout(
            height=420, xaxis_title=labels["step_axis"], yaxis_title=labels["loss_axis"]
        )
        st.plotly_chart(figure, key="room_chart")

    room()
