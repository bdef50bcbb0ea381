"""The Room page in a real Chromium: two people train (an RNN and an LSTM) under names of
their own, and a third tab on Room sees both rows and both curves grow, without a rerun."""

from __future__ import annotations

import re

from harness import COUNT_RERUNS_JS, open_app, wait_idle

RUN_TIMEOUT_MS = 150_000
RACERS = {"rnn": "Rnn Racer", "lstm": "Lstm Racer"}

# name -> [step, cell, status] of every row of the room's leaderboard.
ROWS_JS = """() => Object.fromEntries(
    [...document.querySelectorAll('tr[data-rnnlab-room-run]')].map((tr) => {
        const cell = (column) => tr.querySelector(`td[data-column=${column}]`).textContent;
        return [cell('name'), [Number(tr.dataset.step), cell('cell'), cell('status')]];
    }))"""
# The names of the curves drawn on the room's chart.
TRACES_JS = """() => {
    const chart = document.querySelector('[data-rnnlab-room-runs]');
    return chart && chart.data ? chart.data.map((trace) => trace.name) : [];
}"""


def both_rows_past(step_by_name: dict[str, int]) -> str:
    """JS: true once every named row is on the leaderboard past the given step."""
    wanted = ", ".join(f"[{name!r}, {step}]" for name, step in step_by_name.items())
    return f"""() => {{
        const rows = ({ROWS_JS})();
        return [{wanted}].every(([name, step]) => rows[name] && rows[name][0] > step);
    }}"""


def test_the_room_shows_two_sessions_runs_live(server, new_page, screenshots):
    racers = []
    for cell, name in RACERS.items():
        page = new_page()
        open_app(page, server, query=f"cell={cell}&hidden_size=4&steps=50000")
        box = page.locator(".st-key-room_name input")
        box.fill(name)
        box.press("Enter")
        page.wait_for_function(
            f"() => document.querySelector('.st-key-room_name input').value === {name!r}"
        )
        wait_idle(page)
        page.locator(".st-key-train_start button").click()
        racers.append(page)

    room = new_page()
    open_app(room, server, "room")
    started = both_rows_past(dict.fromkeys(RACERS.values(), 0))
    room.wait_for_function(started, timeout=RUN_TIMEOUT_MS)
    room.evaluate(COUNT_RERUNS_JS)
    first = room.evaluate(ROWS_JS)
    for cell, name in RACERS.items():
        assert first[name][1] == cell
    room.wait_for_function(
        both_rows_past({name: first[name][0] for name in RACERS.values()}),
        timeout=RUN_TIMEOUT_MS,
    )
    room.wait_for_function(
        f"() => {list(RACERS.values())!r}.every((name) => "
        f"({TRACES_JS})().some((trace) => trace.startsWith(name)))",
        timeout=RUN_TIMEOUT_MS,
    )
    traces = room.evaluate(TRACES_JS)
    assert {f"{name} · {cell}" for cell, name in RACERS.items()} <= set(traces)
    assert room.evaluate("() => window.__rnnlabReruns") == 0, "the room page reran"
    assert room.locator('[data-testid="stException"]').count() == 0
    room.screenshot(path=screenshots / "room.png", full_page=True)

    # The name stays with its session on every page: the racer's own view of the room.
    racer = racers[0]
    racer.get_by_role("link", name="Room").click()
    racer.get_by_text(re.compile("Your runs appear as")).wait_for()
    assert "Rnn Racer" in racer.get_by_text(re.compile("Your runs appear as")).inner_text()
    assert racer.locator(".st-key-room_name input").input_value() == "Rnn Racer"
    for page in racers:
        assert page.locator('[data-testid="stException"]').count() == 0
