"""The live path's HTTP routes, served beside Streamlit's own by `st.App` (see app.py).

    GET /api/runs/{run_id}?since=N     progress and the points after step N, as JSON
    GET /api/runs/{run_id}/gates?layer=L&after=S   one layer's newest gate pictures
                                       (compact JSON; 204 if none newer than step S)
    GET /api/runs/{run_id}/gradients?after=S   the gradient-through-time history
    GET /api/sweeps/{sweep_id}?since=ID:N,...  a race's runs and their new points
    GET /api/room?since=ID:N,ID:N      every live and recent run's row and new points
    GET /api/plotly.js                 Plotly's JavaScript, from the plotly package

Live views (ui/live.js) poll these instead of rerunning their page: the answers
(ui/answers.py) come from the job manager's memory, a finished run's from the store read
once, and cost the server well under a millisecond. Plotly's script ships inside the
Python package, so a room without internet access still gets its charts.
"""

from __future__ import annotations

import gzip
from functools import cache
from pathlib import Path

import plotly
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from rnnlab.jobs import get_manager

from .answers import (
    ROOM_RUNS,
    RUN_ID,
    SWEEP_ID,
    gates_bytes,
    gradients_bytes,
    room_answer,
    run_answer,
    since_pairs,
    sweep_answer,
)

NO_STORE = {"Cache-Control": "no-store"}
MAX_SWEEP_RUNS = 256  # rnnlab.sweep.MAX_RUNS


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=NO_STORE)


def _whole_numbers(request: Request, **defaults: int) -> dict[str, int] | None:
    try:
        return {name: int(request.query_params.get(name, d)) for name, d in defaults.items()}
    except ValueError:
        return None


async def run_points(request: Request) -> Response:
    run_id = request.path_params["run_id"]
    if not RUN_ID.fullmatch(run_id):
        return _error(404, "no such run")
    numbers = _whole_numbers(request, since=0)
    if numbers is None:
        return _error(400, "since must be a whole number (a training step)")
    answer = run_answer(get_manager(), run_id, numbers["since"])
    if answer is None:
        return _error(404, "no such run")
    return JSONResponse(answer, headers=NO_STORE)


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
    try:
        payload = read(get_manager(), run_id, **numbers)
    except KeyError:
        return _error(404, "no such run")
    if payload is None:
        return Response(status_code=204, headers=NO_STORE)
    return Response(payload, media_type="application/json", headers=NO_STORE)


async def run_gates(request: Request) -> Response:
    return await _snapshot_part(request, gates_bytes, layer=0, after=-1)


async def run_gradients(request: Request) -> Response:
    return await _snapshot_part(request, gradients_bytes, after=-1)


async def sweep(request: Request) -> Response:
    sweep_id = request.path_params["sweep_id"]
    if not SWEEP_ID.fullmatch(sweep_id):
        return _error(404, "no such race")
    since = since_pairs(request.query_params.get("since", ""), MAX_SWEEP_RUNS)
    if since is None:
        return _error(400, "since must be RUN_ID:STEP pairs separated by commas")
    answer = sweep_answer(get_manager(), sweep_id, since)
    if answer is None:
        return _error(404, "no such race on this server")
    return JSONResponse(answer, headers=NO_STORE)


async def room(request: Request) -> Response:
    since = since_pairs(request.query_params.get("since", ""), 2 * ROOM_RUNS)
    if since is None:
        return _error(400, "since must be RUN_ID:STEP pairs separated by commas")
    return JSONResponse(room_answer(get_manager(), since), headers=NO_STORE)


@cache
def _plotly_gzipped() -> bytes:
    return gzip.compress(plotly_source().read_bytes(), compresslevel=6)


def plotly_source() -> Path:
    return Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


async def plotly_js(request: Request) -> Response:
    """Compressed once, then served from memory to every tab (it is 4.8 MB raw)."""
    headers = {"Cache-Control": "public, max-age=86400", "Content-Encoding": "gzip"}
    if "gzip" not in request.headers.get("accept-encoding", ""):
        return Response(gzip.decompress(_plotly_gzipped()), media_type="text/javascript")
    return Response(_plotly_gzipped(), media_type="text/javascript", headers=headers)


ROUTES = [
    Route("/api/runs/{run_id}", run_points),
    Route("/api/runs/{run_id}/gates", run_gates),
    Route("/api/runs/{run_id}/gradients", run_gradients),
    Route("/api/sweeps/{sweep_id}", sweep),
    Route("/api/plotly.js", plotly_js),
    Route("/api/room", room),
]
