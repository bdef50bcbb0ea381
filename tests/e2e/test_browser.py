"""The dashboard in a real Chromium against a real `streamlit run app.py`.

Every page opens without an exception page; on Train, sliders move, Train starts a run in
the server's pool and the loss chart grows while it trains; a shared link reproduces a
run exactly; bad links and uploads get messages. Screenshots of
every page go to artifacts/screenshots/.
"""

from __future__ import annotations

import contextlib
import re
import time

import pytest
from harness import last_loss_step, open_app, set_number, set_slider, wait_idle

from rnnlab.store import RunStore

EXCEPTION = '[data-testid="stException"]'
PAGES = {
    "train": ("", "Train a recurrent network"),
    "inside": ("inside", "Inside the cell"),
    "compare": ("compare", "Compare runs"),
    "race": ("race", "Race"),
    "learn": ("learn", "Learn"),
}
RUN_TIMEOUT_MS = 150_000
SAMPLE_EVERY_MS = 200


def assert_no_exception(page) -> None:
    shown = page.locator(EXCEPTION)
    assert shown.count() == 0, f"exception on the page: {shown.all_inner_texts()}"


def heading(page, text: str):
    return page.locator("h1").filter(has_text=text).first


# Train: live ------------------------------------------------------------------------------


def test_train_chart_updates_live_during_a_run(server, new_page, screenshots):
    page = new_page()
    open_app(page, server)
    set_slider(page, "Hidden size", 4)
    page.wait_for_url(re.compile(r"hidden_size=4\b"))
    page.locator(".st-key-train_cell").get_by_text("rnn", exact=True).click()
    page.wait_for_url(re.compile(r"cell=rnn"))
    set_number(page, "train_steps", 20000)
    page.wait_for_url(re.compile(r"steps=20000"))
    wait_idle(page)
    assert page.get_by_role("slider", name="Hidden size").get_attribute("aria-valuetext") == "4"

    page.locator(".st-key-train_start button").click()
    seen: list[int] = []
    deadline = time.monotonic() + RUN_TIMEOUT_MS / 1000
    while time.monotonic() < deadline and len(set(seen)) < 4:
        step = last_loss_step(page)
        if step > 0 and (not seen or step != seen[-1]):
            seen.append(step)
        page.wait_for_timeout(SAMPLE_EVERY_MS)
    assert page.get_by_text("Finished").count() == 0, "the run ended before 4 updates"
    assert len(set(seen)) >= 3, f"the loss chart showed only {seen} while training"
    assert seen == sorted(seen), f"the curve went back in time: {seen}"
    caption = page.get_by_text(re.compile(r"[\d,]+ steps recorded")).first.inner_text()
    assert int(caption.split()[0].replace(",", "")) > 0
    assert_no_exception(page)

    page.locator(".st-key-train_stop button").click()
    page.get_by_text("Stopped at step").wait_for(timeout=RUN_TIMEOUT_MS)
    assert_no_exception(page)
    page.screenshot(path=screenshots / "train-stopped.png", full_page=True)


# A room ---------------------------------------------------------------------------------

ROOM_WORDS = ["hello", "recurrent", "memory"]
RUN_OF_CHART_JS = """() => {
    const chart = document.querySelector('[data-rnnlab-run]');
    return chart ? [chart.dataset.rnnlabRun, Number(chart.dataset.rnnlabLastStep)] : null;
}"""


def test_a_room_of_tabs_each_gets_its_own_run_and_a_closed_tab_stops(server, browser):
    """Three sessions train at once; each chart follows its own run; closing one tab
    stops that tab's run (RNNLAB_ORPHAN_AFTER_S=5 on the test server), not the others."""
    contexts, pages = [], []
    try:
        for word in ROOM_WORDS:
            context = browser.new_context()
            context.set_default_timeout(60_000)
            page = context.new_page()
            open_app(page, server, query=f"word={word}&steps=20000&hidden_size=4")
            contexts.append(context)
            pages.append(page)
        for page in pages:
            page.locator(".st-key-train_start button").click()
        charts = []
        for page in pages:
            page.wait_for_function(
                "() => Number(document.querySelector('[data-rnnlab-last-step]')"
                "?.dataset.rnnlabLastStep) > 0",
                timeout=RUN_TIMEOUT_MS,
            )
            charts.append(page.evaluate(RUN_OF_CHART_JS))
        run_ids = [run_id for run_id, _ in charts]
        assert len(set(run_ids)) == len(ROOM_WORDS), f"tabs share runs: {run_ids}"
        store = RunStore(server.home / "runs.sqlite")
        for run_id, word in zip(run_ids, ROOM_WORDS, strict=True):
            assert store.get_run(run_id).config["word"] == word
        for page in pages:
            assert_no_exception(page)

        contexts[0].close()  # the first person closes their tab
        deadline = time.monotonic() + RUN_TIMEOUT_MS / 1000
        while time.monotonic() < deadline and store.get_run(run_ids[0]).status == "running":
            time.sleep(0.5)
        closed = store.get_run(run_ids[0])
        assert closed.status == "stopped" and "stopped watching" in (closed.error or "")
        for run_id, page in zip(run_ids[1:], pages[1:], strict=True):
            assert store.get_run(run_id).status == "running", "an open tab's run stopped"
            before = page.evaluate(RUN_OF_CHART_JS)[1]
            page.wait_for_function(
                f"() => Number(document.querySelector('[data-rnnlab-last-step]')"
                f"?.dataset.rnnlabLastStep) > {before}"
            )
            page.locator(".st-key-train_stop button").click()
            page.get_by_text("Stopped at step").wait_for(timeout=RUN_TIMEOUT_MS)
        store.close()
    finally:
        for context in contexts:
            with contextlib.suppress(Exception):
                context.close()


# Shared link --------------------------------------------------------------------------


SHARED = {
    "task": "hello",
    "word": "hello",
    "cell": "rnn",
    "hidden_size": "6",
    "lr": "0.01",
    "steps": "120",
    "seed": "3",
}


def test_a_shared_link_reproduces_a_run(server, new_page, screenshots):
    query = "&".join(f"{k}={v}" for k, v in SHARED.items())
    tabs = [new_page(), new_page()]
    for tab in tabs:
        open_app(tab, server, query=query)
        assert tab.get_by_role("slider", name="Hidden size").get_attribute("aria-valuetext") == "6"
        tab.wait_for_function(  # the number input may show its first value a moment longer
            "() => document.querySelector('.st-key-train_steps input')?.value === '120'",
            timeout=10_000,
        )
        tab.locator(".st-key-train_start button").click()
    finals = []
    for tab in tabs:
        tab.get_by_text("Finished 120 steps").wait_for(timeout=RUN_TIMEOUT_MS)
        wait_idle(tab)
        assert_no_exception(tab)
        metrics = tab.locator(".rnnlab-metric")  # the live view's numbers
        finals.append(
            [
                metrics.filter(has_text=label).first.locator(".rnnlab-metric-value").inner_text()
                for label in ("Train loss", "Held-out loss", "Accuracy")
            ]
        )
    assert finals[0] == finals[1], f"the same link gave different results: {finals}"
    tabs[0].screenshot(path=screenshots / "train-finished.png", full_page=True)

    with RunStore(server.home / "runs.sqlite") as store:
        runs = [
            run
            for run in store.list_runs()
            if all(str(run.config[k]) == v for k, v in SHARED.items())
        ]
        assert len(runs) == 2 and runs[0].owner != runs[1].owner
        assert runs[0].summary["final_loss"] == runs[1].summary["final_loss"]
        first, second = (store.history(run.id)["loss"].tolist() for run in runs)
        assert first == second and len(first) == 120


# Bad input --------------------------------------------------------------------------------


def test_a_bad_link_gives_notes_not_an_exception(server, new_page):
    page = new_page()
    open_app(page, server, query="hidden_size=99999&cell=banana&lr=abc")
    heading(page, "Train").wait_for()
    alerts = page.locator('[data-testid="stAlert"]')
    for name in ("hidden_size", "cell", "lr"):
        assert alerts.filter(has_text=name).count() >= 1, f"no note about {name}"
    assert page.get_by_role("slider", name="Hidden size").get_attribute("aria-valuetext") == "512"
    assert_no_exception(page)


def test_a_binary_upload_gives_a_message(server, new_page):
    page = new_page()
    open_app(page, server, query="task=text")
    upload = page.locator('.st-key-train_upload input[type="file"]')
    upload.set_input_files(
        files=[{"name": "photo.txt", "mimeType": "text/plain", "buffer": b"\x00\x01\x02" * 100}]
    )
    page.get_by_text("looks binary").wait_for(timeout=RUN_TIMEOUT_MS)
    assert_no_exception(page)


# Every page (after the runs above, so Inside and Compare have something to show) -------


@pytest.mark.parametrize("name", list(PAGES))
def test_every_page_opens_without_an_exception(server, new_page, screenshots, name):
    path, title = PAGES[name]
    page = new_page()
    open_app(page, server, path)
    heading(page, title).wait_for()
    assert heading(page, title).is_visible()
    page.wait_for_timeout(500)
    wait_idle(page)
    assert_no_exception(page)
    # Streamlit scrolls inside the page, so a tall window is what shows all of it.
    page.set_viewport_size({"width": 1400, "height": 2600})
    page.wait_for_timeout(500)
    wait_idle(page)
    assert_no_exception(page)
    page.screenshot(path=screenshots / f"{name}.png")
