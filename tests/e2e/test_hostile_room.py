"""A visitor who tries to take the room with one run: the share link whose single step
took 53 s and 3 GB on a shared worker. Pressing Train gives a message that names the
setting to lower; nothing is queued, stored or started.
"""

from __future__ import annotations

import re

from harness import open_app, wait_idle

from rnnlab.store import RunStore

HUGE_STEP = "task=adding&hidden_size=512&num_layers=4&batch_size=512&seq_len=73&steps=47"


def test_a_run_too_large_for_the_server_is_refused_with_the_setting_to_lower(server, new_page):
    store = RunStore(server.home / "runs.sqlite")
    before = len(store.list_runs())
    page = new_page()
    open_app(page, server, query=HUGE_STEP)
    page.locator(".st-key-train_start button").click()
    wait_idle(page)
    alert = page.get_by_role("alert").filter(has_text="one training step would take about")
    alert.wait_for(timeout=30_000)
    text = alert.inner_text()
    assert re.search(r"lower (hidden_size|batch_size|seq_len|num_layers) to \d+ or less", text)
    assert page.locator("[data-rnnlab-run]").count() == 0  # no live view: no run
    assert len(store.list_runs()) == before
    store.close()
