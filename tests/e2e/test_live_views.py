"""Inside the cell and Race follow their runs live without rerunning the page, and every
view still draws when the live routes cannot be reached (RNNLAB_LIVE_ROUTES=off: the
page feeds its views instead)."""

from __future__ import annotations

import re

import pytest
from harness import (
    ARTIFACTS,
    COUNT_RERUNS_JS,
    distinct_values,
    open_app,
    set_number,
    set_slider,
    start_server,
    wait_idle,
)

RUN_TIMEOUT_MS = 150_000
RERUNS_JS = "() => window.__rnnlabReruns"
SNAPSHOT_STEP_JS = """() => Number(document
    .querySelector('.rnnlab-inside [data-rnnlab-snapshot-step]')
    ?.dataset.rnnlabSnapshotStep ?? -1)"""
GRADIENT_STEP_JS = """() => Number(document.querySelector('[data-rnnlab-gradient-step]')
    ?.dataset.rnnlabGradientStep ?? -1)"""
# Points drawn on the race's small multiples, over every run.
RACE_POINTS_JS = """() => {
    const chart = document.querySelector('.rnnlab-race-chart');
    return chart && chart.data ? chart.data.reduce((n, trace) => n + trace.x.length, 0) : 0;
}"""


def no_exception(page) -> None:
    shown = page.locator('[data-testid="stException"]')
    assert shown.count() == 0, f"exception on the page: {shown.all_inner_texts()}"


def test_inside_the_cell_follows_a_run_live_and_its_selectors_need_no_rerun(
    server, new_page, screenshots
):
    page = new_page()
    query = "cell=lstm&num_layers=2&hidden_size=8&word=recurrent&steps=200000"
    open_app(page, server, query=query)
    page.locator(".st-key-train_start button").click()
    page.wait_for_function(
        "() => Number(document.querySelector('[data-rnnlab-last-step]')"
        "?.dataset.rnnlabLastStep) > 0",
        timeout=RUN_TIMEOUT_MS,
    )
    page.get_by_role("link", name="Inside the cell").click()
    page.locator(".rnnlab-inside").wait_for(timeout=RUN_TIMEOUT_MS)
    wait_idle(page)
    page.evaluate(COUNT_RERUNS_JS)

    steps = distinct_values(page, SNAPSHOT_STEP_JS, 3)
    assert steps == sorted(steps), f"the pictures went back in time: {steps}"
    assert page.locator(".rnnlab-inside .js-plotly-plot").count() >= 3  # heatmaps, charts

    page.locator('.rnnlab-tab[data-layer="1"]').click()
    page.wait_for_function(
        "() => document.querySelector('[data-rnnlab-layer]').dataset.rnnlabLayer === '1'"
    )
    distinct_values(page, SNAPSHOT_STEP_JS, 2)  # layer 2's pictures, still live
    page.locator("select.rnnlab-range-from").select_option("2")
    page.wait_for_function(
        "() => document.querySelector('[data-rnnlab-units]').dataset.rnnlabUnits.startsWith('2-')"
    )
    gradients = distinct_values(page, GRADIENT_STEP_JS, 2, timeout_s=40)
    assert gradients == sorted(gradients)
    assert page.evaluate(RERUNS_JS) == 0, "watching or choosing a layer reran the page"
    no_exception(page)
    page.screenshot(path=screenshots / "inside-live.png", full_page=True)

    page.get_by_role("link", name="Train").click()
    page.locator(".st-key-train_stop button").click()
    page.get_by_text("Stopped at step").wait_for(timeout=RUN_TIMEOUT_MS)


def test_a_race_fills_in_live_without_a_rerun_and_ends_with_its_grid(server, new_page, screenshots):
    page = new_page()
    open_app(page, server, "race")
    page.locator(".st-key-race_preset_button button").click()
    page.wait_for_url(re.compile(r"task=adding"))
    wait_idle(page)
    set_number(page, "race_steps", 2000)
    page.wait_for_url(re.compile(r"steps=2000\b"))
    set_slider(page, "Sequence length", 10)
    page.wait_for_url(re.compile(r"seq_len=10\b"))
    wait_idle(page)

    page.locator(".st-key-race_start button").click()
    page.wait_for_function(
        "() => Number(document.querySelector('[data-rnnlab-race-runs]')"
        "?.dataset.rnnlabRaceRuns) === 3",
        timeout=RUN_TIMEOUT_MS,
    )
    wait_idle(page)
    page.evaluate(COUNT_RERUNS_JS)
    points = distinct_values(page, RACE_POINTS_JS, 3)
    reruns = page.evaluate(RERUNS_JS)
    done = page.evaluate(
        "() => document.querySelector('[data-rnnlab-race-done]').dataset.rnnlabRaceDone"
    )
    assert points == sorted(points)
    # A rerun before this moment is only allowed if the race had ended by then.
    assert reruns == 0 or done == "3", "the race page reran while training"

    page.get_by_text("3 of 3 runs finished").wait_for(timeout=RUN_TIMEOUT_MS)
    grid = page.locator(".rnnlab-race-grid.js-plotly-plot")
    grid.wait_for(timeout=RUN_TIMEOUT_MS)
    rows = grid.evaluate("(plot) => Array.from(plot.data[0].y).map(String)")
    assert sorted(rows) == ["gru", "lstm", "rnn"]
    page.locator('[data-testid="stDataFrame"]').wait_for(timeout=RUN_TIMEOUT_MS)
    assert page.evaluate(RERUNS_JS) <= 1, "more than the one rerun that shows the result"
    no_exception(page)
    page.screenshot(path=screenshots / "race-result.png", full_page=True)


@pytest.fixture(scope="module")
def server_without_routes(chromium, tmp_path_factory):
    """The app as a proxy that forwards only Streamlit's own paths would serve it."""
    home = tmp_path_factory.mktemp("rnnlab-home-no-routes")
    log = ARTIFACTS / "e2e-server-no-routes.log"
    running = start_server(home, log, env={"RNNLAB_LIVE_ROUTES": "off"})
    yield running
    running.stop()


def test_without_the_live_routes_the_page_feeds_the_same_views(
    server_without_routes, new_page, screenshots
):
    server = server_without_routes
    page = new_page()
    open_app(page, server, query="cell=gru&hidden_size=8&steps=8000")
    page.locator(".st-key-train_start button").click()
    page.get_by_text(re.compile("Live updates by polling the page")).wait_for(
        timeout=RUN_TIMEOUT_MS
    )
    steps = distinct_values(
        page,
        "() => Number(document.querySelector('[data-rnnlab-last-step]')"
        "?.dataset.rnnlabLastStep ?? -1)",
        3,
    )
    assert steps == sorted(steps)
    page.locator("[data-rnnlab-snapshot-step]").first.wait_for(timeout=RUN_TIMEOUT_MS)
    page.get_by_text("Finished 8,000 steps").wait_for(timeout=RUN_TIMEOUT_MS)
    wait_idle(page)
    assert page.locator(".rnnlab-metric").count() == 4  # the view's numbers, fed
    no_exception(page)
    page.screenshot(path=screenshots / "train-fed.png", full_page=True)

    page.get_by_role("link", name="Inside the cell").click()
    page.locator(".rnnlab-inside [data-rnnlab-snapshot-step]").wait_for(timeout=RUN_TIMEOUT_MS)
    assert page.evaluate(SNAPSHOT_STEP_JS) == 8000
    page.wait_for_function(
        "() => Number(document.querySelector('[data-rnnlab-gradient-step]')"
        "?.dataset.rnnlabGradientStep) === 8000",
        timeout=RUN_TIMEOUT_MS,
    )
    no_exception(page)
