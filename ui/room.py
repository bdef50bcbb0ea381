"""The names people go by in the room.

Each browser session goes by a friendly name ("Blue Otter"), made up on its first visit
and changed in the sidebar. No two sessions go by names alike: the room's names
(rnnlab.jobs.names) give a name already taken a suffix, and this module shows the name
given. The job manager keeps it too (JobManager.name), and the runs the session starts
carry it, on the Room page and in a race.

The instructor: where RNNLAB_INSTRUCTOR_KEY is set (in the environment or Streamlit's
secrets), a session opened with ?instructor=<that key> is the instructor's. Its name is
marked (INSTRUCTOR_MARK) and reserved while it is connected; the key leaves the address.
"""

from __future__ import annotations

import hmac
import os
import random

import streamlit as st

from rnnlab.jobs.names import MAX_NAME, clean_name, name_key

from .i18n import N_, _
from .state import manager, owner, room_names

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
INSTRUCTOR_KEY = "RNNLAB_INSTRUCTOR_KEY"
INSTRUCTOR_PARAM = "instructor"


def _made_up_name() -> str:
    """A colour and an animal no session on this server goes by yet (if one is left)."""
    taken = {name_key(name) for name in room_names().names()}
    names = [
        _("{colour} {animal}").format(colour=_(colour), animal=_(animal))
        for colour in COLOURS
        for animal in ANIMALS
    ]
    free = [name for name in names if name_key(name) not in taken]
    return random.choice(free or names)


def instructor_key() -> str | None:
    """RNNLAB_INSTRUCTOR_KEY from the environment, else from Streamlit's secrets; None
    where neither sets it (then nobody is the instructor)."""
    key = os.environ.get(INSTRUCTOR_KEY, "").strip()
    if not key and st.secrets.load_if_toml_exists():
        key = str(st.secrets.get(INSTRUCTOR_KEY, "")).strip()
    return key or None


def is_instructor() -> bool:
    """Whether this session is the instructor's: opened with ?instructor=<the key>. The
    parameter is taken out of the address at once, right or wrong, so that no share link
    or screenshot of the address bar carries it."""
    if INSTRUCTOR_PARAM in st.query_params:
        offered = st.query_params[INSTRUCTOR_PARAM]
        del st.query_params[INSTRUCTOR_PARAM]
        key = instructor_key()
        if key is not None and hmac.compare_digest(offered.encode(), key.encode()):
            st.session_state.instructor = True
    return bool(st.session_state.get("instructor"))


def room_name() -> str:
    """This session's name in the room, as given: made up on first use, changed in the
    sidebar, with a suffix if another session holds one alike."""
    if "room_name_made_up" not in st.session_state:
        st.session_state.room_name_made_up = _made_up_name()
    wanted = st.session_state.get("room_name_chosen") or st.session_state.room_name_made_up
    session = owner()
    return manager().name(session, wanted, instructor=is_instructor())


def name_picker() -> None:
    """The sidebar's name box: what the room's view calls this session's runs. (The name
    is kept apart from the box, which Streamlit forgets on a page that does not draw it.)"""

    def chosen() -> None:
        st.session_state.room_name_chosen = clean_name(st.session_state.room_name)

    st.session_state.room_name = room_name()
    st.sidebar.text_input(
        _("Your name in the room"),
        key="room_name",
        max_chars=MAX_NAME,
        on_change=chosen,
        help=_("The Room page shows the runs you start under this name. Nothing else is kept."),
    )
