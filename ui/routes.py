"""The live path's HTTP routes, served beside Streamlit's own by `st.App` (see app.py).

    GET /api/runs/{run_id}?since=N     progress and the points after step N, as JSON
    GET /api/runs/{run_id}/gates?layer=L&after=S   one layer's newest gate pictures
                                       (compact JSON; 204 if none newer than step S)
    GET /api/runs/{run_id}/gradients?after=S   the gradient-through-time history
    GET /api/runs/{run_id}/influence?after=S   which input steps the predictions use,
                                       and its history (204 if none newer than step S)
    GET /api/runs/{run_id}/trajectory?layer=L&after=S   one layer's hidden-state paths
                                       on the latest PCA axes (204 if none newer)
    GET /api/sweeps/{sweep_id}?since=ID:N,...  a race's runs and their new points
    GET /api/room?since=ID:N,ID:N      every live and recent run's row and new points
    GET /api/studies/{name}?since=V&evaluator=E   a study's trials, best, what matters
                                       (204 if still at version V), and the asker's own
    GET /api/plotly.js                 Plotly's JavaScript, from the plotly package

Live views (ui/live.js) poll these instead of rerunning their page: the answers
(ui/answers.py) come from the job manager's memory, a finished run's from the store read
once. Plotly's script ships inside the Python package, so a room without internet access
still gets its charts.

A public room that no visitor can take down:
- Private by default: a run's word, uploaded text and the predictions on them are
  answered only with its owner's key (header X-Rnnlab-Key, ui/answers.viewer_key).
- Nothing heavy on the event loop: answers are built, encoded and gzipped in the thread
  pool; the room's rows are computed at most every 0.25 s for everyone, its whole answer
  encoded and gzipped once; Plotly's script is kept gzipped and plain, both in memory.
- Bounded answers: a run's points at most rnnlab.jobs.feed.LIVE_POINTS (3,000) after
  `since`, or STORED_POINTS (1,500) for a run answered from the store; the room at most
  ROOM_RUNS (60) rows of at most ROW_POINTS + 1 (401) points, about 0.4 MB; a race at
  most MAX_SWEEP_RUNS (256) rows of at most 1,501 points; one layer's gate pictures at most
  MAX_STEPS × MAX_UNITS (100 × 32) bytes per state (under 64 KB in all); the gradient
  history at most 64 profiles of 100 steps; the influence at most 4 + 16 rows and a
  history of 32 of 100 steps (under 40 KB); a layer's paths at most 16 snapshots of 4
  sequences of 100 steps (under 100 KB); a study at most MAX_STUDY_TRIALS (300)
  trials of at most 120 points each, about 0.6 MB. Answers over 1 MB are streamed in chunks, so
  a slow reader holds a chunk of server memory, not the whole answer.
- A per-address rate limit (RATE_PER_S, BURST): beyond it, 429 with Retry-After.
"""

from __future__ import annotations

import gzip
import math
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import plotly
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from rnnlab.jobs import get_manager

from .answers import (
    GZIP_LEVEL,
    ROOM,
    ROOM_RUNS,
    RUN_ID,
    STUDY_NAME,
    SWEEP_ID,
    Encoded,
    gates_bytes,
    gradients_bytes,
    influence_bytes,
    run_answer,
    since_pairs,
    study_encoded,
    sweep_answer,
    trajectory_bytes,
)

NO_STORE = {"Cache-Control": "no-store", "Vary": "Accept-Encoding"}
MAX_SWEEP_RUNS = 256  # rnnlab.sweep.MAX_RUNS
KEY_HEADER = "x-rnnlab-key"  # a session's viewer key (ui/answers.viewer_key)
GZIP_MIN_BYTES = 1000  # smaller answers go plain (Streamlit's middleware uses the same)
# Bodies over STREAM_ABOVE (Plotly's script, a large race) are sent in chunks of
# STREAM_CHUNK, each once the reader has taken the last: a slow reader holds a chunk of
# server memory, not the whole body. Smaller ones go whole (a chunked answer costs the
# event loop a task more, and a whole room's 0.4 MB would hold about as much).
STREAM_ABOVE = 1024 * 1024
STREAM_CHUNK = 256 * 1024
SINCE_PAIR_CHARS = 43  # RUN_ID (32) : step (9 digits) ,
# Requests per second per client address, and the burst above that rate. A workshop room
# often reaches the server from one NAT address: 30 tabs watching a run each ask about 6
# times a second (the loss chart 5, its gate pictures 1; Inside asks 2.5, the room and a
# race 1), 180 a second, and a page load asks a few more at once. 300 a second leaves room
# for 50 such tabs; a burst of 600 lets all 30 tabs reload together. What it lets through
# is cheap: answers come from memory and shared encodings, well under a millisecond each.
RATE_PER_S = 300.0
BURST = 600.0
MAX_ADDRESSES = 10_000  # buckets kept; beyond, the idle (full) ones are dropped


class RateLimit:
    """A token bucket per client address: `rate` requests a second, `burst` at once."""

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic):
        self.rate, self.burst, self.clock = rate, burst, clock
        self._buckets: dict[str, tuple[float, float]] = {}  # address -> (tokens, when)

    def wait_s(self, address: str) -> float:
        """0 if `address` may be answered now (and count it), else the seconds to wait."""
        now = self.clock()
        tokens, when = self._buckets.get(address, (self.burst, now))
        tokens = min(self.burst, tokens + (now - when) * self.rate)
        if tokens < 1:
            self._buckets[address] = (tokens, now)
            return (1 - tokens) / self.rate
        if len(self._buckets) >= MAX_ADDRESSES and address not in self._buckets:
            self._forget_idle(now)
        self._buckets[address] = (tokens - 1, now)
        return 0.0

    def _forget_idle(self, now: float) -> None:
        full = self.burst / self.rate  # seconds after which any bucket has refilled
        self._buckets = {a: b for a, b in self._buckets.items() if now - b[1] < full}
        if len(self._buckets) >= MAX_ADDRESSES:
            self._buckets.clear()


LIMIT = RateLimit(RATE_PER_S, BURST)


def _limited(endpoint: Callable) -> Callable:
    """`endpoint`, answered only within the asking address's rate (LIMIT); else 429."""

    async def limited(request: Request) -> Response:
        address = request.client.host if request.client else ""
        wait = LIMIT.wait_s(address)
        if wait > 0:
            headers = {**NO_STORE, "Retry-After": str(math.ceil(wait))}
            message = {"error": "too many requests from this address; try again shortly"}
            return JSONResponse(message, status_code=429, headers=headers)
        return await endpoint(request)

    return limited


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=NO_STORE)


def _whole_numbers(request: Request, **defaults: int) -> dict[str, int] | None:
    try:
        return {name: int(request.query_params.get(name, d)) for name, d in defaults.items()}
    except ValueError:
        return None


def _since(request: Request, limit: int) -> dict[str, int] | None:
    text = request.query_params.get("since", "")
    return None if len(text) > limit * SINCE_PAIR_CHARS else since_pairs(text, limit)


def _key(request: Request) -> str | None:
    return request.headers.get(KEY_HEADER)


def _chunks(body: bytes) -> Iterator[memoryview]:
    view = memoryview(body)
    for start in range(0, len(view), STREAM_CHUNK):
        yield view[start : start + STREAM_CHUNK]


def _bytes_response(body: bytes, media_type: str, headers: dict[str, str]) -> Response:
    """`body` as it is, in chunks if large (each sent once the reader has taken the last)."""
    if len(body) <= STREAM_ABOVE:
        return Response(body, media_type=media_type, headers=headers)
    headers = {**headers, "Content-Length": str(len(body))}
    return StreamingResponse(_chunks(body), media_type=media_type, headers=headers)


async def _json(request: Request, build: Callable[[], Encoded | bytes | None]) -> Response:
    """The answer `build()` gives, built, encoded and gzipped (if the client accepts it
    and it is large) in the thread pool: 200 with it, 204 for None, 404 for KeyError."""
    gzipped = "gzip" in request.headers.get("accept-encoding", "")

    def work() -> tuple[bytes, bool] | None:
        answer = build()
        if answer is None:
            return None
        encoded = answer if isinstance(answer, Encoded) else Encoded(answer)
        if gzipped and len(encoded.body) >= GZIP_MIN_BYTES:
            return encoded.gzipped(), True
        return encoded.body, False

    try:
        result = await run_in_threadpool(work)
    except KeyError as missing:
        return _error(404, missing.args[0] if missing.args else "not found")
    if result is None:
        return Response(status_code=204, headers=NO_STORE)
    body, compressed = result
    headers = {**NO_STORE, **({"Content-Encoding": "gzip"} if compressed else {})}
    return _bytes_response(body, "application/json", headers)


def _found(answer, what: str):
    if answer is None:
        raise KeyError(what)
    return Encoded.of(answer)


async def run_points(request: Request) -> Response:
    run_id = request.path_params["run_id"]
    if not RUN_ID.fullmatch(run_id):
        return _error(404, "no such run")
    numbers = _whole_numbers(request, since=0)
    if numbers is None:
        return _error(400, "since must be a whole number (a training step)")
    key = _key(request)
    return await _json(
        request,
        lambda: _found(run_answer(get_manager(), run_id, numbers["since"], key=key), "no such run"),
    )


async def _snapshot_part(request: Request, read, **defaults: int) -> Response:
    """A run's snapshot part that `read(manager, run_id, **numbers)` gives, if newer than
    the page has: 200 with its JSON bytes, 204 without; `defaults` are the query's
    whole numbers."""
    run_id = request.path_params["run_id"]
    if not RUN_ID.fullmatch(run_id):
        return _error(404, "no such run")
    numbers = _whole_numbers(request, **defaults)
    if numbers is None:
        return _error(400, f"{' and '.join(defaults)} must be whole numbers")

    def build() -> bytes | None:
        try:
            return read(get_manager(), run_id, **numbers)
        except KeyError:
            raise KeyError("no such run") from None

    return await _json(request, build)


async def run_gates(request: Request) -> Response:
    key = _key(request)

    def read(manager, run_id: str, *, layer: int, after: int) -> bytes | None:
        return gates_bytes(manager, run_id, layer, after, key=key)

    return await _snapshot_part(request, read, layer=0, after=-1)


async def run_gradients(request: Request) -> Response:
    return await _snapshot_part(request, gradients_bytes, after=-1)


async def run_influence(request: Request) -> Response:
    key = _key(request)

    def read(manager, run_id: str, *, after: int) -> bytes | None:
        return influence_bytes(manager, run_id, after, key=key)

    return await _snapshot_part(request, read, after=-1)


async def run_trajectory(request: Request) -> Response:
    return await _snapshot_part(request, trajectory_bytes, layer=0, after=-1)


async def sweep(request: Request) -> Response:
    sweep_id = request.path_params["sweep_id"]
    if not SWEEP_ID.fullmatch(sweep_id):
        return _error(404, "no such race")
    since = _since(request, MAX_SWEEP_RUNS)
    if since is None:
        return _error(400, "since must be RUN_ID:STEP pairs separated by commas")
    key = _key(request)
    return await _json(
        request,
        lambda: _found(
            sweep_answer(get_manager(), sweep_id, since, key=key), "no such race on this server"
        ),
    )


async def room(request: Request) -> Response:
    since = _since(request, 2 * ROOM_RUNS)
    if since is None:
        return _error(400, "since must be RUN_ID:STEP pairs separated by commas")
    return await _json(request, lambda: ROOM.encoded(get_manager(), since))


EVALUATOR = re.compile(r"[a-z-]{1,20}")


async def study(request: Request) -> Response:
    """A study opened by a page of this server (ui/answers.open_study); rnnlab.tune is
    imported in the thread pool on the first request, never on the event loop."""
    name = request.path_params["name"]
    if not STUDY_NAME.fullmatch(name):
        return _error(404, "no such study")
    numbers = _whole_numbers(request, since=-1)
    if numbers is None:
        return _error(400, "since must be a whole number (a study's version)")
    evaluator = request.query_params.get("evaluator") or None
    if evaluator is not None and not EVALUATOR.fullmatch(evaluator):
        return _error(400, "evaluator must be a name such as main-effect")
    key = _key(request)
    return await _json(
        request,
        lambda: study_encoded(
            get_manager(), name, since=numbers["since"], evaluator=evaluator, key=key
        ),
    )


def plotly_source() -> Path:
    return Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


_PLOTLY: dict[bool, bytes] = {}  # Plotly's script as served, plain and gzipped
_PLOTLY_LOCK = threading.Lock()


def plotly_script(gzipped: bool) -> bytes:
    """Plotly's script as served: read once, and compressed once (however many tabs ask
    at the same moment). app.py has both made as the server starts, in a thread."""
    with _PLOTLY_LOCK:
        if gzipped not in _PLOTLY:
            plain = plotly_source().read_bytes()
            _PLOTLY[gzipped] = (
                gzip.compress(plain, compresslevel=GZIP_LEVEL, mtime=0) if gzipped else plain
            )
        return _PLOTLY[gzipped]


async def plotly_js(request: Request) -> Response:
    """Served from memory to every tab, gzipped or not (it is 4.8 MB raw)."""
    gzipped = "gzip" in request.headers.get("accept-encoding", "")
    body = _PLOTLY.get(gzipped)
    if body is None:
        body = await run_in_threadpool(plotly_script, gzipped)
    headers = {"Cache-Control": "public, max-age=86400", "Vary": "Accept-Encoding"}
    if gzipped:
        headers["Content-Encoding"] = "gzip"
    return _bytes_response(body, "text/javascript", headers)


ROUTES = [
    Route("/api/runs/{run_id}", _limited(run_points)),
    Route("/api/runs/{run_id}/gates", _limited(run_gates)),
    Route("/api/runs/{run_id}/gradients", _limited(run_gradients)),
    Route("/api/runs/{run_id}/influence", _limited(run_influence)),
    Route("/api/runs/{run_id}/trajectory", _limited(run_trajectory)),
    Route("/api/sweeps/{sweep_id}", _limited(sweep)),
    Route("/api/plotly.js", _limited(plotly_js)),
    Route("/api/room", _limited(room)),
    Route("/api/studies/{name}", _limited(study)),
]
