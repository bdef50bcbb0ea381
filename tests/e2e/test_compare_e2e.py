"""Compare in a real Chromium: a selection follows its runs, not its row positions.

A person selects a run in the table; before they press Delete someone else's run lands at
the top of the newest-first table. Delete must remove exactly the run they selected.
"""

from __future__ import annotations

from harness import open_app, wait_idle
from helpers import until

from rnnlab.config import RunConfig
from rnnlab.store import RunStore

ROW_HEIGHT_PX = 35  # the data grid's rows, header included
ROW_MARKER_X_PX = 15  # the middle of the checkbox column of a row-selecting grid


def train_one(page, store: RunStore) -> str:
    """Press Train and return the new run's id once the store has it completed."""
    before = {run.id for run in store.list_runs()}
    page.locator(".st-key-train_start button").click()

    def finished():
        new = [run for run in store.list_runs() if run.id not in before]
        return new[0].id if new and new[0].status == "completed" else None

    run_id = until(finished, what="the run to complete")
    wait_idle(page)
    return run_id


def select_row(page, row: int) -> None:
    """Tick the checkbox of the table's row `row` (0 = the first row under the header)."""
    grid = page.locator('[data-testid="stDataFrame"]').first
    grid.wait_for()
    grid.click(position={"x": ROW_MARKER_X_PX, "y": ROW_HEIGHT_PX * (row + 1.5)})


def overlaid(page) -> list[str]:
    """The run-id prefixes of the curves on the overlay chart."""
    chart = page.locator(".st-key-compare_overlay .js-plotly-plot").last
    chart.wait_for()
    names = "(plot) => plot._fullData?.map((trace) => trace.name.split(' ')[0])"
    return until(lambda: chart.evaluate(names), what="the overlay chart", timeout=30)


def test_delete_removes_the_selected_run_after_a_new_run_appears(server, new_page, screenshots):
    page = new_page()
    open_app(page, server, query="word=hello&cell=rnn&hidden_size=4&steps=30")
    with RunStore(server.home / "runs.sqlite") as store:
        older = train_one(page, store)
        newer = train_one(page, store)
        me = store.get_run(older).owner

        # Same browser session: the navigation link, not a new page load.
        page.get_by_test_id("stSidebarNav").get_by_role("link", name="Compare").click()
        page.locator("h1").filter(has_text="Compare runs").wait_for()
        wait_idle(page)
        shown = [run.id for run in store.list_runs()]  # the table's order: newest first
        assert shown.index(newer) < shown.index(older)
        select_row(page, shown.index(older))
        delete = page.locator(".st-key-compare_delete button")
        delete.wait_for()
        assert "Delete 1 " in delete.inner_text()
        wait_idle(page)
        assert overlaid(page) == [older[:8]]

        # Someone else's run lands at the top of the table before the click.
        theirs = store.create_run(RunConfig(task="hello", steps=5), owner="someone-else")
        store.finish(theirs, "completed")
        assert theirs != me and store.list_runs()[0].id == theirs

        # Any rerun now (here: another curve) shows the new table, the same run selected.
        page.locator(".st-key-compare_curve").get_by_text("held-out loss").click()
        wait_idle(page)
        assert overlaid(page) == [older[:8]]
        page.screenshot(path=screenshots / "compare-selected.png", full_page=True)

        delete.click()
        until(lambda: len(store.list_runs()) <= len(shown), what="a run to go", timeout=30)
        wait_idle(page)
        left = {run.id for run in store.list_runs()}
        page.screenshot(path=screenshots / "compare-after-delete.png", full_page=True)
        assert older not in left, "the selected run is still there"
        assert newer in left, "Delete removed a run that was not selected"
        assert theirs in left, "Delete removed someone else's run"
        assert len(left) == len(shown), "Delete removed more than the selected run"
        assert page.locator('[data-testid="stException"]').count() == 0
