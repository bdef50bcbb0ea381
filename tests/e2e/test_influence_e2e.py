"""Which inputs the prediction uses, and where the hidden state travels: drawn on Train
and on Inside the cell, updated live without rerunning the page, and the paths' slider
moves over the run's snapshots. Its screenshot (artifacts/) is README's influence.png."""

from __future__ import annotations

from harness import COUNT_RERUNS_JS, distinct_values, open_app, wait_idle

RUN_TIMEOUT_MS = 150_000
RERUNS_JS = "() => window.__rnnlabReruns"
INFLUENCE_STEP_JS = """() => Number(document
    .querySelector('.rnnlab-inside [data-rnnlab-influence-step]')
    ?.dataset.rnnlabInfluenceStep ?? -1)"""
TRAIN_INFLUENCE_STEP_JS = """() => Number(document.querySelector('[data-rnnlab-influence-step]')
    ?.dataset.rnnlabInfluenceStep ?? -1)"""
PATH_STEP_JS = """() => Number(document.querySelector('[data-rnnlab-trajectory-step]')
    ?.dataset.rnnlabTrajectoryStep ?? -1)"""
SNAPSHOTS_JS = """() => Number(document.querySelector('[data-rnnlab-trajectory-snapshots]')
    ?.dataset.rnnlabTrajectorySnapshots ?? 0)"""
# Stars at the marked positions on the influence chart, and lines drawn on it.
MARKED_JS = """() => {
    const chart = document.querySelector('[data-rnnlab-influence-step]');
    const stars = (chart?.data || []).filter((t) => t.marker && t.marker.symbol === 'star');
    return stars.length ? stars[0].x.length : 0;
}"""


def move_slider(page, index: int) -> None:
    page.evaluate(
        """(index) => {
            const slider = document.querySelector('.rnnlab-trajectory-slider');
            slider.value = String(index);
            slider.dispatchEvent(new Event('input', { bubbles: true }));
        }""",
        index,
    )


def test_influence_and_paths_draw_and_follow_an_adding_lstm_live(server, new_page, screenshots):
    page = new_page()
    query = "task=adding&cell=lstm&hidden_size=32&seq_len=30&steps=200000&lr=0.01&clip=1.0"
    open_app(page, server, query=query)
    page.locator(".st-key-train_start button").click()
    # Train: the influence of each input step on the last prediction, marked positions starred.
    page.locator("[data-rnnlab-influence-step]").wait_for(timeout=RUN_TIMEOUT_MS)
    assert page.evaluate(TRAIN_INFLUENCE_STEP_JS) > 0
    assert page.evaluate(MARKED_JS) == 8  # two per probe sequence, four sequences

    page.get_by_role("link", name="Inside the cell").click()
    page.locator(".rnnlab-inside [data-rnnlab-influence-step]").wait_for(timeout=RUN_TIMEOUT_MS)
    wait_idle(page)
    page.evaluate(COUNT_RERUNS_JS)
    influence = distinct_values(page, INFLUENCE_STEP_JS, 2)
    assert influence == sorted(influence), f"influence went back in time: {influence}"
    paths = distinct_values(page, PATH_STEP_JS, 2)
    assert paths == sorted(paths)
    history = page.evaluate(
        "() => Number(document.querySelector('[data-rnnlab-influence-history]')"
        ".dataset.rnnlabInfluenceHistory)"
    )
    assert history >= 2, "the influence across training has a row per snapshot"

    # The slider: back to the first snapshot on these axes, and forward again.
    page.wait_for_function(f"() => ({SNAPSHOTS_JS})() >= 2", timeout=60_000)
    latest = page.evaluate(PATH_STEP_JS)
    move_slider(page, 0)
    page.wait_for_function(f"() => ({PATH_STEP_JS})() < {latest}")
    first = page.evaluate(PATH_STEP_JS)
    count = page.evaluate(SNAPSHOTS_JS)
    move_slider(page, count - 1)
    page.wait_for_function(f"() => ({PATH_STEP_JS})() >= {latest}")
    assert first < latest
    axis = page.evaluate(
        "() => document.querySelector('[data-rnnlab-trajectory-step]').layout.xaxis.title.text"
    )
    assert axis.startswith("PC1 (") and "%" in axis, axis
    assert page.evaluate(RERUNS_JS) == 0, "the live views or the slider reran the page"
    shown = page.locator('[data-testid="stException"]')
    assert shown.count() == 0, shown.all_inner_texts()

    page.set_viewport_size({"width": 1400, "height": 2300})
    page.locator(".rnnlab-influence").evaluate("(node) => node.scrollIntoView()")
    page.wait_for_timeout(1500)  # Plotly's charts follow the new width
    page.screenshot(path=screenshots / "influence.png")  # README's, when it is retaken

    page.get_by_role("link", name="Train").click()
    page.locator(".st-key-train_stop button").click()
    page.get_by_text("Stopped at step").wait_for(timeout=RUN_TIMEOUT_MS)
