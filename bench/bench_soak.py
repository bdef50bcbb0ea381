"""A workshop day through one server: many runs, one after another, and its memory.

    python bench/bench_soak.py                      # 600 runs by 30 sessions, ~6 minutes
    python bench/bench_soak.py --runs 120 --sessions 10

Starts one real `streamlit run app.py` (tests/e2e/harness.py) with a private RNNLAB_HOME;
`--sessions` clients speak Streamlit's own protocol (bench_workshop.ProtocolClient): each
presses Train on a short hello run, follows it on the live route until it ends, and
presses Train again, until `--runs` runs have ended. The memory of the server and its
workers (PSS, shared pages counted once) is sampled every second; reported: after the
warm-up (the first `--warm-up` runs), the highest, at the end, and the growth after the
warm-up, against the room issue's bound (+150 MB). Every process it starts is stopped,
even on failure; only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests" / "e2e"))

from bench_workshop import (  # noqa: E402
    ENDED,
    MemoryWatch,
    ProtocolClient,
    Session,
    end_leftovers,
    uptime,
    wait_for_pool,
)
from harness import ARTIFACTS, start_server  # noqa: E402

RUN_QUERY = "steps=100&hidden_size=16"  # a short hello run: a few seconds in a full room
GROWTH_BOUND_MIB = 150


async def one_run(client: ProtocolClient, deadline: float) -> str:
    """Press Train, follow the run on the route until it ends; its final status."""
    session = client.session
    session.run_id, session.click_started = None, None
    client.mounted.clear()
    await client.click()
    await asyncio.wait_for(client.mounted.wait(), max(1.0, deadline - time.monotonic()))
    path = client.points_path
    last = 0
    while time.monotonic() < deadline:
        code, live = await client.http.get_json(f"{path}?since={last}")
        if code != 200:
            raise RuntimeError(f"the route answered {code}: {str(live)[:200]}")
        if live["points"]["step"]:
            last = live["points"]["step"][-1]
        if live["status"] in ENDED:
            return live["status"]
        await asyncio.sleep(0.2)
    raise TimeoutError("the run did not end in time")


async def soak(url: str, args, memory: MemoryWatch) -> dict:
    deadline = time.monotonic() + args.time_limit
    clients = [
        ProtocolClient(Session(i, "protocol", "hello", RUN_QUERY), url)
        for i in range(args.sessions)
    ]
    ended: list[tuple[float, str]] = []
    warm_at: list[float] = []
    stop = asyncio.Event()
    sampler = asyncio.create_task(memory.run(stop))
    try:
        await asyncio.gather(*(client.open() for client in clients))

        async def keep_training(client: ProtocolClient) -> None:
            while len(ended) < args.runs and time.monotonic() < deadline:
                status = await one_run(client, deadline)
                ended.append((time.monotonic(), status))
                if len(ended) == args.warm_up:
                    warm_at.append(time.monotonic())
                if len(ended) % 50 == 0:
                    rss, pss, processes = memory.sample()
                    print(
                        f"[{len(ended)} runs] PSS {pss / 2**20:.0f} MiB, "
                        f"RSS {rss / 2**20:.0f} MiB, {processes} processes",
                        file=sys.stderr,
                    )

        await asyncio.gather(*(keep_training(client) for client in clients))
    finally:
        stop.set()
        await sampler
        for client in clients:
            await client.close()
    return {"ended": ended, "warm_at": warm_at[0] if warm_at else None}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=600)
    parser.add_argument("--sessions", type=int, default=30)
    parser.add_argument("--warm-up", type=int, default=60, help="runs before the baseline")
    parser.add_argument("--time-limit", type=float, default=900.0, help="seconds, at most")
    args = parser.parse_args()

    print(f"load at start: {uptime()}")
    with tempfile.TemporaryDirectory(prefix="rnnlab-soak-") as home:
        server = start_server(Path(home), ARTIFACTS / "bench-soak-server.log")
        memory = MemoryWatch(server.pid)
        try:
            wait_for_pool(server.pid, 120)
            started = time.monotonic()
            result = asyncio.run(soak(server.url, args, memory))
            wall = time.monotonic() - started
        finally:
            server.stop()
            end_leftovers(memory)

    ended, warm_at = result["ended"], result["warm_at"]
    statuses = {status: sum(s == status for _, s in ended) for _, status in ended}
    print(
        f"{len(ended)} runs by {args.sessions} sessions in {wall:.0f} s "
        f"({len(ended) / wall:.1f} runs/s): {statuses}"
    )
    if warm_at is None:
        print("fewer runs than the warm-up: no memory figure")
        return 1
    after = [s for s in memory.samples if s[0] >= warm_at]
    base, peak, final = after[0][2], max(s[2] for s in after), after[-1][2]
    growth = (final - base) / 2**20
    print(
        f"server + workers memory (PSS): {base / 2**20:.0f} MiB after {args.warm_up} runs, "
        f"peak {peak / 2**20:.0f} MiB, {final / 2**20:.0f} MiB at the end: "
        f"{growth:+.0f} MiB over the last {len(ended) - args.warm_up} runs "
        f"(bound +{GROWTH_BOUND_MIB} MiB) {'ok' if growth <= GROWTH_BOUND_MIB else 'OVER'}"
    )
    print(f"load at end: {uptime()}; {os.cpu_count()} cores")
    return 0 if growth <= GROWTH_BOUND_MIB and len(ended) >= args.runs else 1


if __name__ == "__main__":
    sys.exit(main())
