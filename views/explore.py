"""Explore: search many settings at once (Optuna), watch the trials live, see what matters.

The study's trials are ordinary runs in the shared pool; one browser view (live.js, the
"study" view) polls GET /api/studies/NAME and draws everything, so the page never reruns
per update. rnnlab.tune (Optuna) is imported only by this page and by that route.
"""

from __future__ import annotations

import secrets
from typing import Any

import streamlit as st

from rnnlab.config import ConfigError, RunConfig, field_spec
from rnnlab.tune import (
    OBJECTIVES,
    PRUNERS,
    SAMPLERS,
    SEARCHABLE,
    UNSOLVED_PENALTY,
    SearchSpace,
    StudyNotFound,
    StudySettings,
    param,
    study_view,
)
from rnnlab.tune.importance import EVALUATORS, evaluator_available
from rnnlab.tune.space import DEFAULT_RANGES, LOG_SCALE
from ui import answers, live
from ui.i18n import N_, _, ngettext, translator
from ui.labels import SETTING_NAMES, objective_label
from ui.room import room_name
from ui.state import DEFAULTS, lesson, manager, owner, widget_key
from ui.text import markdown_format, plain
from ui.widgets import NO_PRESET

PAGE = "explore"
STUDY = "study"  # ?study=NAME reopens a study
TRIALS = (1, 100, 20)  # min, max, default trials a person adds at once
STEPS = (10, 20_000, 500)  # min, max, default steps per trial
# The values a numeric setting's range slider offers: log-spaced where it is searched on
# a log scale, so that a factor of two is as wide at 8 units as at 256.
LADDERS: dict[str, tuple[float, ...]] = {
    "hidden_size": (1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
    "batch_size": (1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
    "seq_len": (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
    "lr": (1e-6, 3e-6, 1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, 3.0, 10.0),
    "clip": (0.0, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 1000.0),
}
DEFAULT_SEARCH = ("cell", "hidden_size", "lr")
DEFAULT_CHOICES = {"init": ["default", "orthogonal"]}  # identity/forget_bias suit one cell each
SAMPLER_LABELS = {
    "tpe": N_("TPE — learns from the finished trials"),
    "random": N_("random"),
    "grid": N_("grid — every combination (3 values per number)"),
    "nsga2": N_("NSGA-II — evolutionary"),
}
PRUNER_LABELS = {
    "halving": N_("successive halving — stop the worst early"),
    "median": N_("median — stop trials behind the median"),
    "none": N_("none — every trial trains to the end"),
}
OBJECTIVE_LABELS = {
    "loss": N_("final held-out loss"),
    "metric": N_("final held-out metric"),
    "steps_to_solve": N_("steps to solve"),
}
EVALUATOR_LABELS = {
    "main-effect": N_("main effect (fast, the default)"),
    "ped-anova": N_("PED-ANOVA (where the best 10 % lie)"),
    "fanova": N_("fANOVA (random forest, slow)"),
}
# "What matters on the adding problem?": three cells, their sizes and learning rates, at
# T = 50; 20 trials of 1,500 steps, TPE with the median pruner. Successive halving took 62 s
# on 2 cores but stopped 18 of the 20 trials at their first evaluation, and only complete
# trials tell what matters; the median pruner lets the first five finish, then stops the
# trials behind them.
PRESET = {
    "train": dict(task="adding", seq_len=50, batch_size=32, clip=1.0, stop_when_solved=False),
    "search": {"cell": ["rnn", "lstm", "gru"], "hidden_size": (8, 64), "lr": (1e-3, 3e-2)},
    "trials": 20,
    "steps": 1500,
    "sampler": "tpe",
    "pruner": "median",
    "objective": "loss",
}


def key(name: str) -> str:
    return f"explore_{name}"


def train_config() -> RunConfig:
    """The Train page's current settings (this session's), with what a lesson fixes."""
    values = {
        name: st.session_state.get(widget_key(name, "train"), default)
        for name, default in DEFAULTS.to_dict().items()
        if name not in ("text_file", "eval_every")
    }
    values.update(lesson().values)
    try:
        return DEFAULTS.replace(**values)
    except ConfigError:
        return DEFAULTS.replace(**lesson().values)


def searchable(base: RunConfig) -> list[str]:
    """What this page may search: not what a lesson fixes, nor what the word sets (hello)."""
    fixed = set(lesson().hidden)
    if base.task == "hello":
        fixed |= {"batch_size", "seq_len"}
    return [name for name in SEARCHABLE if name not in fixed]


def setting_label(name: str) -> str:
    return _(SETTING_NAMES[name])


def load_preset() -> None:
    fixed = set(lesson().hidden)
    for name, value in PRESET["train"].items():
        if name not in fixed:
            st.session_state[widget_key(name, "train")] = value
    st.session_state[widget_key("preset", "train")] = NO_PRESET
    for name in SEARCHABLE:
        st.session_state[key(f"search_{name}")] = name in PRESET["search"]
    for name, chosen in PRESET["search"].items():
        st.session_state[key(f"range_{name}")] = chosen
    for name in ("trials", "steps", "sampler", "pruner", "objective"):
        st.session_state[key(name)] = PRESET[name]


def range_default(name: str) -> Any:
    """A setting's range or choices before anyone moves them: DEFAULT_RANGES (or every
    choice). A range slider is a range by its `value`, so it always gets this one; what
    the widget holds in session state (moved, or set by the preset) wins over it."""
    spec = field_spec(name)
    if "choices" in spec:
        return DEFAULT_CHOICES.get(name, list(spec["choices"]))
    return DEFAULT_RANGES.get(name, spec["range"])


def range_widget(name: str) -> Any:
    """The range (or the choices) of one searched setting."""
    spec = field_spec(name)
    label, value, widget = setting_label(name), range_default(name), key(f"range_{name}")
    if "choices" in spec:
        st.session_state.setdefault(widget, value)
        return st.multiselect(label, spec["choices"], key=widget)
    if name in LADDERS:
        scale = _("log scale") if name in LOG_SCALE else _("linear scale")
        return st.select_slider(
            f"{label} ({scale})",
            LADDERS[name],
            value=tuple(value),
            key=widget,
            format_func=lambda v: f"{v:g}",
        )
    return st.slider(label, *spec["range"], value=tuple(value), key=widget)


def searched(name: str, value: Any) -> Any:
    """One searched setting from its widget's value: choices, or a (low, high) range."""
    if "choices" in field_spec(name):
        return param(name, choices=list(value))
    low, high = value if isinstance(value, (tuple, list)) else (value, value)
    return param(name, low=low, high=high)


def search_form(base: RunConfig) -> StudySettings | None:
    """Which settings to search and over what; the budget and the search's method.
    The settings, or None (with the reason shown) when RunConfig refuses them."""
    names = searchable(base)
    st.markdown("**" + _("Search") + "**")
    params: dict[str, Any] = {}
    columns = st.columns(2)
    for index, name in enumerate(names):
        with columns[index % 2]:
            st.session_state.setdefault(key(f"search_{name}"), name in DEFAULT_SEARCH)
            if st.checkbox(setting_label(name), key=key(f"search_{name}")):
                params[name] = range_widget(name)
    left = [name for name in SEARCHABLE if name not in names]
    if left:
        shown = ", ".join(setting_label(name) for name in left)
        st.caption(
            _("Not searchable here (a lesson or the word sets them): {names}.").format(names=shown)
        )
    columns = st.columns(5)
    trials_low, trials_high, trials_default = TRIALS
    st.session_state.setdefault(key("trials"), trials_default)
    columns[0].number_input(_("Trials"), trials_low, trials_high, key=key("trials"))
    steps_low, steps_high, steps_default = STEPS
    st.session_state.setdefault(key("steps"), max(steps_low, min(base.steps, steps_high)))
    steps = columns[1].number_input(
        _("Steps per trial"), steps_low, steps_high, step=100, key=key("steps")
    )
    sampler = columns[2].selectbox(
        _("Sampler"), SAMPLERS, format_func=translator(SAMPLER_LABELS), key=key("sampler")
    )
    pruner = columns[3].selectbox(
        _("Pruner"), PRUNERS, format_func=translator(PRUNER_LABELS), key=key("pruner")
    )
    objective = columns[4].selectbox(
        _("Objective"), OBJECTIVES, format_func=translator(OBJECTIVE_LABELS), key=key("objective")
    )
    st.caption(
        _("Objective: {objective}.").format(
            objective=objective_label(objective, steps=steps, penalty=UNSOLVED_PENALTY)
        )
    )
    fixed = {
        name: value
        for name, value in base.to_dict().items()
        if name not in params and name not in ("steps", "text_file", "eval_every", "word")
    }
    st.caption(
        markdown_format(
            _("Fixed from the Train page: {settings}."),
            settings=", ".join(f"{name}={value}" for name, value in fixed.items()),
        )
    )
    try:
        if not params:
            raise ConfigError(_("Tick at least one setting to search."))
        space = SearchSpace({name: searched(name, value) for name, value in params.items()})
        return StudySettings(
            space, base.replace(steps=steps), sampler=sampler, pruner=pruner, objective=objective
        )
    except ConfigError as error:
        st.error(plain(error))
        return None


def open_from_url() -> None:
    """?study=NAME opens that study, or says there is none of that name."""
    asked = st.query_params.get(STUDY)
    if asked is None or asked == st.session_state.get(key("study")):
        return
    try:
        answers.open_study(manager(), asked)
    except (StudyNotFound, ConfigError):
        st.error(
            markdown_format(
                _(
                    "There is no study named `{name}` on this server. Check the link, or "
                    "start a new study below."
                ),
                name=asked[:64],
            ),
            icon=":material/search_off:",
        )
        del st.query_params[STUDY]
        return
    st.session_state[key("study")] = asked


def start(settings: StudySettings) -> None:
    """A new study with these settings, and this session's trials in it."""
    name = f"explore-{secrets.token_hex(4)}"
    answers.open_study(manager(), name, settings)
    add_mine(name, st.session_state[key("trials")])
    st.session_state[key("study")] = name
    st.query_params[STUDY] = name


def add_mine(name: str, trials: int) -> None:
    try:
        answers.add_trials(manager(), name, owner(), int(trials), room_name())
    except ConfigError as error:
        st.error(plain(error))


def apply_best(runner: Any) -> bool:
    """Set the Train page's settings to the best trial's (the study's base with them;
    the word and uploaded text stay this session's own). False if none has completed."""
    best = study_view(runner)["best"]
    if best is None:
        return False
    mine = train_config()
    base = runner.settings.base.replace(word=mine.word, text_file=mine.text_file)
    config = runner.settings.space.config(base, best["params"])
    fixed = set(lesson().hidden)
    for name, value in config.to_dict().items():
        if name not in fixed and name not in ("text_file", "eval_every"):
            st.session_state[widget_key(name, "train")] = value
    st.session_state[widget_key("preset", "train")] = NO_PRESET
    return True


def describe(runner: Any) -> str:
    """A study's settings in a line: what it searches, how, and toward what."""
    settings = runner.settings
    searched = ", ".join(setting_label(p.name) for p in settings.space.params.values())
    return _(
        "Searches {searched} on the {task} task, {steps} steps per trial; sampler {sampler}, "
        "pruner {pruner}; objective: {objective}."
    ).format(
        searched=searched,
        task=settings.base.task,
        steps=f"{settings.base.steps:,}",
        sampler=_(SAMPLER_LABELS[settings.sampler]),
        pruner=_(PRUNER_LABELS[settings.pruner]),
        objective=objective_label(
            settings.objective, steps=settings.base.steps, penalty=UNSOLVED_PENALTY
        ),
    )


def study_panel(name: str) -> None:
    """The open study: add trials, stop them, share, apply the best, and the live view."""
    runner = answers.open_study(manager(), name)
    if st.query_params.get(STUDY) != name:
        st.query_params[STUDY] = name  # the address reopens it
    st.subheader(markdown_format(_("Study `{name}`"), name=name))
    st.caption(describe(runner))
    columns = st.columns([1, 1, 1, 2, 1])
    trials_low, trials_high, trials_default = TRIALS
    trials = columns[0].number_input(
        _("Trials to add"), trials_low, trials_high, trials_default, key=key("add_trials")
    )
    if columns[1].button(
        _("Start"),
        icon=":material/play_arrow:",
        type="primary",
        key=key("add"),
        help=_("Adds your trials to this study, under your name in the room."),
    ):
        add_mine(name, trials)
    if columns[2].button(_("Stop"), icon=":material/stop:", key=key("stop")):
        stopped = runner.stop(owner())
        st.info(
            ngettext(
                "Stopped your trials ({n} was training).",
                "Stopped your trials ({n} were training).",
                stopped,
            ).format(n=stopped)
        )
    if columns[3].button(
        _("Apply the best trial to Train"), icon=":material/model_training:", key=key("apply")
    ):
        if apply_best(runner):
            st.switch_page("views/train.py")
        st.warning(_("No trial has completed yet: there is no best to apply."))
    with columns[4].popover(_("Share"), icon=":material/group_add:"):
        share(name)
    evaluator = st.selectbox(
        _("What matters, by"),
        EVALUATORS,
        format_func=translator(EVALUATOR_LABELS),
        key=key("evaluator"),
    )
    if evaluator_available(evaluator) is not None:
        st.warning(
            _(
                "fANOVA needs scikit-learn, which this server does not have "
                "(pip install scikit-learn); showing nothing for it."
            )
            if evaluator == "fanova"
            else plain(evaluator_available(evaluator))
        )
    live.fed_notice()
    live_study(runner, name, evaluator)


def share(name: str) -> None:
    """The study's link, and a place for it in the room's list of studies."""
    base = (st.context.url or "").split("?")[0]
    st.caption(
        _(
            "Anyone opening this link sees the study live; pressing Start adds their own "
            "trials to it, under their name in the room."
        )
    )
    st.code(f"{base}?{STUDY}={name}", language=None)
    if st.button(_("Share this study with the room"), icon=":material/groups:", key=key("share")):
        answers.share_study(manager(), name, room_name())
        st.success(_("The room sees it at the top of their Explore page."))


def live_study(runner: Any, name: str, evaluator: str) -> None:
    """The study drawn live by live.js from its route; fed by the page where the routes
    cannot be reached."""
    settings = runner.settings
    live.study_view(
        name,
        active=runner.busy(),
        evaluator=evaluator,
        objective=objective_label(
            settings.objective, steps=settings.base.steps, penalty=UNSOLVED_PENALTY
        ),
        key=key(name),
        page=PAGE,
    )


st.title(_("Explore: which settings matter?"))
st.caption(
    _(
        "Search many settings at once: Optuna picks each trial's settings from what the "
        "finished trials taught it, stops bad trials early, and the page says which "
        "settings matter, with honest uncertainty. Trials train in the shared pool."
    )
)
open_from_url()
shared = [
    entry
    for entry in answers.shared_studies(manager())
    if entry[0] != st.session_state.get(key("study"))
]
if shared:
    st.markdown("**" + _("Studies shared with the room") + "**")
    columns = st.columns(min(4, len(shared)))
    for index, (name, by) in enumerate(shared):
        label = markdown_format(_("{study} by {name}"), study=name, name=by or _("anonymous"))
        if columns[index % 4].button(label, key=key(f"open_{name}")):
            st.session_state[key("study")] = name
            st.query_params[STUDY] = name
            st.rerun()

current = st.session_state.get(key("study"))
st.button(
    _("Preset: what matters on the adding problem?"),
    icon=":material/travel_explore:",
    on_click=load_preset,
    key=key("preset"),
)
base = train_config()
with st.expander(_("New study"), expanded=current is None, icon=":material/tune:"):
    settings = search_form(base)
    if st.button(
        _("Start a new study"),
        icon=":material/play_arrow:",
        type="primary",
        disabled=settings is None,
        key=key("start"),
    ):
        start(settings)
        current = st.session_state[key("study")]

if current:
    try:
        study_panel(current)
    except StudyNotFound:
        st.error(_("That study is no longer on this server."))
        st.session_state.pop(key("study"), None)
else:
    st.caption(
        _(
            "Pick the settings to search and press **Start a new study**; or open a study "
            "someone shared: its link ends in ?study=NAME."
        )
    )
