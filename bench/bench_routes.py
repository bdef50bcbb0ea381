"""Does the server stay responsive while its live routes are hammered? /_stcore/health's
latency during the issue's hostile load, on a full room.

    python bench/bench_routes.py                          # this checkout, about 3 minutes
    git worktree add /tmp/rnnlab-before <commit>
    python bench/bench_routes.py --checkout /tmp/rnnlab-before   # the same, on that one

Starts the checkout's own `streamlit run app.py` (through its tests/e2e/harness.py) with
a private RNNLAB_HOME, one training worker and room for 26 runs at once (one person's
too), and fills its room from the Race page in Chromium as people would: a race of 60
runs of 400 steps that finishes, then a race of 30 long runs that keeps training (26
running, 4 waiting): 60 rows. Then, from another process, fires at once
  plain: 200 /api/room and 100 /api/plotly.js without gzip (the issue's load), and
  gzip:  the same with Accept-Encoding: gzip (what browsers send),
while a third process polls /_stcore/health every 10 ms over fresh connections; and, as
the baseline, polls it 3 s with no load ("quiet": the room still trains, the tabs still
poll). Prints health latency p50/p99/max for each, how long the load took, and the room's
answer size raw and gzipped. The issue's target: health within 100 ms.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FILL_TIMEOUT_MS = 600_000


def load_helpers(checkout: Path):
    """The checkout's harness (it starts that checkout's server) and this checkout's load
    helpers (tests/e2e/test_hostile_routes.py), which use it. Both by module name, on
    sys.path in that order, so that the load's own process imports them the same way."""
    sys.path[:0] = [str(checkout / "tests" / "e2e"), str(ROOT / "tests" / "e2e")]
    import harness
    import test_hostile_routes

    assert Path(harness.__file__).resolve().is_relative_to(checkout.resolve()), harness.__file__
    return harness, test_hostile_routes


def room_rows(url: str) -> int:
    with urllib.request.urlopen(f"{url}/api/room", timeout=60) as response:
        return len(json.loads(response.read())["runs"])


def size(url: str, path: str, encoding: str) -> int:
    request = urllib.request.Request(f"{url}{path}", headers={"Accept-Encoding": encoding})
    with urllib.request.urlopen(request, timeout=60) as response:
        body = response.read()
        if response.headers.get("Content-Encoding") == "gzip":
            assert json.loads(gzip.decompress(body)) if path != "/api/plotly.js" else True
        return len(body)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkout", type=Path, default=ROOT, help="the checkout to serve")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of each load")
    args = parser.parse_args()
    harness, helpers = load_helpers(args.checkout)
    if (reason := harness.chromium_missing_reason()) is not None:
        print(f"skipped: {reason}")
        return 0
    from playwright.sync_api import sync_playwright

    home = Path(tempfile.mkdtemp(prefix="rnnlab-bench-routes-"))
    log = harness.ARTIFACTS / "bench-routes-server.log"
    env = {"RNNLAB_WORKERS": "1", "RNNLAB_MAX_RUNNING": "26", "RNNLAB_MAX_RUNNING_PER_OWNER": "26"}
    server = harness.start_server(home, log, env=env)
    try:
        with sync_playwright() as playwright:
            browser = harness.launch_browser(playwright)
            try:
                pages = []
                for runs_per_cell, steps, wait in ((20, 400, True), (10, 200_000, False)):
                    context = browser.new_context(viewport=harness.VIEWPORT)
                    context.set_default_timeout(120_000)
                    pages.append(context.new_page())
                    helpers.fill_room(
                        pages[-1],
                        server,
                        runs_per_cell=runs_per_cell,
                        steps=steps,
                        timeout_ms=FILL_TIMEOUT_MS,
                        wait=wait,
                    )
                deadline = time.monotonic() + 300
                while room_rows(server.url) < 60 and time.monotonic() < deadline:
                    time.sleep(1)
                rows = room_rows(server.url)
                raw = size(server.url, "/api/room", "identity")
                zipped = size(server.url, "/api/room", "gzip")
                print(f"checkout {args.checkout}: a room of {rows} runs")
                print(f"/api/room answer: {raw / 1e3:.0f} KB raw, {zipped / 1e3:.0f} KB gzipped")
                plotly_raw = size(server.url, "/api/plotly.js", "identity")
                plotly_zipped = size(server.url, "/api/plotly.js", "gzip")
                print(
                    f"/api/plotly.js: {plotly_raw / 1e6:.1f} MB raw, "
                    f"{plotly_zipped / 1e6:.2f} MB gzipped"
                )
                loads = {
                    "plain": helpers.hostile_requests(),
                    "gzip": [
                        (path, {"Accept-Encoding": "gzip"})
                        for path, _headers in helpers.hostile_requests()
                    ],
                }
                for round_ in range(args.rounds):
                    for name, requests in {"quiet": [], **loads}.items():
                        time.sleep(3)  # the address's rate limit refills; the room settles
                        measured = helpers.hammer_while_probing(
                            server.url, requests, quiet_s=3.0 if name == "quiet" else 0.5
                        )
                        statuses = sorted({a.status for a in measured.answers})
                        figures = measured.figures()
                        load = (
                            f"the load took {figures['load_wall_s']:.2f} s, statuses {statuses}"
                            if requests
                            else "no load"
                        )
                        print(
                            f"round {round_ + 1} {name:5}: health p50 "
                            f"{figures['health_p50_ms']:.1f} ms, p99 "
                            f"{figures['health_p99_ms']:.1f} ms, max "
                            f"{figures['health_max_ms']:.1f} ms "
                            f"({figures['health_samples']} samples); {load}"
                        )
            finally:
                browser.close()
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
