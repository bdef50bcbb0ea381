"""The names people go by in the room.

Each browser session goes by a friendly name ("Blue Otter"), made up on its first visit
and changed in the sidebar; the job manager keeps it (JobManager.name) and the runs the
session starts carry it, on the Room page and in a race.
"""

from __future__ import annotations

import random

import streamlit as st

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


def _made_up_name() -> str:
    """A colour and an animal no session on this server goes by yet (if one is left)."""
    taken = manager().names()
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
    manager().name(owner(), name)
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
