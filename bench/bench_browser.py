"""The dashboard's speed as a person sees it: a real Chromium against a real server.

    python bench/bench_browser.py              # about two minutes
    python bench/bench_browser.py --repeats 9  # steadier click-to-first-point figures

Starts `streamlit run app.py` on a free port with a private RNNLAB_HOME, then measures
  1. click on Train -> first point of the loss curve on screen (hello task, defaults,
     page already loaded; a fresh tab each time, the first one reported apart as cold),
  2. how often the live loss chart shows new data while an adding T=100 LSTM trains (Hz),
  3. how long a slider move takes to re-render the page while a run trains,
  4. the memory (PSS, /proc) of the server and its training workers with 5 tabs that
     have each run a training.
Times 1-3 are taken inside the page (performance.now() in event listeners and a
requestAnimationFrame loop), so Playwright's own round trips do not count. Targets from
the room issue: (1) <= 1 s, (2) >= 3 Hz, (3) <= 300 ms; (4) is reported.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

from harness import (  # noqa: E402
    ARTIFACTS,
    LAST_LOSS_STEP_JS,
    VIEWPORT,
    chromium_missing_reason,
    launch_browser,
    open_app,
    start_server,
    wait_idle,
)

from rnnlab.store import RunStore  # noqa: E402

RUN_TIMEOUT_MS = 180_000
# The live-refresh run: an LSTM on the adding problem at T = 100 (about 30 steps/s here).
ADDING_T100 = "task=adding&cell=lstm&hidden_size=64&batch_size=64&seq_len=100&steps=20000"

# Watch the Train page: when the Train button is clicked, and every change of the loss
# chart's point count and of the hidden-state metric, with performance.now() times.
WATCH_JS = """(lastStepSource) => {
    const lastStep = eval(lastStepSource);
    const watch = {
        clickAt: null, clickWall: null, firstPointAt: null, firstPointWall: null,
        updates: [], keyAt: [], shapes: [],
    };
    window.__bench = watch;
    document.addEventListener('click', (event) => {
        if (watch.clickAt === null && event.target.closest('.st-key-train_start')) {
            watch.clickAt = performance.now();
            watch.clickWall = Date.now();
        }
    }, true);
    document.addEventListener('keydown', () => watch.keyAt.push(performance.now()), true);
    const hiddenMetric = () => {
        for (const m of document.querySelectorAll('[data-testid="stMetric"]')) {
            if (m.textContent.includes('Hidden states per layer')) {
                const value = m.querySelector('[data-testid="stMetricValue"]');
                return value ? value.textContent : null;
            }
        }
        return null;
    };
    let lastDrawn = -1, lastShape = hiddenMetric();
    const frame = () => {
        const now = performance.now();
        const step = lastStep();
        if (step !== lastDrawn) {
            if (step > 0 && watch.firstPointAt === null && watch.clickAt !== null) {
                watch.firstPointAt = now;
                watch.firstPointWall = Date.now();
            }
            if (step > 0) watch.updates.push([now, step]);
            lastDrawn = step;
        }
        const shape = hiddenMetric();
        if (shape !== lastShape) {
            watch.shapes.push([now, shape]);
            lastShape = shape;
        }
        requestAnimationFrame(frame);
    };
    requestAnimationFrame(frame);
}"""


def watched_tab(browser, server, query: str):
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(RUN_TIMEOUT_MS)
    page = context.new_page()
    open_app(page, server, query=query)
    page.locator(".st-key-train_start button").wait_for()
    # The page is loaded when its charts can draw: Plotly fetched and warmed up.
    page.wait_for_function("() => window.__rnnlabPlotlyWarm === true")
    page.evaluate(WATCH_JS, LAST_LOSS_STEP_JS)
    return context, page


def stop_if_running(page) -> None:
    """Press Stop unless the run has already ended (the button then goes away)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    with contextlib.suppress(PlaywrightTimeout):
        page.locator(".st-key-train_stop button").click(timeout=5_000)


def click_to_first_point(browser, server, repeats: int) -> tuple[list[float], list[dict]]:
    """Seconds from the click on Train to the first loss point, one fresh tab per run.

    Also where the time went, from the server's store (same machine, same clock): the
    click until the run was submitted (the page's rerun), until a worker started it,
    until its first step, and until that step was on screen (store flush, poll, draw).
    """
    seconds, phases = [], []
    for _ in range(repeats):
        context, page = watched_tab(browser, server, query="")
        page.locator(".st-key-train_start button").click()
        page.wait_for_function("() => window.__bench.firstPointAt !== null")
        watch = page.evaluate("() => window.__bench")
        seconds.append((watch["firstPointAt"] - watch["clickAt"]) / 1000)
        phases.append(_phases(server, watch["clickWall"] / 1000, watch["firstPointWall"] / 1000))
        stop_if_running(page)
        page.get_by_text(re.compile("Finished|Stopped at step")).first.wait_for()
        context.close()
    return seconds, phases


def _phases(server, clicked: float, shown: float) -> dict:
    with RunStore(server.home / "runs.sqlite") as store:
        run = store.list_runs()[0]  # the newest
        history = store.history(run.id)
        deadline = time.monotonic() + 10
        while history.empty and time.monotonic() < deadline:  # the page can beat the store
            time.sleep(0.05)
            history = store.history(run.id)
        first_step = float(history["elapsed_s"].iloc[0])
    first_step_at = run.started_at + first_step
    return {
        "click -> submitted": run.created_at - clicked,
        "submitted -> worker started": run.started_at - run.created_at,
        "started -> first step": first_step,
        "first step -> on screen": shown - first_step_at,
    }


def live_refresh_and_slider(browser, server, window_s: float, moves: int):
    """Chart refresh rate over `window_s` of a long run, then slider moves during it."""
    context, page = watched_tab(browser, server, query=ADDING_T100)
    page.locator(".st-key-train_start button").click()
    page.wait_for_function("() => window.__bench.updates.length >= 2")
    start = page.evaluate("() => performance.now()")
    page.wait_for_timeout(window_s * 1000)
    updates = page.evaluate(f"() => window.__bench.updates.filter(u => u[0] >= {start})")
    if len(updates) >= 2:
        span = (updates[-1][0] - updates[0][0]) / 1000
        refresh_hz = (len(updates) - 1) / span if span > 0 else float("nan")
    else:
        refresh_hz = 0.0

    slider = page.get_by_role("slider", name="Hidden size")
    rerender_ms = []
    for move in range(moves):
        shapes_before = page.evaluate("() => window.__bench.shapes.length")
        keys_before = page.evaluate("() => window.__bench.keyAt.length")
        slider.focus()
        page.keyboard.press("ArrowRight" if move % 2 == 0 else "ArrowLeft")
        page.wait_for_function(f"() => window.__bench.shapes.length > {shapes_before}")
        watch = page.evaluate("() => window.__bench")
        rerender_ms.append(watch["shapes"][shapes_before][0] - watch["keyAt"][keys_before])
        page.wait_for_timeout(300)
    still_training = page.evaluate(
        "() => [...document.querySelectorAll('.rnnlab-status')]"
        ".some(e => e.style.display !== 'none')"
    )
    page.locator(".st-key-train_stop button").click()
    page.get_by_text("Stopped at step").wait_for(timeout=RUN_TIMEOUT_MS)
    context.close()
    return refresh_hz, len(updates), rerender_ms, still_training


def memory_with_sessions(browser, server, sessions: int) -> tuple[int, int, int]:
    """Server and workers' memory (PSS) before, at its highest while `sessions` tabs train,
    and after they finish."""
    before = server.tree_pss_bytes()
    peak = before
    contexts, pages = [], []
    for _ in range(sessions):
        context = browser.new_context(viewport=VIEWPORT)
        context.set_default_timeout(RUN_TIMEOUT_MS)
        page = context.new_page()
        open_app(page, server)
        contexts.append(context)
        pages.append(page)
        peak = max(peak, server.tree_pss_bytes())
    for page in pages:
        page.locator(".st-key-train_start button").click()
    for page in pages:
        deadline = time.monotonic() + RUN_TIMEOUT_MS / 1000
        while page.get_by_text("Finished").count() == 0 and time.monotonic() < deadline:
            peak = max(peak, server.tree_pss_bytes())
            page.wait_for_timeout(250)
        wait_idle(page)
    after = server.tree_pss_bytes()
    for context in contexts:
        context.close()
    return before, max(peak, after), after


def describe(values: list[float], unit: str, scale: float = 1.0) -> str:
    shown = ", ".join(f"{v * scale:.0f}" if scale != 1 else f"{v:.2f}" for v in values)
    median = statistics.median(values) * scale
    return f"median {median:.2f} {unit} (each: {shown})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="click-to-first-point runs")
    parser.add_argument("--window", type=float, default=8.0, help="seconds of refresh sampling")
    parser.add_argument("--moves", type=int, default=6, help="slider moves during a run")
    parser.add_argument("--sessions", type=int, default=5, help="tabs for the memory figure")
    args = parser.parse_args()

    reason = chromium_missing_reason()
    if reason:
        sys.exit(f"cannot run: {reason}")

    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="rnnlab-bench-") as home:
        server = start_server(Path(home), ARTIFACTS / "bench-server.log")
        try:
            with sync_playwright() as playwright:
                browser = launch_browser(playwright)
                print(
                    f"server pid {server.pid} at {server.url}; {os.cpu_count()} cores, "
                    f"load {os.getloadavg()[0]:.1f}"
                )
                print(
                    "server + workers memory (PSS) after start: "
                    f"{server.tree_pss_bytes() / 2**20:.0f} MiB"
                )

                first, phases = click_to_first_point(browser, server, args.repeats + 1)
                cold, warm = first[0], first[1:]
                print(
                    f"click on Train -> first loss point (hello, defaults): cold {cold:.2f} s; "
                    f"warm {describe(warm, 's')}; target <= 1 s"
                )

                for phase in phases[0]:
                    each = [p[phase] for p in phases[1:]]
                    print(
                        f"    {phase}: median {statistics.median(each):.2f} s (cold "
                        f"{phases[0][phase]:.2f} s)"
                    )

                hz, count, rerender, training = live_refresh_and_slider(
                    browser, server, args.window, args.moves
                )
                print(
                    f"live loss chart refresh while training: {hz:.2f} Hz "
                    f"({count} updates in {args.window:.0f} s); target >= 3 Hz"
                )
                print(
                    f"slider move -> re-rendered during a run: "
                    f"{describe([ms / 1000 for ms in rerender], 'ms', 1000)}, "
                    f"max {max(rerender):.0f} ms; target <= 300 ms"
                    + ("" if training else " (the run had ended: not measured during one)")
                )

                before, peak, after = memory_with_sessions(browser, server, args.sessions)
                print(
                    f"server + workers memory (PSS) with {args.sessions} tabs that each trained: "
                    f"{after / 2**20:.0f} MiB (before {before / 2**20:.0f} MiB, "
                    f"peak {peak / 2**20:.0f} MiB); Community Cloud allows about 2.7 GB"
                )
                browser.close()
        finally:
            server.stop()


if __name__ == "__main__":
    main()
