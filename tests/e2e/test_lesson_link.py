"""A lesson link in a real Chromium: the controls it hides are not on the page, the others
are, and Train trains with the link's values for the hidden ones, also after the student
has gone to another page and back (which drops the address's query)."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

from harness import open_app, wait_idle
from helpers import until

from rnnlab.store import RunStore

LESSON = {
    "task": "hello",
    "cell": "gru",
    "activation": "sigmoid",
    "hidden_size": "4",
    "steps": "30",
    "hide": "cell,activation",
}
HIDDEN = ("cell", "activation", "preset")  # a lesson also leaves the preset picker out
SHOWN = ("task", "word", "hidden_size", "num_layers", "lr", "optimizer", "steps", "seed")


def controls(page) -> dict[str, int]:
    """How many of each form control the page shows, by setting name."""
    names = (*HIDDEN, *SHOWN)
    return {name: page.locator(f".st-key-train_{name}").count() for name in names}


def assert_lesson_form(page) -> None:
    shown = controls(page)
    assert all(shown[name] == 0 for name in HIDDEN), shown
    assert all(shown[name] == 1 for name in SHOWN), shown
    sidebar = page.get_by_test_id("stSidebar")
    assert sidebar.get_by_text("Set by this lesson: Cell, Activation").count() == 1


def train_one(page, store: RunStore):
    """Press Train; the new run's record once the store has it completed."""
    before = {run.id for run in store.list_runs()}
    page.locator(".st-key-train_start button").click()

    def finished():
        new = [run for run in store.list_runs() if run.id not in before]
        return new[0] if new and new[0].status == "completed" else None

    run = until(finished, what="the run to complete")
    wait_idle(page)
    return run


def test_a_lesson_link_hides_its_controls_and_trains_with_its_values(server, new_page, screenshots):
    page = new_page()
    open_app(page, server, query="&".join(f"{k}={v}" for k, v in LESSON.items()))
    assert page.locator('[data-testid="stException"]').count() == 0
    assert_lesson_form(page)
    assert parse_qs(urlsplit(page.url).query)["hide"] == ["cell,activation"]

    with RunStore(server.home / "runs.sqlite") as store:
        run = train_one(page, store)
        assert (run.config["cell"], run.config["activation"]) == ("gru", "sigmoid")
        assert (run.config["hidden_size"], run.config["steps"]) == (4, 30)
        page.screenshot(path=screenshots / "train-lesson.png", full_page=True)

        # To Learn and back through the navigation: the query goes, the lesson stays.
        nav = page.get_by_test_id("stSidebarNav")
        nav.get_by_role("link", name="Learn").click()
        page.locator("h1").filter(has_text="Learn").first.wait_for()
        wait_idle(page)
        nav.get_by_role("link", name="Train").click()
        page.locator(".st-key-train_start").wait_for()
        wait_idle(page)
        assert_lesson_form(page)
        page.wait_for_url(re.compile(r"hide=cell(%2C|,)activation"))

        again = train_one(page, store)
        assert (again.config["cell"], again.config["activation"]) == ("gru", "sigmoid")
