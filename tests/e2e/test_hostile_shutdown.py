"""Stopping the server mid-step: every training process ends within seconds, and the runs
it cut short are recorded as such, not left `running` for ever.

Before runs were sized to the machine, one step could take 53 s, and three worker
processes outlived the server by 20 s and more.
"""

from __future__ import annotations

import signal
import time

from harness import ARTIFACTS, open_app, proc_stat, process_tree, start_server

from rnnlab.store import RunStore

# The largest step the room admits is about a second: a worker finishes it, records the
# run's end and exits well within this.
EXIT_WITHIN_S = 10.0
# About a quarter of a second a step here: the worker is mid-step when the signal comes.
LONG_STEPS = "task=adding&hidden_size=128&seq_len=200&batch_size=64&steps=5000"


def test_sigterm_mid_step_stops_every_worker_and_records_the_run(browser, tmp_path):
    home = tmp_path / "home"
    server = start_server(home, ARTIFACTS / "e2e-shutdown-server.log")
    try:
        context = browser.new_context()
        try:
            page = context.new_page()
            open_app(page, server, query=LONG_STEPS)
            page.locator(".st-key-train_start button").click()
            page.wait_for_function(
                "() => [...document.querySelectorAll('[data-rnnlab-last-step]')]"
                ".some(chart => Number(chart.dataset.rnnlabLastStep) > 2)",
                timeout=120_000,
            )
            tree = process_tree(server.pid)
            assert len(tree) >= 3, f"no training workers under the server: {tree}"
            server.process.send_signal(signal.SIGTERM)
            began = time.monotonic()
            alive = dict(tree)
            while alive and time.monotonic() - began < 30:
                server.process.poll()  # reaps the server once it has exited
                alive = {p: t for p, t in alive.items() if (proc_stat(p) or (0, None))[1] == t}
                time.sleep(0.1)
            took = time.monotonic() - began
        finally:
            context.close()
    finally:
        server.stop()
    assert not alive, f"still alive {took:.1f} s after SIGTERM: {sorted(alive)}"
    assert took <= EXIT_WITHIN_S, f"the server's processes took {took:.1f} s to end"
    store = RunStore(home / "runs.sqlite")
    (run,) = store.list_runs()
    assert run.status == "interrupted", run.status
    assert run.error == "the server shut down"
    assert 0 < run.step < 5000
    store.close()
