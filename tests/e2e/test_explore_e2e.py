"""The Explore page in a real Chromium: the preset's study (made tiny) trains in the shared
pool, its view grows live without rerunning the page (data-rnnlab-trials), draws best so
far, the curves, parallel coordinates, slices and what matters; a second person opening
the share link sees the same study and adds a trial of their own, which the first sees."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

from harness import COUNT_RERUNS_JS, VIEWPORT, open_app, set_number, wait_idle

STUDY_TIMEOUT_MS = 120_000
TRIALS = 8
STEPS = 300
RERUNS_JS = "() => window.__rnnlabReruns"
TRIALS_JS = """() => Number(document.querySelector('[data-rnnlab-trials]')
    ?.dataset.rnnlabTrials ?? -1)"""
# What each chart of the study view holds: (selector, attribute) -> value.
CHART_JS = """(selector) => {
    const chart = document.querySelector(selector);
    return chart && chart.data ? chart.data.map((trace) => trace.type || 'scatter') : [];
}"""


def no_exception(page) -> None:
    shown = page.locator('[data-testid="stException"]')
    assert shown.count() == 0, f"exception on the page: {shown.all_inner_texts()}"


def typed_in(page, key: str, value: int) -> None:
    """Wait until the number input `key` shows `value` and the page's run has ended."""
    page.wait_for_function(
        f"() => document.querySelector('.st-key-{key} input')?.value === {str(value)!r}"
    )
    page.wait_for_timeout(300)  # a rerun the value started has begun
    wait_idle(page)


def trials_seen(page, count: int, timeout_s: float = 90.0) -> list[int]:
    """Sample data-rnnlab-trials until it has shown `count` distinct positive values."""
    seen: list[int] = []
    for _ in range(int(timeout_s * 5)):
        value = page.evaluate(TRIALS_JS)
        if value > 0 and value not in seen:
            seen.append(value)
            if len(seen) >= count:
                return seen
        page.wait_for_timeout(200)
    raise AssertionError(f"data-rnnlab-trials showed only {seen} within {timeout_s} s")


def test_a_study_grows_live_and_the_share_link_opens_it_for_the_room(server, new_page, screenshots):
    page = new_page()
    open_app(page, server, "explore")
    page.locator(".st-key-explore_preset button").click()
    typed_in(page, "explore_steps", 1500)
    assert page.get_by_text("Hidden size (log scale)").count() == 1
    sizes = page.locator(".st-key-explore_range_hidden_size [data-testid=stSliderThumbValue]")
    assert sizes.all_inner_texts() == ["8", "64"], "the preset's range, shown"
    set_number(page, "explore_steps", STEPS)
    typed_in(page, "explore_steps", STEPS)
    set_number(page, "explore_trials", TRIALS)
    typed_in(page, "explore_trials", TRIALS)
    page.locator(".st-key-explore_start button").click()
    page.wait_for_url(re.compile(r"study=explore-"))
    name = parse_qs(urlsplit(page.url).query)["study"][0]
    page.wait_for_function("() => document.querySelector('[data-rnnlab-trials]') !== null")
    wait_idle(page)
    page.evaluate(COUNT_RERUNS_JS)

    seen = trials_seen(page, 2)
    assert seen == sorted(seen), seen
    page.wait_for_function(f"() => ({TRIALS_JS})() >= {TRIALS - 1}", timeout=STUDY_TIMEOUT_MS)
    assert page.evaluate(RERUNS_JS) == 0, "the Explore page reran while the study trained"

    # Every chart: best so far, curves, parallel coordinates of what varies, one slice per
    # searched setting, what matters with its sentence; the trials with who asked.
    page.wait_for_function(
        "() => Number(document.querySelector('[data-rnnlab-parallel]')"
        "?.dataset.rnnlabParallel ?? 0) >= 2",
        timeout=STUDY_TIMEOUT_MS,
    )
    assert page.evaluate(CHART_JS, "[data-rnnlab-parallel]") == ["parcoords"]
    assert page.evaluate(CHART_JS, "[data-rnnlab-slices]") == ["scatter"] * 3
    slices = page.locator("[data-rnnlab-slices]")
    assert slices.evaluate("(plot) => plot.layout.xaxis3.type") == "log", "lr on a log axis"
    assert page.evaluate(CHART_JS, "[data-rnnlab-points]") == ["scatter", "scatter"]
    assert page.evaluate(CHART_JS, "[data-rnnlab-curves]")
    page.wait_for_function(
        "() => Number(document.querySelector('[data-rnnlab-importance]')"
        "?.dataset.rnnlabImportance ?? 0) > 0",
        timeout=STUDY_TIMEOUT_MS,
    )
    message = page.locator(".rnnlab-study-section .rnnlab-message").first.inner_text()
    assert re.search(r"trials|ranking|setting", message), message
    assert page.locator("tr[data-rnnlab-trial].mine").count() >= TRIALS - 1
    no_exception(page)
    # Fold the form away: the study is the picture.
    page.get_by_text("New study", exact=True).click()
    page.set_viewport_size({"width": 1400, "height": 3600})  # the app scrolls inside itself
    page.wait_for_timeout(1000)
    page.screenshot(path=screenshots / "explore.png", full_page=True)
    page.set_viewport_size(VIEWPORT)

    # Someone else in the room opens the link: the same study, live; their trial joins it.
    drawn = page.evaluate(TRIALS_JS)
    guest = new_page()
    open_app(guest, server, "explore", query=f"study={name}")
    guest.wait_for_function(f"() => ({TRIALS_JS})() >= {drawn}", timeout=STUDY_TIMEOUT_MS)
    assert guest.locator(f'[data-rnnlab-study="{name}"]').count() == 1
    assert guest.locator("tr[data-rnnlab-trial].mine").count() == 0
    set_number(guest, "explore_add_trials", 1)
    typed_in(guest, "explore_add_trials", 1)
    guest.locator(".st-key-explore_add button").first.click()
    guest.wait_for_function(
        "() => document.querySelectorAll('tr[data-rnnlab-trial].mine').length === 1",
        timeout=STUDY_TIMEOUT_MS,
    )
    guest_name = guest.locator(".st-key-room_name input").input_value()
    page.wait_for_function(
        f"() => [...document.querySelectorAll('td[data-column=who]')]"
        f".some((td) => td.textContent === {guest_name!r})",
        timeout=STUDY_TIMEOUT_MS,
    )
    assert page.evaluate(RERUNS_JS) == 0, "the first page reran to show the guest's trial"
    no_exception(guest)
