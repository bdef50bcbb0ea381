"""A public room that no visitor can take down, against a real server: 200 parallel
/api/room requests for a full room and 100 plain /api/plotly.js requests leave
/_stcore/health answering at once; and what one person typed is not in another
client's answers.

The load comes from a separate process (one asyncio loop, raw HTTP/1.1) and the health
probe from another, so neither's own work shows in the other's figures.
bench/bench_routes.py uses the same helpers and prints the figures before and after.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import statistics
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import plotly
import pytest
from harness import ARTIFACTS, open_app, start_server, wait_idle

RUN_TIMEOUT_MS = 300_000
ROOM_REQUESTS = 200
PLOTLY_REQUESTS = 100
# The target is 100 ms; this shared two-core machine pauses any process now and
# then for longer than that, so the test holds health to a looser bound and prints what
# it measured (bench/bench_routes.py reports the figures).
HEALTH_TARGET_S = 0.1
HEALTH_BOUND_S = 1.0
PRIVATE_WORD = "mydiaryxq"

# Polls /_stcore/health over fresh connections every 10 ms until a line arrives on
# stdin; prints the latencies (seconds) as JSON.
HEALTH_PROBE = """
import http.client, json, select, sys, time
host, port = sys.argv[1], int(sys.argv[2])
latencies = []
while not select.select([sys.stdin], [], [], 0.01)[0]:
    start = time.perf_counter()
    connection = http.client.HTTPConnection(host, port, timeout=60)
    connection.request("GET", "/_stcore/health")
    connection.getresponse().read()
    connection.close()
    latencies.append(time.perf_counter() - start)
print(json.dumps(latencies))
"""


@dataclass
class Answer:
    path: str
    status: int
    body_bytes: int
    seconds: float


async def _get(host: str, port: int, path: str, headers: dict[str, str]) -> Answer:
    start = time.perf_counter()
    reader, writer = await asyncio.open_connection(host, port)
    extra = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n{extra}\r\n"
    writer.write(request.encode())
    await writer.drain()
    status = int((await reader.readline()).split()[1])
    while (await reader.readline()) not in (b"\r\n", b""):
        pass  # the headers
    size = 0
    while chunk := await reader.read(1 << 20):
        size += len(chunk)
    writer.close()
    return Answer(path, status, size, time.perf_counter() - start)


async def _fire(url: str, requests: list[tuple[str, dict[str, str]]]) -> list[Answer]:
    parts = urlsplit(url)
    return await asyncio.gather(
        *(_get(parts.hostname, parts.port, path, headers) for path, headers in requests)
    )


def _fire_in_process(url: str, requests: list, go, results) -> None:
    results.put("ready")
    go.wait()
    results.put([vars(a) for a in asyncio.run(_fire(url, requests))])


def hostile_requests(room: int = ROOM_REQUESTS, plotly: int = PLOTLY_REQUESTS) -> list:
    """The issue's load: the whole room, uncompressed, and Plotly's script without gzip."""
    return [("/api/room", {})] * room + [("/api/plotly.js", {})] * plotly


@dataclass
class Measured:
    health_s: list[float]  # every health latency while the load ran (and just around it)
    answers: list[Answer]
    wall_s: float

    def figures(self) -> dict[str, float]:
        ordered = sorted(self.health_s)
        return {
            "health_p50_ms": 1000 * statistics.median(ordered),
            "health_p99_ms": 1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))],
            "health_max_ms": 1000 * ordered[-1],
            "health_samples": len(ordered),
            "load_wall_s": self.wall_s,
        }


def hammer_while_probing(url: str, requests: list, *, quiet_s: float = 0.5) -> Measured:
    """Fire `requests` at once from another process while a third polls health (from
    `quiet_s` before)."""
    parts = urlsplit(url)
    context = multiprocessing.get_context("spawn")
    go, results = context.Event(), context.Queue()
    load = context.Process(target=_fire_in_process, args=(url, requests, go, results))
    probe = None
    try:
        load.start()
        assert results.get(timeout=120) == "ready"  # started and imported: fires on `go`
        probe = subprocess.Popen(
            [sys.executable, "-c", HEALTH_PROBE, parts.hostname, str(parts.port)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        time.sleep(quiet_s)  # a few quiet samples first
        start = time.perf_counter()
        go.set()
        answers = [Answer(**a) for a in results.get(timeout=600)]
        wall_s = time.perf_counter() - start
        load.join(timeout=60)
        time.sleep(0.2)
        output, _ = probe.communicate("stop\n", timeout=120)
    finally:
        if load.is_alive():
            load.kill()
        if probe is not None and probe.poll() is None:
            probe.kill()
            probe.wait()
    return Measured(json.loads(output), answers, wall_s)


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=60) as response:
        return response.status, response.read()


def fill_room(
    page, server, *, runs_per_cell: int, steps: int, timeout_ms: float, wait: bool = True
) -> None:
    """Race `runs_per_cell` seeds of RNN, LSTM and GRU on the adding problem (T = 10,
    four hidden units) from the Race page of a fresh tab, as a person would, and (if
    `wait`) wait for the end: the room then holds those runs with their curves."""
    query = f"task=adding&hidden_size=4&batch_size=8&seq_len=10&steps={steps}"
    open_app(page, server, "race", query=query)
    seeds = page.locator(".st-key-race_seeds input")
    seeds.fill(",".join(str(seed) for seed in range(runs_per_cell)))
    seeds.press("Enter")
    wait_idle(page)
    page.locator(".st-key-race_start button").click()
    total = 3 * runs_per_cell
    if wait:
        page.get_by_text(f"{total} of {total} runs finished").wait_for(timeout=timeout_ms)


@pytest.fixture(scope="module")
def room_server(chromium, tmp_path_factory):
    """A server of its own: the tests below fill its room."""
    home = tmp_path_factory.mktemp("rnnlab-home-hostile")
    log = ARTIFACTS / "e2e-server-hostile.log"
    running = start_server(home, log, env={"RNNLAB_ORPHAN_AFTER_S": "5"})
    yield running
    running.stop()


def test_a_word_typed_in_one_session_is_not_in_another_clients_answers(room_server, new_page):
    server = room_server
    page = new_page()
    open_app(page, server, query=f"word={PRIVATE_WORD}&hidden_size=8&steps=200000")
    page.get_by_text("not your word or uploaded text").wait_for()
    page.locator(".st-key-train_start button").click()
    # The owner's page shows the predictions on its word.
    table = page.locator(".rnnlab-predictions table")
    table.wait_for(timeout=RUN_TIMEOUT_MS)
    inputs = table.locator("tbody tr td:nth-child(2)").all_inner_texts()
    assert "".join(inputs) == PRIVATE_WORD[:-1]

    status, room = get(f"{server.url}/api/room")
    assert status == 200 and PRIVATE_WORD.encode() not in room
    (row,) = json.loads(room)["runs"]
    assert row["task"] == "hello" and "config" not in row
    status, gates = get(f"{server.url}/api/runs/{row['run_id']}/gates")
    view = json.loads(gates)
    assert status == 200 and view["predictions"] is None and view["private"] is True
    assert PRIVATE_WORD.encode() not in gates
    # A key that is not the owner's opens nothing.
    _, guessed = get(f"{server.url}/api/runs/{row['run_id']}/gates", {"X-Rnnlab-Key": "a" * 64})
    assert json.loads(guessed)["predictions"] is None

    # Another session's page sees the run's pictures, not its predictions.
    other = new_page()
    open_app(other, server, "inside")
    other.locator(".rnnlab-inside [data-rnnlab-snapshot-step]").wait_for(timeout=RUN_TIMEOUT_MS)
    assert PRIVATE_WORD not in other.content()

    page.locator(".st-key-train_stop button").click()
    page.get_by_text("Stopped at step").wait_for(timeout=RUN_TIMEOUT_MS)


@pytest.fixture(scope="module")
def fed_server(chromium, tmp_path_factory):
    """The app as a proxy that forwards only Streamlit's own paths would serve it: pages
    feed their views through Streamlit's websocket (ui/live.py)."""
    home = tmp_path_factory.mktemp("rnnlab-home-hostile-fed")
    log = ARTIFACTS / "e2e-server-hostile-fed.log"
    env = {"RNNLAB_LIVE_ROUTES": "off", "RNNLAB_ORPHAN_AFTER_S": "5"}
    running = start_server(home, log, env=env)
    yield running
    running.stop()


def websocket_frames(page) -> list[bytes]:
    """Every websocket frame the page receives from now on (Streamlit's deltas, which
    carry a fed view's data)."""
    frames: list[bytes] = []

    def received(payload: bytes | str) -> None:
        frames.append(payload if isinstance(payload, bytes) else payload.encode())

    page.on("websocket", lambda socket: socket.on("framereceived", received))
    return frames


def test_a_page_that_feeds_its_views_sends_no_one_elses_predictions(fed_server, new_page):
    server = fed_server
    page = new_page()
    owners = websocket_frames(page)
    open_app(page, server, query=f"word={PRIVATE_WORD}&hidden_size=8&steps=200000")
    page.locator(".st-key-train_start button").click()
    table = page.locator(".rnnlab-predictions table")
    table.wait_for(timeout=RUN_TIMEOUT_MS)
    assert (
        "".join(table.locator("tbody tr td:nth-child(2)").all_inner_texts()) == (PRIVATE_WORD[:-1])
    )
    assert any(b'"target":' in frame for frame in owners)  # predictions, fed to their owner

    other = new_page()
    strangers = websocket_frames(other)
    open_app(other, server, "inside")
    other.locator(".rnnlab-inside [data-rnnlab-snapshot-step]").wait_for(timeout=RUN_TIMEOUT_MS)
    other.wait_for_timeout(2500)  # a few more fed updates
    assert strangers and not any(b'"target":' in frame for frame in strangers)
    assert not any(PRIVATE_WORD.encode() in frame for frame in strangers)
    # The run stops 5 s after its tab closes (RNNLAB_ORPHAN_AFTER_S), with the test's.


def test_a_full_room_under_hostile_load_leaves_health_answering_at_once(
    room_server, new_page, capsys
):
    server = room_server
    page = new_page()
    fill_room(page, server, runs_per_cell=10, steps=400, timeout_ms=RUN_TIMEOUT_MS)
    page.close()  # the load below is the only one
    status, room = get(f"{server.url}/api/room")
    runs = json.loads(room)["runs"]
    assert status == 200 and len(runs) >= 30

    measured = hammer_while_probing(server.url, hostile_requests())
    figures = measured.figures()
    room_answers = [a for a in measured.answers if a.path == "/api/room"]
    plotly_answers = [a for a in measured.answers if a.path == "/api/plotly.js"]
    figures["room_answer_bytes"] = room_answers[0].body_bytes
    figures["room_answers_max_s"] = max(a.seconds for a in room_answers)
    figures["plotly_answers_max_s"] = max(a.seconds for a in plotly_answers)
    with capsys.disabled():
        print(f"\nhostile load on a room of {len(runs)} runs: {json.dumps(figures)}")
    assert [a.status for a in measured.answers] == [200] * len(measured.answers)
    assert {a.body_bytes for a in room_answers} == {len(room)}  # the whole room, each time
    script = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    assert {a.body_bytes for a in plotly_answers} == {script.stat().st_size}
    assert figures["health_max_ms"] <= 1000 * HEALTH_BOUND_S, figures
    assert figures["health_p50_ms"] <= 1000 * HEALTH_TARGET_S, figures
