"""The live path's HTTP routes, served beside Streamlit's own by `st.App` (see app.py).

    GET /api/runs/{run_id}?since=N     progress and the points after step N, as JSON
    GET /api/runs/{run_id}/gates?layer=L&after=S   one layer's latest gate pictures
                                       (compact JSON; 204 if none newer than step S)
    GET /api/plotly.js                 Plotly's JavaScript, from the plotly package
    GET /api/room?since=ID:N,ID:N      every live and recent run's row and the new points
                                       of its curve after step N (see ui.room)

A live chart polls these instead of rerunning its page: the answers come from the job
manager's memory (never from SQLite), cost the server a few hundred microseconds, and
hold nothing a page could not already show. Plotly's script ships inside the Python
package, so a room without internet access still gets its charts.
"""

from __future__ import annotations

import gzip
import re
from functools import cache
from pathlib import Path

import plotly
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from rnnlab.jobs import get_manager
from ui.room import ROOM_RUNS, room_answer

RUN_ID = re.compile(r"[0-9a-f]{6,32}")
NO_STORE = {"Cache-Control": "no-store"}


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=NO_STORE)


async def run_points(request: Request) -> Response:
    run_id = request.path_params["run_id"]
    if not RUN_ID.fullmatch(run_id):
        return _error(404, "no such run")
    since_text = request.query_params.get("since", "0")
    try:
        since = int(since_text)
    except ValueError:
        return _error(400, "since must be a whole number (a training step)")
    live = get_manager().live(run_id, since=since)
    if live is None:
        return _error(404, "this run is not training on this server")
    return JSONResponse(live, headers=NO_STORE)


async def run_gates(request: Request) -> Response:
    run_id = request.path_params["run_id"]
    if not RUN_ID.fullmatch(run_id):
        return _error(404, "no such run")
    try:
        after = int(request.query_params.get("after", "-1"))
        layer = int(request.query_params.get("layer", "0"))
    except ValueError:
        return _error(400, "after and layer must be whole numbers")
    view = get_manager().gates_view(run_id, layer)
    if view is None:
        return _error(404, "this run has no live snapshot on this server")
    step, payload = view
    if payload is None or step <= after:
        return Response(status_code=204, headers=NO_STORE)
    return Response(payload, media_type="application/json", headers=NO_STORE)


def _room_since(text: str) -> dict[str, int] | None:
    """`ID:N,ID:N,...` as {run id: step}; None if it is not that (or too long)."""
    since: dict[str, int] = {}
    for part in filter(None, text.split(",")):
        run_id, colon, step = part.partition(":")
        digits = step.isascii() and step.isdigit() and len(step) < 10
        if not (colon and digits and RUN_ID.fullmatch(run_id)):
            return None
        since[run_id] = int(step)
    return since if len(since) <= 2 * ROOM_RUNS else None


async def room(request: Request) -> Response:
    since = _room_since(request.query_params.get("since", ""))
    if since is None:
        return _error(400, "since must be RUN_ID:STEP pairs separated by commas")
    return JSONResponse(room_answer(get_manager(), since), headers=NO_STORE)


@cache
def _plotly_gzipped() -> bytes:
    source = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    return gzip.compress(source.read_bytes(), compresslevel=6)


async def plotly_js(request: Request) -> Response:
    """Compressed once, then served from memory to every tab (it is 4.8 MB raw)."""
    headers = {"Cache-Control": "public, max-age=86400", "Content-Encoding": "gzip"}
    if "gzip" not in request.headers.get("accept-encoding", ""):
        return Response(gzip.decompress(_plotly_gzipped()), media_type="text/javascript")
    return Response(_plotly_gzipped(), media_type="text/javascript", headers=headers)


ROUTES = [
    Route("/api/runs/{run_id}", run_points),
    Route("/api/runs/{run_id}/gates", run_gates),
    Route("/api/plotly.js", plotly_js),
    Route("/api/room", room),
]
