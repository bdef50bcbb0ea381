"""A workshop room against one server: N sessions press Train within one second, then
watch one page of the dashboard.

    python bench/bench_workshop.py                          # 30 sessions watch Train
    python bench/bench_workshop.py --page inside            # ... then go to Inside the cell
    python bench/bench_workshop.py --page race              # 3 of them start a race; all watch
    python bench/bench_workshop.py --sessions 6 --steps 3000   # a small room, long runs
    python bench/bench_workshop.py --json                   # the figures as one JSON document
    python bench/bench_workshop.py --memory-limit 690M      # Community Cloud's smallest container

Starts one real `streamlit run app.py` (tests/e2e/harness.py) with a private RNNLAB_HOME.
`--browsers` sessions are real Chromium tabs (their own browser contexts); the others
speak Streamlit's own protocol: a websocket to /_stcore/stream with the frontend's
subprotocols, a `rerun_script` BackMsg with the page's query string to load the Train
page, another with the Train button's trigger value to press it, and one with a page's
script hash and url path to follow a navigation link. They read each live view's data
(the rnnlab_live component's, in the ForwardMsg deltas) and poll its JSON routes at the
browser's pace (ui/live.js). Sessions alternate over --task-mix: hello is the default
run, adding opens the page with ADDING_QUERY.

--page says what the room watches once everyone has pressed Train (all but race):
train, the run's loss chart and gates; inside, Inside the cell (points, every layer's
gates, gradients); room, the Room page; race: no Train, --racers sessions (every
browser among them) load the race preset and start it, and every session watches one
of those races.

Reported: click -> first point (per kind and task), each run's steps/s as the route
reports it against the median of its task's runs, the browsers' live-chart refresh rate,
server + worker memory from /proc (RSS summed, and PSS), whether every session got its
own run, and, over a --watch-s window once every session watches: the server main
process's CPU seconds per viewer per second and the workers' CPU (from /proc/PID/stat),
gate pictures per second per run (distinct snapshot steps each session saw), Streamlit
script runs during the window (none expected: watching polls routes), then a late
visitor's click -> first point, and `uptime` at start, in the window and at the end.
On train every session follows its run to the end; on the other pages the room stops
once the late visitor has its first point. Everything stops by itself within about
--time-limit seconds (default 330); only 127.0.0.1 is contacted. Sessions open once the
server's training workers exist; --cold opens them as soon as the server answers.
--memory-limit runs the server and everything it starts (not the bench's own
clients) in a new memory control group with that limit, as a container would (cgroup
v1, which these machines accept; needs root), and reports the group's peak usage and
how many processes the kernel killed for memory.
Progress goes to stderr, the report to stdout; the figures also go to
artifacts/bench-workshop.json and the server's log to artifacts/bench-workshop-server.log.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
sys.path.insert(0, str(ROOT))

from harness import (  # noqa: E402
    APP_IDLE_JS,
    ARTIFACTS,
    SCREENSHOTS,
    VIEWPORT,
    chromium_missing_reason,
    launch_browser,
    memory_kib,
    proc_stat,
    process_tree,
    start_server,
)

from rnnlab.config import TASK_NAMES  # noqa: E402
from rnnlab.jobs import resources  # noqa: E402
from rnnlab.jobs.settings import memory_plan  # noqa: E402

MEMORY_LIMIT: list[int | None] = [None]  # --memory-limit, once parsed

ADDING_QUERY = "task=adding&cell=lstm&seq_len=100&hidden_size=64&batch_size=64&steps=200"
QUERIES = {"hello": "", "adding": ADDING_QUERY}
ENDED = ("completed", "stopped", "diverged", "failed", "interrupted")
SUBPROTOCOLS = ["streamlit", "PLACEHOLDER_AUTH_TOKEN"]  # what the frontend offers
TEARDOWN_S = 30.0  # kept back from --time-limit for closing clients and the server
SETTLE_S = 2.0  # after the last session starts watching, before the CPU window opens
WAIT_FOR_ROOM_S = 30.0  # the window opens without sessions that are not watching by then
LATE_WAIT_S = 30.0  # how long the late visitor waits for its first point
SETTLE_TIMEOUT_S = 15.0  # a click's script run in a tab, before the click is tried again
ACT_TIMEOUT_S = 60.0  # from the loaded Train page to watching (Train, link, race preset)
SERVER_LOG = ARTIFACTS / "bench-workshop-server.log"
REPORT_JSON = ARTIFACTS / "bench-workshop.json"  # every run's figures, kept for a look
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

# Each page: its url_path, the live view it shows, and what that view polls as live.js
# does: (url field of the view's data, seconds between requests); ui/live.py sets the
# paces (LIVE_POLL_MS for the loss chart, PICTURE_POLL_MS for the rest).
PAGES = {
    "train": ("", {"loss": [("points_url", 0.2)], "gates": [("gates_url", 1.0)]}),
    "inside": (
        "inside",
        {"inside": [("points_url", 1.0), ("gates_url", 1.0), ("gradients_url", 2.0)]},
    ),
    "race": ("race", {"race": [("sweep_url", 1.0)]}),
    "room": ("room", {"room": [("room_url", 1.0)]}),
}

# Installed in every tab before the app's own scripts: when Train is clicked, every value
# the live chart shows in data-rnnlab-last-step (a MutationObserver, no frame loop), what
# each answer of the live routes said (a wrapper around fetch), and when each Streamlit
# script run ended (stApp's data-test-script-state leaving "running").
WATCH_JS = """(() => {
    const w = { clickAt: null, firstPointAt: null, updates: [], fetches: [], failures: [],
                pictures: [], rows: [], scriptRuns: [] };
    window.__bench = w;
    document.addEventListener('click', (event) => {
        const target = event.target;
        if (w.clickAt === null && target.closest && target.closest('.st-key-train_start')) {
            w.clickAt = performance.now();
        }
    }, true);
    new MutationObserver((records) => {
        const now = performance.now();
        for (const record of records) {
            if (record.attributeName === 'data-test-script-state') {
                const state = record.target.dataset.testScriptState;
                if (record.oldValue === 'running' && state !== 'running') w.scriptRuns.push(now);
                continue;
            }
            const step = Number(record.target.dataset.rnnlabLastStep);
            if (w.updates.length < 20000) {
                w.updates.push([now, step, record.target.dataset.rnnlabRun || null]);
            }
            if (step > 0 && w.firstPointAt === null && w.clickAt !== null) w.firstPointAt = now;
        }
    }).observe(document, { subtree: true, attributes: true, attributeOldValue: true,
                           attributeFilter: ['data-rnnlab-last-step', 'data-test-script-state'] });
    const original = window.fetch;
    window.fetch = async function (...args) {
        const url = String((args[0] && args[0].url) || args[0]);
        const points = url.match(/\\/api\\/runs\\/([0-9a-f]+)(\\?|$)/);
        const picture = url.match(/\\/api\\/runs\\/([0-9a-f]+)\\/(gates|gradients)\\?/);
        const rows = url.match(/\\/api\\/(sweeps\\/[0-9a-f]+|room)(\\?|$)/);
        const watched = points || picture || rows;
        let response;
        try {
            response = await original.apply(this, args);
        } catch (error) {
            if (watched) w.failures.push([performance.now(), String(error)]);
            throw error;
        }
        try {
            const at = performance.now();
            if (watched && !response.ok) w.failures.push([at, `HTTP ${response.status}`]);
            if (!watched || response.status !== 200 || w.fetches.length >= 20000) return response;
            response.clone().json().then((live) => {
                if (points) {
                    w.fetches.push([at, points[1], live.run_id ?? null, live.status ?? null,
                                    live.step ?? null, live.steps_per_s ?? null,
                                    live.points ? live.points.step.length : 0]);
                } else if (picture) {
                    const step = live.step ?? live.gradient_step ?? null;
                    w.pictures.push([at, picture[2], picture[1], step]);
                } else {
                    const active = live.runs.filter(
                        (run) => run.status === 'queued' || run.status === 'running').length;
                    w.rows.push([at, live.runs.length, active, rows[1]]);
                }
            }).catch((error) => w.failures.push([at, String(error)]));
        } catch (error) { /* never break the page */ }
        return response;
    };
})();"""

BROWSER_STATUS_JS = """() => {
    const w = window.__bench, last = w.fetches[w.fetches.length - 1];
    const rows = w.rows[w.rows.length - 1];
    return { clicked: w.clickAt !== null, status: last ? last[3] : null,
             rows: rows ? rows[1] : 0, active: rows ? rows[2] : null };
}"""


RACE_SHOWN_JS = "() => window.__bench.rows.length > 0"  # the race view has polled once


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError) as error:
        return f"(uptime failed: {error})"


# ---------------------------------------------------------------- sessions


@dataclass
class Session:
    index: int
    kind: str  # "browser" or "protocol"
    task: str
    query: str
    page: str = "train"  # what it watches (PAGES)
    racer: bool = False  # on race: starts a race of its own
    late: bool = False  # arrives once the room watches
    run_id: str | None = None
    error: str | None = None
    problems: list[str] = field(default_factory=list)
    click_started: float | None = None  # time.monotonic() around the click
    click_done: float | None = None
    first_point_s: float | None = None
    mounted_s: float | None = None  # click -> the page showed the run's live view
    rates: list[float] = field(default_factory=list)  # the route's steps_per_s while running
    status: str | None = None
    step: int = 0
    answers: int = 0
    run_ids_seen: set[str] = field(default_factory=set)  # from URLs, answers and the chart
    refreshes: list[tuple[float, int, int]] = field(default_factory=list)  # (s, step, points)
    refresh_hz: float | None = None
    points_per_s: float | None = None
    sweep_id: str | None = None
    watch_from: float | None = None  # time.monotonic() it began watching its page
    watch_until: float | None = None  # ... and stopped (what it watched ended)
    ended_at: float | None = None  # when it saw its run end
    pictures: dict[str, list[tuple[float, int]]] = field(default_factory=dict)  # first seen
    script_runs: list[float] = field(default_factory=list)  # script runs' ends (monotonic)
    notes: dict = field(default_factory=dict)  # what a browser tab saw, for diagnosis

    @property
    def label(self) -> str:
        return f"#{self.index} {self.kind}/{self.task}" + (" (late)" if self.late else "")

    def rate(self) -> float | None:
        return statistics.fmean(self.rates) if self.rates else None

    def take_points(self, at: float, live: dict, url_id: str, *, progress_only: bool) -> bool:
        """One answer of a run's points route; False once the run has ended. A view that
        asks for `progress_only` (Inside) has its first point with the first step."""
        self.answers += 1
        self.run_ids_seen.update({url_id, str(live.get("run_id"))})
        self.status, self.step = live.get("status"), int(live.get("step") or 0)
        steps = live["points"]["step"]
        latest = self.step if progress_only else (steps[-1] if steps else 0)
        if self.first_point_s is None and self.click_started is not None and latest > 0:
            self.first_point_s = at - self.click_started
        if steps:
            self.refreshes.append((at, steps[-1], len(steps)))
        if self.status == "running" and live.get("steps_per_s"):
            self.rates.append(float(live["steps_per_s"]))
        if self.status in ("running", "queued"):
            return True
        if self.status != "completed":
            self.problems.append(f"run ended {self.status}: {live.get('error')}")
        self.ended_at = at
        return False

    def take_picture(self, at: float, kind: str, step: int) -> None:
        """A gates or gradients answer: its snapshot's step, kept the first time seen."""
        seen = self.pictures.setdefault(kind, [])
        if not seen or seen[-1][1] != step:
            seen.append((at, step))

    def take_rows(self, at: float, rows: list[dict], total: int | None) -> bool:
        """One answer of a race's or the room's route; False once a race has ended."""
        self.answers += 1  # the rows are everyone's runs: not counted in run_ids_seen
        active = sum(row["status"] in ("queued", "running") for row in rows)
        self.status = "running" if active else (rows[0]["status"] if rows else None)
        points = sum(len(row["points"]["step"]) for row in rows)
        if points:
            self.refreshes.append((at, len(rows), points))
        if total is None or len(rows) < total or active:
            return True
        self.ended_at = at
        return False

    def finish_refreshes(self) -> None:
        span = self.refreshes[-1][0] - self.refreshes[0][0] if self.refreshes else 0
        if len(self.refreshes) >= 2 and span > 0:
            self.refresh_hz = (len(self.refreshes) - 1) / span
            self.points_per_s = sum(r[2] for r in self.refreshes[1:]) / span


class Http:
    """A tiny keep-alive HTTP/1.1 client for 127.0.0.1 (GET, JSON answers)."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get_json(self, path: str, timeout: float = 10.0) -> tuple[int, object]:
        try:
            return await asyncio.wait_for(self._get(path), timeout)
        except BaseException:
            await self.close()
            raise

    async def _get(self, path: str) -> tuple[int, object]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            "Accept: application/json\r\nConnection: keep-alive\r\n\r\n"
        )
        self.writer.write(request.encode())
        await self.writer.drain()
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("the server closed the connection")
        status = int(status_line.split()[1])
        headers = {}
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while True:
                size = int((await self.reader.readline()).split(b";")[0], 16)
                chunk = await self.reader.readexactly(size + 2)
                if size == 0:
                    break
                body += chunk[:-2]
        else:
            body = await self.reader.readexactly(int(headers.get("content-length", "0")))
        if headers.get("connection", "").lower() == "close":
            await self.close()
        try:
            return status, json.loads(body) if body else None
        except ValueError:
            return status, body[:200].decode(errors="replace")

    async def close(self) -> None:
        writer, self.writer, self.reader = self.writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 2)


class RouteError(Exception):
    """A live route answered what the view cannot use."""


class ProtocolClient:
    """One session that speaks Streamlit's websocket protocol, as the frontend does."""

    def __init__(self, session: Session, server_url: str):
        self.session = session
        self.root = server_url + "/"
        split = urlsplit(server_url)
        self.address = split.hostname, split.port
        self.connections: list[Http] = []  # one per route polled at once, as a browser has
        self.ws = None
        self.reader_task: asyncio.Task | None = None
        self.query_string = session.query
        self.page_hash = ""
        self.pages: dict[str, str] = {}  # url_path -> page script hash (navigation message)
        self.buttons: dict[str, str] = {}  # widget key -> widget id
        self.views: dict[str, dict] = {}  # live view name -> its data, since forget_views()
        self.arrived: dict[str, asyncio.Event] = {}
        self.finished = asyncio.Event()  # a script run ended
        self.halt = asyncio.Event()  # stop polling: what it watched ended, or the room stops
        self.after: dict[tuple[str, int], int] = {}  # (route, layer) -> newest snapshot step
        self.row_since: dict[str, int] = {}  # a race's or the room's run id -> seen
        self.first_point_only = False  # the late visitor stops at its first point
        self.borrowed_race: asyncio.Future | None = None  # a race another session started

    async def open(self) -> None:
        import websockets

        url = self.root.replace("http://", "ws://") + "_stcore/stream"
        self.ws = await websockets.connect(
            url,
            subprotocols=SUBPROTOCOLS,
            origin=self.root.rstrip("/"),
            max_size=None,
            ping_interval=None,  # the frontend sends no pings either
            open_timeout=30,
        )
        self.reader_task = asyncio.create_task(self._read())
        await self._run_script(page_hash="")
        if "train_start" not in self.buttons:
            raise RuntimeError("the Train page has no train_start button")

    async def _send_rerun(self, *, page_hash: str, page_name: str = "", trigger: str = "") -> None:
        from streamlit.proto.BackMsg_pb2 import BackMsg

        back = BackMsg()
        rerun = back.rerun_script
        rerun.query_string = self.query_string
        rerun.page_script_hash = page_hash
        rerun.page_name = page_name
        query = f"?{self.query_string}" if self.query_string else ""
        rerun.context_info.url = self.root + page_name + query
        rerun.context_info.timezone = "UTC"
        rerun.context_info.locale = "en-US"
        if trigger:
            widget = rerun.widget_states.widgets.add()
            widget.id = self.buttons[trigger]
            widget.trigger_value = True
        self.finished.clear()
        await self.ws.send(back.SerializeToString())

    async def _run_script(self, **rerun) -> None:
        await self._send_rerun(**rerun)
        await self.finished.wait()

    async def click(self) -> None:
        self.session.click_started = time.monotonic()
        await self._send_rerun(page_hash=self.page_hash, trigger="train_start")
        self.session.click_done = time.monotonic()

    async def press(self, key: str) -> None:
        await self._run_script(page_hash=self.page_hash, trigger=key)

    async def goto(self, page: str) -> None:
        """Follow the navigation link to `page`, as the frontend does."""
        path = PAGES[page][0]
        self.query_string = ""
        self.forget_views()
        await self._run_script(page_hash=self.pages[path], page_name=path)

    def forget_views(self) -> None:
        self.views.clear()
        for event in self.arrived.values():
            event.clear()

    async def view(self, name: str) -> dict:
        """The data of live view `name`, once the page has sent it."""
        await self.arrived.setdefault(name, asyncio.Event()).wait()
        return self.views[name]

    async def _read(self) -> None:
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        session = self.session
        try:
            async for data in self.ws:
                message = ForwardMsg()
                message.ParseFromString(data)
                kind = message.WhichOneof("type")
                if kind == "navigation":
                    navigation = message.navigation
                    self.pages.update(
                        {p.url_pathname: p.page_script_hash for p in navigation.app_pages}
                    )
                    self.page_hash = navigation.page_script_hash or self.page_hash
                elif kind == "page_info_changed":
                    self.query_string = message.page_info_changed.query_string
                elif kind == "script_finished":
                    session.script_runs.append(time.monotonic())
                    if message.script_finished != ForwardMsg.FINISHED_EARLY_FOR_RERUN:
                        self.finished.set()
                elif kind == "session_event":
                    event = message.session_event
                    if event.HasField("script_compilation_exception"):
                        exc = event.script_compilation_exception
                        session.problems.append(f"compilation exception: {exc.message}")
                elif kind == "delta" and message.delta.WhichOneof("type") == "new_element":
                    self._element(message.delta.new_element)
        except Exception as error:  # a closed socket ends the reader; say why if unexpected
            if not isinstance(error, asyncio.CancelledError):
                session.problems.append(f"websocket: {type(error).__name__}: {error}")

    def _element(self, element) -> None:
        session = self.session
        kind = element.WhichOneof("type")
        if kind == "button":
            self.buttons[element.button.id.rsplit("-", 1)[-1]] = element.button.id
        elif kind == "exception":
            exc = element.exception
            session.problems.append(f"exception on the page: {exc.type}: {exc.message[:300]}")
        elif kind == "alert" and element.alert.format == 1:  # ERROR
            session.problems.append(f"error on the page: {element.alert.body[:300]}")
        elif kind == "bidi_component" and element.bidi_component.component_name.endswith(
            "rnnlab_live"
        ):
            try:
                data = json.loads(element.bidi_component.json)
            except ValueError:
                return
            name = data.get("view")
            self.views[name] = data
            self.arrived.setdefault(name, asyncio.Event()).set()
            if name == "loss" and session.click_started is not None and session.run_id is None:
                session.run_id = data.get("run_id")
                session.mounted_s = time.monotonic() - session.click_started

    async def act(self) -> None:
        """From the loaded Train page to watching the session's page: press Train (but on
        race), follow the link, start a race or take one another session started."""
        session = self.session
        if session.page != "race":
            self.forget_views()
            await self.click()
            await self.view("loss")
            if session.page == "train":
                return
            await self.finished.wait()  # a person clicks the link once the page is drawn
        await self.goto(session.page)
        if session.page == "race" and session.racer:
            await self.press("race_preset_button")
            self.forget_views()
            await self.press("race_start")
        elif session.page == "race":
            self.views["race"] = await asyncio.shield(self.borrowed_race)
            self.arrived.setdefault("race", asyncio.Event()).set()
        data = await self.view(next(iter(PAGES[session.page][1])))
        session.sweep_id = data.get("sweep_id")

    async def watch(self, stop: asyncio.Event, end_at: float) -> None:
        """Poll the page's views' routes at the browser's pace until what they show has
        ended, `stop` is set or `end_at`."""
        session = self.session
        session.watch_from = time.monotonic()
        relay = asyncio.create_task(self._relay(stop))
        loops = [
            self._poll(name, url_field, period, end_at)
            for name, routes in PAGES[session.page][1].items()
            for url_field, period in routes
        ]
        try:
            await asyncio.gather(*loops)
        finally:
            relay.cancel()
            session.watch_until = time.monotonic()
            session.finish_refreshes()

    async def _relay(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self.halt.set()

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.halt.wait(), seconds)

    async def _poll(self, view: str, url_field: str, period: float, end_at: float) -> None:
        session = self.session
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.view(view), max(0.1, end_at - time.monotonic()))
        data = self.views.get(view)
        if data is None:
            session.error = f"the page never showed its {view} view"
            self.halt.set()
            return
        path = urlsplit(urljoin(self.root, data[url_field])).path
        http = Http(*self.address)
        self.connections.append(http)
        ask = {
            "points_url": self._points,
            "gates_url": self._gates,
            "gradients_url": self._gradients,
        }.get(url_field, self._rows)
        failures = 0
        while not self.halt.is_set() and time.monotonic() < end_at:
            started = time.monotonic()
            try:
                going = await ask(http, path, data)
            except RouteError as error:
                session.error = f"{path}: {error}"
                going = False
            except (OSError, TimeoutError, ValueError, IndexError, KeyError, EOFError) as error:
                failures += 1
                if failures >= 3:
                    session.error = f"{path} failed 3 times: {type(error).__name__} {error}"
                    going = False
                else:
                    going = True
            else:
                failures = 0
            if not going:
                self.halt.set()
                break
            await self._pause(max(0.05, period - (time.monotonic() - started)))

    async def _points(self, http: Http, path: str, data: dict) -> bool:
        """Progress and new points (the loss chart), or progress alone: Inside asks for
        the points after the run's last step, of which there are none."""
        session = self.session
        progress_only = "settings" in data
        if progress_only:
            since = data["settings"]["steps"]
        else:
            since = session.refreshes[-1][1] if session.refreshes else 0
        code, live = await http.get_json(f"{path}?since={since}")
        if code != 200 or not isinstance(live, dict):
            raise RouteError(f"HTTP {code}: {str(live)[:200]}")
        at, url_id = time.monotonic(), path.rsplit("/", 1)[-1]
        going = session.take_points(at, live, url_id, progress_only=progress_only)
        return going and not (self.first_point_only and session.first_point_s is not None)

    async def _picture(self, http: Http, path: str, kind: str, layer: int) -> None:
        after = self.after.get((kind, layer), -1)
        query = f"layer={layer}&after={after}" if kind == "gates" else f"after={after}"
        code, answer = await http.get_json(f"{path}?{query}")
        if code == 204:
            return
        if code != 200 or not isinstance(answer, dict):
            raise RouteError(f"HTTP {code}: {str(answer)[:200]}")
        step = int(answer["step" if kind == "gates" else "gradient_step"])
        self.after[kind, layer] = step
        self.session.take_picture(time.monotonic(), kind, step)

    async def _gates(self, http: Http, path: str, data: dict) -> bool:
        await self._picture(http, path, "gates", int(data.get("layer", 0)))  # the shown layer
        return True

    async def _gradients(self, http: Http, path: str, data: dict) -> bool:
        await self._picture(http, path, "gradients", 0)
        return True

    async def _rows(self, http: Http, path: str, data: dict) -> bool:
        since = ",".join(f"{run_id}:{seen}" for run_id, seen in self.row_since.items())
        code, answer = await http.get_json(f"{path}?since={since}")
        if code != 200 or not isinstance(answer, dict):
            raise RouteError(f"HTTP {code}: {str(answer)[:200]}")
        for row in answer["runs"]:
            self.row_since[row["run_id"]] = row["seen"]
        return self.session.take_rows(time.monotonic(), answer["runs"], data.get("total"))

    async def close(self) -> None:
        for http in self.connections:
            await http.close()
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.ws.close(), 5)
        if self.reader_task is not None:
            self.reader_task.cancel()
            with contextlib.suppress(BaseException):
                await self.reader_task


class BrowserTab:
    """One session in a real Chromium tab (its own context: its own cookies)."""

    def __init__(self, session: Session, server_url: str):
        self.session = session
        self.url = server_url + "/" + (f"?{session.query}" if session.query else "")
        self.context = None
        self.page = None
        self.point: tuple[float, float] | None = None
        self.watch: dict | None = None
        self.perf_offset_s = 0.0  # performance.now() / 1000 - time.monotonic()

    async def open(self, browser, timeout_s: float) -> None:
        self.context = await browser.new_context(viewport=VIEWPORT)
        self.context.set_default_timeout(timeout_s * 1000)
        await self.context.add_init_script(WATCH_JS)
        self.page = await self.context.new_page()
        await self.page.goto(self.url)
        await self.page.wait_for_function(APP_IDLE_JS)
        # Loaded as a person sees it: the charts can draw (Plotly fetched and warmed up).
        await self.page.wait_for_function("() => window.__rnnlabPlotlyWarm === true")
        button = self.page.locator(".st-key-train_start button")
        await button.wait_for()
        await button.scroll_into_view_if_needed()
        box = await button.bounding_box()
        self.point = (box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)

    async def click(self) -> None:
        self.session.click_started = time.monotonic()
        await self.page.mouse.click(*self.point)  # real input; the spot was found beforehand
        self.session.click_done = time.monotonic()

    async def act(self) -> None:
        """Press Train (but on race), follow the page's link, start a race on race."""
        try:
            await self._act()
        except BaseException:
            await self.screenshot("act")
            raise

    async def _act(self) -> None:
        session = self.session
        if session.page != "race":
            await self.click()
            if session.page == "train":
                await self._watching()
                return
            await self.page.wait_for_function("() => window.__bench.fetches.length > 0")
        path = PAGES[session.page][0]
        await self._click_and_settle(f'[data-testid="stSidebarNav"] a[href$="/{path}"]')
        if session.page == "race":
            await self._click_and_settle(".st-key-race_preset_button button")
            await self._click_and_settle(".st-key-race_start button")
            await self.page.wait_for_function(RACE_SHOWN_JS)
        await self._watching()

    async def _click_and_settle(self, selector: str) -> None:
        """Click, then wait until the script run it starts has ended; click once more
        (and say so) if none has ended within SETTLE_TIMEOUT_S."""
        for attempt in (1, 2):
            await self.page.wait_for_function(APP_IDLE_JS)  # as a person waits for the page
            runs = await self.page.evaluate("() => window.__bench.scriptRuns.length")
            await self.page.locator(selector).click()
            try:
                await self.page.wait_for_function(
                    f"() => window.__bench.scriptRuns.length > {runs} && ({APP_IDLE_JS})()",
                    timeout=SETTLE_TIMEOUT_S * 1000,
                )
                return
            except Exception:
                await self.screenshot(f"click{attempt}")
                if attempt == 2:
                    raise
                self.session.problems.append(f"clicking {selector} ran no script; clicked again")

    async def _watching(self) -> None:
        self.perf_offset_s = await self.page.evaluate("performance.now()") / 1000
        self.session.watch_from = time.monotonic()
        self.perf_offset_s -= self.session.watch_from

    def _monotonic(self, perf_ms: float) -> float:
        return perf_ms / 1000 - self.perf_offset_s

    async def follow(self, stop: asyncio.Event, end_at: float) -> None:
        session = self.session
        clicked_checked = session.page == "race"
        while time.monotonic() < end_at and not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
            state = await self.page.evaluate(BROWSER_STATUS_JS)
            if not state["clicked"] and not clicked_checked:
                clicked_checked = True
                session.problems.append("the mouse click missed Train; clicked it by locator")
                await self.page.locator(".st-key-train_start button").click()
            if session.page in ("train", "inside") and state["status"] in ENDED:
                break
            if session.page == "race" and state["rows"] and state["active"] == 0:
                break
        session.watch_until = time.monotonic()
        await asyncio.sleep(0.5)  # the last answer's draw
        self.watch = await self.page.evaluate("() => window.__bench")
        fallback = await self.page.get_by_text("Live updates by polling the page").count()
        if fallback:
            session.problems.append("the live view fell back to polling the page")
        last = self.watch["fetches"][-1] if self.watch["fetches"] else None
        unfinished = session.page != "race" and (not last or last[3] not in ENDED)
        if (session.page == "train" and self.watch.get("firstPointAt") is None) or unfinished:
            await self.screenshot("follow")
        exceptions = await self.page.locator('[data-testid="stException"]').all_inner_texts()
        for text in exceptions:
            session.problems.append(f"exception on the page: {text[:300]}")
        self._digest()

    async def screenshot(self, stage: str) -> None:
        """The whole page as it stands, for a look at what went wrong."""
        with contextlib.suppress(Exception):
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            shot = SCREENSHOTS / f"workshop-{self.session.page}-{stage}-{self.session.index}.png"
            await asyncio.wait_for(self.page.screenshot(path=str(shot), full_page=True), 10)
            self.session.notes[f"screenshot_{stage}"] = str(shot)

    def _digest(self) -> None:
        session, watch = self.session, self.watch
        click_at = watch["clickAt"]
        session.notes.update(
            clicked=click_at is not None,
            fetches=len(watch["fetches"]),
            pictures=len(watch["pictures"]),
            row_answers=len(watch["rows"]),
            chart_updates=len(watch["updates"]),
            last_chart_value=watch["updates"][-1][1] if watch["updates"] else None,
            route_failures=watch["failures"][:5],
        )
        if watch["failures"]:
            session.problems.append(f"the view's route requests failed: {watch['failures'][:3]}")
        if click_at is not None and watch["firstPointAt"] is not None:
            session.first_point_s = (watch["firstPointAt"] - click_at) / 1000
        if click_at is not None:
            mounted = [u[0] for u in watch["updates"] if u[0] >= click_at]
            session.mounted_s = (mounted[0] - click_at) / 1000 if mounted else None
            answered = [f[0] for f in watch["fetches"] if f[0] >= click_at]
            session.notes["first_answer_s"] = (answered[0] - click_at) / 1000 if answered else None
        fetches = [f for f in watch["fetches"] if click_at is None or f[0] >= click_at]
        for at, url_id, answer_id, status, step, rate, _ in fetches:
            session.answers += 1
            session.run_ids_seen.update({url_id, str(answer_id)})
            session.status, session.step = status, int(step or 0)
            if status == "running" and rate:
                session.rates.append(float(rate))
            if status in ENDED and session.ended_at is None:
                session.ended_at = self._monotonic(at)
        for at, kind, _run, step in watch["pictures"]:
            if step is not None:
                session.take_picture(self._monotonic(at), kind, int(step))
        session.answers += len(watch["rows"])
        for at, rows, active, route in watch["rows"]:
            session.sweep_id = route.partition("/")[2] or None
            if rows and not active and session.ended_at is None:
                session.ended_at = self._monotonic(at)  # the race has ended
        session.script_runs = [self._monotonic(at) for at in watch["scriptRuns"]]
        charts = {u[2] for u in watch["updates"] if u[2]}
        session.run_ids_seen.update(charts)
        if fetches:
            session.run_id = fetches[-1][1]
        elif len(charts) == 1:
            session.run_id = next(iter(charts))
        if session.status and session.status not in ("completed", "running", "queued"):
            session.problems.append(f"run ended {session.status}")
        # Distinct chart values after the click while the run trained.
        distinct, previous = [], None
        for at, step, _ in watch["updates"]:
            if click_at is not None and at >= click_at and step > 0 and step != previous:
                distinct.append((at / 1000, step))
                previous = step
        session.refreshes = [(at, step, 0) for at, step in distinct]
        if len(distinct) >= 2 and distinct[-1][0] > distinct[0][0]:
            session.refresh_hz = (len(distinct) - 1) / (distinct[-1][0] - distinct[0][0])

    async def close(self) -> None:
        if self.context is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.context.close(), 10)


# ---------------------------------------------------------------- CPU and memory


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds a process has used, from /proc (None if it is gone)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def tree_cpu_seconds(root: int) -> dict[int, float]:
    """CPU seconds of the server and each of its descendants: pid -> seconds."""
    return {pid: s for pid in process_tree(root) if (s := cpu_seconds(pid)) is not None}


CGROUP_MEMORY = Path("/sys/fs/cgroup/memory")


def expected_workers(memory_limit: int | None = None) -> int:
    """The pool's size as the server's job manager plans it (rnnlab.jobs.settings)."""
    machine = resources.detect()
    if memory_limit is not None:
        machine = dataclasses.replace(machine, memory_bytes=min(memory_limit, machine.memory_bytes))
    return memory_plan(machine, None, local=True).workers


def size_bytes(text: str) -> int:
    """A size such as 690M, 1G or 700000000 in bytes (K, M, G: powers of 1024; MB: 10**6)."""
    units = {"K": 2**10, "M": 2**20, "G": 2**30, "KB": 10**3, "MB": 10**6, "GB": 10**9}
    text = text.strip().upper()
    for suffix in sorted(units, key=len, reverse=True):
        if text.endswith(suffix):
            return int(float(text[: -len(suffix)]) * units[suffix])
    return int(text)


class MemoryGroup:
    """A v1 memory control group for the server: its limit, peak and kills."""

    def __init__(self, limit: int):
        self.path = CGROUP_MEMORY / f"rnnlab-bench-{os.getpid()}"
        self.path.mkdir()
        (self.path / "memory.limit_in_bytes").write_text(str(limit))
        self.limit = limit

    def read(self, name: str) -> str:
        return (self.path / name).read_text()

    def figures(self) -> dict:
        control = dict(line.split() for line in self.read("memory.oom_control").splitlines())
        return {
            "limit_bytes": self.limit,
            "peak_bytes": int(self.read("memory.max_usage_in_bytes")),
            "oom_kills": int(control.get("oom_kill", 0)),
            "limit_hits": int(self.read("memory.failcnt")),
        }

    def remove(self) -> None:
        with contextlib.suppress(OSError):
            self.path.rmdir()


def wait_for_pool(root: int, timeout_s: float) -> float | None:
    """Seconds until the server's fork server and all its workers exist; None if never.

    The server (app.py's lifespan) forks them at start; a session that arrives earlier
    meets the pool still starting.
    """
    started = time.monotonic()
    wanted = expected_workers(MEMORY_LIMIT[0])
    while time.monotonic() - started < timeout_s:
        tree = process_tree(root)
        children = {pid for pid in tree if (proc_stat(pid) or (0, 0))[0] == root}
        grandchildren = [pid for pid in tree if (proc_stat(pid) or (0, 0))[0] in children]
        if len(grandchildren) >= wanted:
            return time.monotonic() - started
        time.sleep(0.25)
    return None


class MemoryWatch:
    """RSS (and PSS) of the server and all its descendants, summed, sampled every second."""

    def __init__(self, root: int):
        self.root = root
        self.seen: dict[int, int] = {}  # every pid of the tree ever seen -> start time
        self.samples: list[tuple[float, int, int, int]] = []  # (t, rss, pss, processes)
        self.marks: dict[str, int] = {}

    def sample(self) -> tuple[int, int, int]:
        tree = process_tree(self.root)
        self.seen.update(tree)
        rss = sum(memory_kib(f"/proc/{pid}/status", "VmRSS:") for pid in tree) * 1024
        pss = sum(memory_kib(f"/proc/{pid}/smaps_rollup", "Pss:") for pid in tree) * 1024
        self.samples.append((time.monotonic(), rss, pss, len(tree)))
        return rss, pss, len(tree)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set() and len(self.samples) < 3000:
            await asyncio.to_thread(self.sample)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)

    def peak(self, since: float = 0.0) -> tuple[int, int, int]:
        window = [s for s in self.samples if s[0] >= since] or self.samples
        return (
            max(s[1] for s in window),
            max(s[2] for s in window),
            max(s[3] for s in window),
        )

    def leftovers(self) -> list[int]:
        """Descendants that outlived the server (same pid and start time as seen)."""
        return [
            pid
            for pid, started in self.seen.items()
            if pid != self.root and (proc_stat(pid) or (0, None))[1] == started
        ]


def end_leftovers(memory: MemoryWatch | None, grace_s: float = 10.0) -> list[int]:
    """The server's descendants still there `grace_s` after it stopped, stopped by pid."""
    if memory is None:
        return []
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and memory.leftovers():
        time.sleep(0.2)
    left = memory.leftovers()
    for pid in left:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and memory.leftovers():
        time.sleep(0.2)
    for pid in memory.leftovers():
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    return left


# ---------------------------------------------------------------- the room


def task_query(task: str, steps: int | None) -> str:
    """The Train page's query string for a task, with `steps` training steps if given."""
    query = dict(parse_qsl(QUERIES.get(task, f"task={task}")))
    return urlencode({**query, "steps": steps} if steps else query)


def plan(args, mix: list[str]) -> list[Session]:
    """Sessions alternate over the mix; browsers are spread over the tasks, last task first
    (so one browser already watches an adding run under the default mix). On race every
    browser starts a race, and protocol clients do until there are `racers` races (one
    at least, for the other protocol clients to watch)."""
    sessions, browsers, page, racers = args.sessions, args.browsers, args.page, args.racers
    tasks = [mix[i % len(mix)] for i in range(sessions)]
    order = sorted(range(sessions), key=lambda i: (i // len(mix), -(i % len(mix))))
    chosen = set(order[:browsers])
    protocol = [i for i in range(sessions) if i not in chosen]
    protocol_racers = set(protocol[: max(racers - browsers, 1)]) if page == "race" else set()
    return [
        Session(
            index=i,
            kind="browser" if i in chosen else "protocol",
            task=task,
            query=task_query(task, args.steps),
            page=page,
            racer=page == "race" and (i in chosen or i in protocol_racers),
        )
        for i, task in enumerate(tasks)
    ]


def new_client(session: Session, server_url: str) -> ProtocolClient | BrowserTab:
    if session.kind == "browser":
        return BrowserTab(session, server_url)
    return ProtocolClient(session, server_url)


async def room(server, sessions: list[Session], memory: MemoryWatch, deadline: float, args):
    """Open every session, press Train in all of them at once (start the races on race),
    let every session watch its page, measure a window of watching, then a late visitor."""
    facts: dict = {}
    stop_memory, stop_watching = asyncio.Event(), asyncio.Event()
    memory_task = asyncio.create_task(memory.run(stop_memory))
    clients: list = []
    playwright = browser = None
    try:
        browsers = [s for s in sessions if s.kind == "browser"]
        if browsers:
            from playwright.async_api import async_playwright

            playwright = await async_playwright().start()
            browser = await launch_browser(playwright)
        setup_end = min(deadline - 60, time.monotonic() + 150)
        setup_s = max(10.0, setup_end - time.monotonic())
        limit = asyncio.Semaphore(8)  # page loads at a time, so the server is not flooded

        async def open_one(session: Session):
            client = new_client(session, server.url)
            clients.append(client)
            async with limit:
                try:
                    browsing = session.kind == "browser"
                    opening = client.open(browser, setup_s) if browsing else client.open()
                    await asyncio.wait_for(opening, setup_s)
                except Exception as error:
                    session.error = f"could not open the page: {type(error).__name__}: {error}"
            return client

        say(f"opening {len(sessions)} sessions ({len(browsers)} in Chromium)")
        opened_at = time.monotonic()
        ready = await asyncio.gather(*(open_one(s) for s in sessions))
        ready = [c for c in ready if c.session.error is None]
        facts["open_s"] = time.monotonic() - opened_at
        memory.sample()
        facts["memory_before"] = memory.samples[-1][1:]
        action = "starting races" if args.page == "race" else "pressing Train in all"
        say(f"{len(ready)} sessions ready after {facts['open_s']:.1f} s; {action}")

        clicks_at = time.monotonic()
        run_end = deadline - TEARDOWN_S
        races = {
            c.session.index: asyncio.get_running_loop().create_future()
            for c in ready
            if c.session.racer and c.session.kind == "protocol"
        }
        for number, client in enumerate(c for c in ready if c.session.page == "race"):
            if client.session.kind == "protocol" and not client.session.racer and races:
                client.borrowed_race = list(races.values())[number % len(races)]

        async def take_part(client) -> None:
            """Each session watches from its own click (not after everyone's)."""
            session = client.session
            try:
                await asyncio.wait_for(client.act(), ACT_TIMEOUT_S)
            except Exception as error:
                session.error = f"{session.page}: {type(error).__name__}: {error}"
                if session.index in races:
                    races[session.index].set_exception(
                        RuntimeError(f"no race from {session.label}")
                    )
                return
            if session.index in races:
                races[session.index].set_result(client.views["race"])
            try:
                following = (
                    client.follow(stop_watching, run_end)
                    if session.kind == "browser"
                    else client.watch(stop_watching, run_end)
                )
                await asyncio.wait_for(following, run_end - time.monotonic() + 15)
            except Exception as error:
                session.error = f"watching failed: {type(error).__name__}: {error}"

        watching = [asyncio.create_task(take_part(c)) for c in ready]
        try:
            facts["window"] = await watch_window(server.pid, sessions, args.watch_s, run_end)
            late = Session(
                index=len(sessions), kind="protocol", task="adding", query=ADDING_QUERY, late=True
            )
            sessions.append(late)
            facts["late"] = await late_visitor(new_client(late, server.url), clients, run_end)
            if args.page != "train":
                stop_watching.set()
            await asyncio.gather(*watching)
        finally:
            stop_watching.set()
            for task in watching:
                task.cancel()
            await asyncio.gather(*watching, return_exceptions=True)
        clicked = [c for c in ready if c.session.click_done is not None]
        if clicked:
            facts["click_spread_s"] = max(c.session.click_done for c in clicked) - min(
                c.session.click_started for c in clicked
            )
        facts["follow_s"] = time.monotonic() - clicks_at
        facts["memory_peak"] = memory.peak(since=clicks_at)
        facts["ran_out_of_time"] = time.monotonic() >= run_end
    finally:
        stop_memory.set()
        for client in clients:
            with contextlib.suppress(Exception):
                await client.close()
        if browser is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(browser.close(), 15)
        if playwright is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(playwright.stop(), 15)
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(memory_task, 5)
    return facts


async def watch_window(server_pid: int, sessions: list[Session], watch_s: float, end_at: float):
    """Once every session watches (or gave up), `watch_s` seconds of the server's CPU:
    its main process (Streamlit, the routes, the job manager) and its workers apart."""
    give_up = min(end_at - 10, time.monotonic() + WAIT_FOR_ROOM_S)
    while time.monotonic() < give_up and any(
        s.watch_from is None and s.error is None for s in sessions
    ):
        await asyncio.sleep(0.25)
    await asyncio.sleep(SETTLE_S)
    before = await asyncio.to_thread(tree_cpu_seconds, server_pid)
    bench_before, opened = sum(os.times()[:2]), time.monotonic()
    say(f"{sum(s.watch_from is not None for s in sessions)} sessions watching; CPU window open")
    await asyncio.sleep(max(1.0, min(watch_s, end_at - 10 - opened)))
    after = await asyncio.to_thread(tree_cpu_seconds, server_pid)
    bench_after, closed = sum(os.times()[:2]), time.monotonic()
    workers = sum(s - before.get(pid, 0.0) for pid, s in after.items() if pid != server_pid)
    say(f"CPU window closed after {closed - opened:.1f} s")
    return {
        "opened": opened,
        "closed": closed,
        "seconds": closed - opened,
        "main_cpu_s": after.get(server_pid, 0.0) - before.get(server_pid, 0.0),
        "workers_cpu_s": workers,
        "bench_cpu_s": bench_after - bench_before,
        "uptime": uptime(),
    }


async def late_visitor(client: ProtocolClient, clients: list, end_at: float) -> dict:
    """One more session, once the room watches: open Train, press it, wait for a point."""
    clients.append(client)
    session = client.session
    client.first_point_only = True
    say("a late visitor opens the Train page")
    started = time.monotonic()
    try:
        await asyncio.wait_for(client.open(), LATE_WAIT_S)
        opened = time.monotonic() - started
        await client.click()
        await asyncio.wait_for(
            client.watch(asyncio.Event(), min(end_at, time.monotonic() + LATE_WAIT_S)),
            LATE_WAIT_S + 10,
        )
    except Exception as error:
        session.error = f"late visitor: {type(error).__name__}: {error}"
        opened = None
    say(f"late visitor's first point after {_s(session.first_point_s)} s")
    return {"open_s": opened, "first_point_s": session.first_point_s, "label": session.label}


async def room_until_signal(server, sessions, memory, deadline, args) -> dict:
    """room(), cancelled cleanly (its finally blocks run) on SIGINT or SIGTERM."""
    loop, task = asyncio.get_running_loop(), asyncio.current_task()
    for number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(number, task.cancel)
    try:
        return await room(server, sessions, memory, deadline, args)
    finally:
        for number in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(number)


def store_runs(home: Path) -> dict[str, dict]:
    """The store's runs (read-only, with plain sqlite3): id -> owner, status, task."""
    path = home / "runs.sqlite"
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        rows = connection.execute("SELECT id, owner, status, config FROM runs").fetchall()
    finally:
        connection.close()
    return {
        run_id: {"owner": owner, "status": status, "task": json.loads(config).get("task")}
        for run_id, owner, status, config in rows
    }


# ---------------------------------------------------------------- report


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _overlap(start: float, end: float, low: float, high: float) -> float:
    return max(0.0, min(end, high) - max(start, low))


def watching_summary(sessions: list[Session], window: dict, page: str) -> dict:
    """What the window of watching cost the server and what the room saw in it."""
    opened, closed, seconds = window["opened"], window["closed"], window["seconds"]
    room = [s for s in sessions if not s.late and s.watch_from is not None]
    viewer_s = sum(_overlap(s.watch_from, s.watch_until or closed, opened, closed) for s in room)
    pictures = {}
    for s in room if page in ("train", "inside") else []:
        start = max(opened, s.watch_from)  # a session may reach its page after the window opens
        end = min(closed, *(t for t in (s.ended_at, s.watch_until) if t is not None))
        steps = {step for at, step in s.pictures.get("gates", []) if start <= at <= end}
        if end - start >= 5:
            pictures[s.label] = len(steps) / (end - start)
    worst = min(pictures, key=pictures.get) if pictures else None
    return {
        "seconds": seconds,
        "mean_viewers": viewer_s / seconds,
        "main_cpu_cores": window["main_cpu_s"] / seconds,
        "main_cpu_ms_per_viewer_s": 1000 * window["main_cpu_s"] / viewer_s if viewer_s else None,
        "workers_cpu_cores": window["workers_cpu_s"] / seconds,
        "gate_pictures_per_s": {
            "runs": len(pictures),
            "median": _median(list(pictures.values())),
            "min": pictures.get(worst),
            "min_session": worst,
            "per_session": pictures,
        },
        "script_runs": {
            kind: sum(
                opened <= at <= min(closed, s.ended_at or closed)
                for s in room
                if s.kind == kind
                for at in s.script_runs
            )
            for kind in ("browser", "protocol")
        },
        "script_runs_after_a_run_ended": sum(
            s.ended_at < at <= closed for s in room if s.ended_at for at in s.script_runs
        ),
        "bench_cpu_cores": window["bench_cpu_s"] / seconds,
        "uptime": window["uptime"],
    }


def summarise(
    sessions: list[Session], facts: dict, runs: dict | None, mix: list[str], page: str
) -> dict:
    summary: dict = {"facts": facts, "page": page}
    if facts.get("window"):
        summary["watching"] = watching_summary(sessions, facts["window"], page)
    summary["late"] = facts.get("late")
    if page == "race":
        summary["races"] = {
            "started": len({s.sweep_id for s in sessions if s.racer and s.sweep_id}),
            "sessions_without_rows": [s.label for s in sessions if not s.late and not s.answers],
        }
    # Click -> first point, for everyone who pressed Train in the room, per kind x task.
    groups: dict[str, list[float]] = {"all": []}
    missing = []
    for s in sessions:
        if s.late or (s.click_started is None and page == "race"):
            continue
        if s.first_point_s is None:
            missing.append(s.label)
            continue
        for name in ("all", s.kind, s.task, f"{s.kind}/{s.task}"):
            groups.setdefault(name, []).append(s.first_point_s)
    summary["first_point"] = {
        name: {"n": len(v), "median_s": _median(v), "worst_s": max(v)}
        for name, v in groups.items()
        if v
    }
    summary["no_first_point"] = missing
    mounted: dict[str, list[float]] = {}
    for s in sessions:
        if s.mounted_s is not None and not s.late:
            mounted.setdefault(f"{s.kind}/{s.task}", []).append(s.mounted_s)
    summary["mounted_median_s"] = {name: _median(v) for name, v in sorted(mounted.items())}
    answered = [s.notes["first_answer_s"] for s in sessions if s.notes.get("first_answer_s")]
    summary["browser_first_answer_median_s"] = _median(answered)
    # Steps/s against the task's fair share.
    fairness = {}
    for task in mix:
        rated = [(s, s.rate()) for s in sessions if s.task == task and s.rate() and not s.late]
        if not rated:
            continue
        fair = statistics.median(r for _, r in rated)
        worst_session, worst_rate = min(rated, key=lambda item: item[1])
        fairness[task] = {
            "runs": len(rated),
            "fair_steps_per_s": fair,
            "min_steps_per_s": worst_rate,
            "max_steps_per_s": max(r for _, r in rated),
            "min_ratio": worst_rate / fair,
            "min_session": worst_session.label,
        }
    summary["fairness"] = fairness
    rated_all = [s.rate() for s in sessions if s.rate()]
    summary["min_ratio"] = (
        min(fairness[t]["min_ratio"] for t in fairness) if fairness and rated_all else None
    )
    # Refresh rates.
    summary["browser_refresh_hz"] = {
        s.label: s.refresh_hz for s in sessions if s.kind == "browser" and s.refresh_hz
    }
    summary["protocol_refresh_hz"] = {
        task: _median(
            [
                s.refresh_hz
                for s in sessions
                if s.kind == "protocol" and s.task == task and s.refresh_hz
            ]
        )
        for task in mix
    }
    summary["protocol_points_per_s"] = {
        task: _median(
            [
                s.points_per_s
                for s in sessions
                if s.kind == "protocol" and s.task == task and s.points_per_s
            ]
        )
        for task in mix
    }
    # Own runs.
    trained = [s for s in sessions if page != "race" or s.late]
    ids = [s.run_id for s in trained if s.run_id]
    mixed = [s.label for s in trained if s.run_id and s.run_ids_seen - {s.run_id}]
    own = {
        "sessions_with_run": len(ids),
        "distinct_run_ids": len(set(ids)),
        "sessions_seeing_other_runs": mixed,
    }
    if runs is not None:
        shown = [runs.get(s.run_id) for s in trained if s.run_id]
        own["runs_in_store"] = len(runs)
        own["distinct_owners"] = len({r["owner"] for r in shown if r})
        own["wrong_task"] = [
            s.label
            for s in trained
            if s.run_id and (runs.get(s.run_id) or {}).get("task") != s.task
        ]
        own["store_statuses"] = dict(
            sorted(
                {
                    status: sum(r["status"] == status for r in runs.values())
                    for status in {r["status"] for r in runs.values()}
                }.items()
            )
        )
    raced = 0 if page != "race" else sum(s.racer for s in sessions) * 3  # the preset's runs
    own["ok"] = (
        len(ids) == len(trained)
        and len(set(ids)) == len(ids)
        and not mixed
        and (runs is None or (own["distinct_owners"] == len(ids) and not own["wrong_task"]))
        and (runs is None or own["runs_in_store"] == len(trained) + raced)
    )
    summary["own_runs"] = own
    summary["problems"] = {
        s.label: [*([s.error] if s.error else []), *s.problems]
        for s in sessions
        if s.error or s.problems
    }
    summary["sessions"] = [
        {
            "index": s.index,
            "kind": s.kind,
            "page": s.page,
            "racer": s.racer,
            "late": s.late,
            "sweep_id": s.sweep_id,
            "gate_pictures": len(s.pictures.get("gates", [])),
            "script_runs": [round(at - s.watch_from, 2) for at in s.script_runs if s.watch_from],
            "ended_s": s.ended_at - s.watch_from if s.ended_at and s.watch_from else None,
            "task": s.task,
            "run_id": s.run_id,
            "first_point_s": s.first_point_s,
            "mounted_s": s.mounted_s,
            "steps_per_s": s.rate(),
            "refresh_hz": s.refresh_hz,
            "points_per_s": s.points_per_s,
            "status": s.status,
            "step": s.step,
            "answers": s.answers,
            "error": s.error,
            "problems": s.problems,
            "notes": s.notes,
        }
        for s in sessions
    ]
    return summary


def _s(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def print_watching(summary: dict, args) -> None:
    """The window of watching: the server's CPU, gate pictures, script runs, late visitor."""
    out, watching, late = print, summary.get("watching"), summary.get("late") or {}
    if not watching:
        out("watching: no window measured")
        return
    out(
        f"watching {args.page}: {watching['mean_viewers']:.1f} viewers on average over "
        f"{watching['seconds']:.1f} s ({watching['uptime']})"
    )
    out(
        f"    server main process CPU: {watching['main_cpu_cores']:.3f} s/s in all, "
        f"{_s(watching['main_cpu_ms_per_viewer_s'])} ms per viewer per second; "
        f"workers {watching['workers_cpu_cores']:.2f} cores; this benchmark's protocol "
        f"clients {watching['bench_cpu_cores']:.2f} cores"
    )
    pictures = watching["gate_pictures_per_s"]
    if pictures["runs"]:
        out(
            f"    gate pictures per run per second: median {_s(pictures['median'])}, "
            f"min {_s(pictures['min'])} ({pictures['min_session']}) over {pictures['runs']} runs"
        )
    runs = watching["script_runs"]
    out(
        f"    Streamlit script runs while watching: {runs['browser']} in the Chromium tabs, "
        f"{runs['protocol']} for the protocol clients (and "
        f"{watching['script_runs_after_a_run_ended']} once their run had ended: the page "
        "shows how it ended)"
    )
    out(
        f"    late visitor ({late.get('label')}): Train page open in {_s(late.get('open_s'))} s, "
        f"click -> first point {_s(late.get('first_point_s'))} s"
    )


def print_report(summary: dict, args, mix: list[str]) -> None:
    facts = summary["facts"]
    out = print
    out(f"load at start: {facts.get('uptime_start')}")
    out(
        f"room: {args.sessions} sessions ({args.browsers} Chromium tabs, "
        f"{args.sessions - args.browsers} protocol clients) on the {args.page} page, "
        f"task mix {','.join(mix)}; "
        f"{os.cpu_count()} cores; opened in {_s(facts.get('open_s'), 1)} s"
    )
    if facts.get("pool_warm_s") is not None or not args.cold:
        out(f"sessions opened once the training pool was up ({_s(facts.get('pool_warm_s'), 1)} s)")
    else:
        out("sessions opened as soon as the server answered (--cold)")
    out(
        f"clicks on Train: all within {_s(facts.get('click_spread_s'), 3)} s"
        + (" (NOT within one second)" if (facts.get("click_spread_s") or 0) > 1 else "")
        + "; "
        f"runs followed for {_s(facts.get('follow_s'), 1)} s"
        + ("  (stopped by the time limit)" if facts.get("ran_out_of_time") else "")
    )
    out("click -> first point:")
    for name, figure in summary["first_point"].items():
        out(
            f"    {name:<18} n={figure['n']:<3} median {figure['median_s']:.2f} s, "
            f"worst {figure['worst_s']:.2f} s"
        )
    out(
        "    of which click -> live view on the page (median): "
        + ", ".join(f"{k} {v:.2f} s" for k, v in summary["mounted_median_s"].items())
        + (
            f"; browsers' first route answer {summary['browser_first_answer_median_s']:.2f} s"
            " (the view polls once Plotly has loaded)"
            if summary["browser_first_answer_median_s"] is not None
            else ""
        )
    )
    if summary["no_first_point"]:
        out(f"    NO first point: {', '.join(summary['no_first_point'])}")
    out("steps/s as the route reports it (mean over each run) vs the task's fair share (median):")
    for task, figure in summary["fairness"].items():
        out(
            f"    {task:<8} {figure['runs']} runs: fair {figure['fair_steps_per_s']:.1f}, "
            f"range {figure['min_steps_per_s']:.1f}..{figure['max_steps_per_s']:.1f}; "
            f"min ratio {figure['min_ratio']:.2f} ({figure['min_session']})"
        )
    out(f"    minimum ratio over all tasks: {_s(summary['min_ratio'])}")
    browser_hz = summary["browser_refresh_hz"]
    out(
        "live chart refresh in the browsers (distinct data-rnnlab-last-step values/s): "
        + (", ".join(f"{k} {v:.2f} Hz" for k, v in browser_hz.items()) or "—")
    )
    out(
        "protocol clients' refresh (answers with new points/s, median): "
        + ", ".join(f"{t} {_s(v)} Hz" for t, v in summary["protocol_refresh_hz"].items())
        + "; points/s: "
        + ", ".join(f"{t} {_s(v, 1)}" for t, v in summary["protocol_points_per_s"].items())
    )
    if "races" in summary:
        races = summary["races"]
        out(
            f"races: {races['started']} started (the preset: 3 runs each); sessions that saw "
            f"no rows: {races['sessions_without_rows'] or 'none'}"
        )
    print_watching(summary, args)
    before, peak = facts.get("memory_before"), facts.get("memory_peak")
    if before and peak:
        out(
            f"server + workers memory: RSS summed {before[0] / 2**20:.0f} MiB before the "
            f"clicks, peak {peak[0] / 2**20:.0f} MiB while running ({peak[2]} processes); "
            f"PSS {before[1] / 2**20:.0f} -> peak {peak[1] / 2**20:.0f} MiB"
        )
    if facts.get("memory_cgroup"):
        group = facts["memory_cgroup"]
        out(
            f"memory cgroup: limit {group['limit_bytes'] / 2**20:.0f} MiB, peak "
            f"{group['peak_bytes'] / 2**20:.0f} MiB, processes killed for memory "
            f"{group['oom_kills']}, times at the limit {group['limit_hits']}"
        )
    own = summary["own_runs"]
    out(
        f"own runs: {'yes' if own['ok'] else 'NO'} — {own['sessions_with_run']} sessions "
        f"with a run, {own['distinct_run_ids']} distinct run ids"
        + (
            f", {own['distinct_owners']} distinct owners, {own['runs_in_store']} runs in the "
            f"store {own['store_statuses']}"
            if "runs_in_store" in own
            else ""
        )
        + (
            f"; saw other runs: {own['sessions_seeing_other_runs']}"
            if own["sessions_seeing_other_runs"]
            else ""
        )
        + (f"; wrong task: {own['wrong_task']}" if own.get("wrong_task") else "")
    )
    if summary["problems"]:
        out("problems:")
        for label, problems in summary["problems"].items():
            for problem in problems[:5]:
                out(f"    {label}: {problem}")
    if facts.get("leftover_processes"):
        left = facts["leftover_processes"]
        out(f"server descendants alive 10 s after the server stopped (ended by pid): {left}")
    out(
        f"server stopped in {_s(facts.get('server_stop_s'), 1)} s "
        f"(exit code {facts.get('server_exit_code')})"
    )
    if facts.get("server_log_excerpt"):
        out("server log excerpt:")
        out(facts["server_log_excerpt"])
    if facts.get("aborted"):
        out(f"ABORTED: {facts['aborted']} (the figures above are partial)")
    out(f"load at end: {facts.get('uptime_end')}")


def log_excerpt(text: str, lines: int = 40) -> str:
    """The server log's first traceback (or its tail), without the bare-mode warnings."""
    noise = "missing ScriptRunContext"
    rows = [row for row in text.splitlines() if noise not in row]
    dropped = len(text.splitlines()) - len(rows)
    marked = [i for i, row in enumerate(rows) if row.startswith(("Traceback", "Exception in"))]
    start = max(0, marked[0] - 1) if marked else max(0, len(rows) - lines)
    note = f"  ({dropped} '{noise}' warnings left out)" if dropped else ""
    return "\n".join(["  " + row for row in rows[start : start + lines]]) + (
        f"\n{note}" if note else ""
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=30, help="sessions in the room")
    parser.add_argument("--browsers", type=int, default=3, help="of them, real Chromium tabs")
    parser.add_argument("--task-mix", default="hello,adding", help="tasks sessions alternate over")
    parser.add_argument(
        "--page", choices=list(PAGES), default="train", help="what the room watches"
    )
    parser.add_argument("--racers", type=int, default=3, help="on race: races started")
    parser.add_argument(
        "--steps", type=int, help="training steps of every run (default: the task's)"
    )
    parser.add_argument(
        "--watch-s", type=float, default=30.0, help="seconds of watching measured for CPU"
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument(
        "--memory-limit",
        type=size_bytes,
        help="run the server in a memory cgroup of this size (690M, 1G; needs root)",
    )
    parser.add_argument(
        "--time-limit", type=float, default=330.0, help="seconds after which everything stops"
    )
    parser.add_argument(
        "--cold",
        action="store_true",
        help="open the sessions as soon as the server answers, not once its workers exist",
    )
    args = parser.parse_args()
    mix = [t.strip() for t in args.task_mix.split(",") if t.strip()]
    unknown = [t for t in mix if t not in TASK_NAMES]
    if not mix or unknown:
        parser.error(f"--task-mix: unknown task(s) {unknown}; choose from {', '.join(TASK_NAMES)}")
    if args.sessions < 1 or not 0 <= args.browsers <= args.sessions:
        parser.error("need --sessions >= 1 and 0 <= --browsers <= --sessions")
    if args.browsers:
        reason = chromium_missing_reason()
        if reason:
            sys.exit(f"cannot run: {reason} (or use --browsers 0)")

    def interrupted(number, _frame):
        raise KeyboardInterrupt(f"signal {number}")  # unwinds through every finally block

    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGINT, interrupted)
    started = time.monotonic()
    deadline = started + args.time_limit
    facts: dict = {"uptime_start": uptime()}
    say(f"load at start: {facts['uptime_start']}")
    sessions = plan(args, mix)
    server = memory = group = None
    runs = None
    MEMORY_LIMIT[0] = args.memory_limit
    with tempfile.TemporaryDirectory(prefix="rnnlab-workshop-") as home:
        try:
            if args.memory_limit:
                group = MemoryGroup(args.memory_limit)
                say(f"server in memory cgroup {group.path} ({args.memory_limit / 2**20:.0f} MiB)")
            server = start_server(
                Path(home),
                SERVER_LOG,
                timeout_s=min(90.0, args.time_limit / 3),
                cgroup=group.path if group else None,
            )
            memory = MemoryWatch(server.pid)
            say(f"server pid {server.pid} at {server.url} (log {SERVER_LOG})")
            if not args.cold:
                facts["pool_warm_s"] = wait_for_pool(server.pid, min(60.0, args.time_limit / 5))
                say(f"training pool up after {_s(facts['pool_warm_s'], 1)} s")
            facts.update(asyncio.run(room_until_signal(server, sessions, memory, deadline, args)))
            try:
                runs = store_runs(Path(home))
            except sqlite3.Error as error:
                facts["store_error"] = str(error)
        except (KeyboardInterrupt, asyncio.CancelledError):
            facts["aborted"] = "interrupted (SIGINT or SIGTERM)"
        except Exception as error:
            traceback.print_exc()
            facts["aborted"] = f"{type(error).__name__}: {error}"
        finally:
            if server is not None:
                stopping = time.monotonic()
                try:
                    server.stop()
                finally:
                    facts["leftover_processes"] = end_leftovers(memory)
                facts["server_stop_s"] = time.monotonic() - stopping
                facts["server_exit_code"] = server.process.returncode
                if group is not None:
                    facts["memory_cgroup"] = group.figures()
                log = server.log.read_text(errors="replace") if server.log.exists() else ""
                trouble = any(
                    s.error or s.problems or (s.click_started and s.first_point_s is None)
                    for s in sessions
                )
                if trouble or "Traceback" in log:
                    facts["server_log_excerpt"] = log_excerpt(log)
    if group is not None:
        group.remove()
    facts["uptime_end"] = uptime()
    facts["wall_s"] = time.monotonic() - started
    summary = summarise(sessions, facts, runs, mix, args.page)
    with contextlib.suppress(OSError):
        REPORT_JSON.write_text(json.dumps(summary, indent=2, default=str))
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
    else:
        print_report(summary, args, mix)
    say(f"done in {facts['wall_s']:.0f} s")
    ok = summary["own_runs"]["ok"] and not summary["no_first_point"] and not facts.get("aborted")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
