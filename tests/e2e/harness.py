"""A real `streamlit run app.py` on a free port and a real Chromium, for the browser tests
and bench/bench_browser.py. Nothing here is mocked: the server trains in its own pool and
writes to its own store under a private RNNLAB_HOME.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts"
SCREENSHOTS = ARTIFACTS / "screenshots"

# Debian's Chromium; Playwright's own browser downloads are never used.
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT = {"width": 1400, "height": 1000}

# True once a script run (or fragment run) has ended and the websocket is up.
APP_IDLE_JS = """() => {
    const app = document.querySelector('[data-testid="stApp"]');
    return !!app && app.dataset.testScriptState === 'notRunning'
        && app.dataset.testConnectionState === 'CONNECTED';
}"""

# The last training step drawn on the page's live loss chart (0: no point yet, -1: no
# chart), as the chart itself says in data-rnnlab-last-step. Not the number of points:
# the chart thins long curves.
LAST_LOSS_STEP_JS = """() => {
    let last = -1;
    for (const chart of document.querySelectorAll('[data-rnnlab-last-step]')) {
        last = Math.max(last, Number(chart.dataset.rnnlabLastStep));
    }
    return last;
}"""

# Counts the page's script runs (and fragment runs) from now on in window.__rnnlabReruns:
# Streamlit marks each on its app element.
COUNT_RERUNS_JS = """() => {
    window.__rnnlabReruns = 0;
    const app = document.querySelector('[data-testid="stApp"]');
    new MutationObserver(() => {
        if (app.dataset.testScriptState === 'running') window.__rnnlabReruns += 1;
    }).observe(app, { attributes: true, attributeFilter: ['data-test-script-state'] });
}"""


def chromium_missing_reason() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is missing (pip install -r requirements-dev.txt)"
    return None


def proc_stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time) of a process, or None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return int(fields[1]), int(fields[19])


def process_tree(root: int) -> dict[int, int]:
    """The root and all its descendants: pid -> start time."""
    parents = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            stat = proc_stat(int(entry.name))
            if stat is not None:
                parents[int(entry.name)] = stat
    tree, frontier = {}, [root]
    while frontier:
        pid = frontier.pop()
        if pid in parents and pid not in tree:
            tree[pid] = parents[pid][1]
            frontier.extend(p for p, (ppid, _) in parents.items() if ppid == pid)
    return tree


def memory_kib(path: str, key: str) -> int:
    """One kB figure of a /proc file (0 if the process is gone)."""
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Server:
    """A running `streamlit run app.py`."""

    process: subprocess.Popen
    url: str
    home: Path
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def rss_bytes(self) -> int:
        """Resident memory of the server process, from /proc."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError(f"no VmRSS for pid {self.pid}")

    def tree_pss_bytes(self) -> int:
        """Proportional memory of the server and every process under it (the training
        workers and their fork server): shared pages split between the processes that
        share them, so the sum is what they take together."""
        tree = process_tree(self.pid)
        return sum(memory_kib(f"/proc/{pid}/smaps_rollup", "Pss:") for pid in tree) * 1024

    def log_tail(self, characters: int = 4000) -> str:
        try:
            return self.log.read_text(errors="replace")[-characters:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)


def start_server(
    home: Path,
    log: Path,
    *,
    timeout_s: float = 120.0,
    env: dict[str, str] | None = None,
    cgroup: Path | None = None,
) -> Server:
    """Start the app on a free port with RNNLAB_HOME=home (and `env` added to the
    environment), inside the control group directory `cgroup` if given (so that it and
    every process it starts live within that group's limits); return once it is healthy."""
    home.mkdir(parents=True, exist_ok=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        "app.py",
        "--server.headless",
        "true",
        "--server.port",
        str(port),
        "--server.address",
        "127.0.0.1",
        "--browser.gatherUsageStats",
        "false",
        # Others edit this checkout while the tests run: never reload modules mid-test.
        "--server.fileWatcherType",
        "none",
    ]
    env = {**os.environ, **(env or {}), "RNNLAB_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    with open(log, "wb") as output:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            preexec_fn=None if cgroup is None else lambda: _join_cgroup(cgroup),
        )
    server = Server(process=process, url=f"http://127.0.0.1:{port}", home=home, log=log)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"streamlit exited with {process.returncode}:\n{server.log_tail()}")
        try:
            with urllib.request.urlopen(f"{server.url}/_stcore/health", timeout=5) as response:
                if response.status == 200:
                    return server
        except OSError:
            pass
        time.sleep(0.25)
    server.stop()
    raise RuntimeError(f"streamlit not healthy after {timeout_s} s:\n{server.log_tail()}")


def _join_cgroup(group: Path) -> None:
    """In the child before it runs the server: move this process into `group`."""
    (group / "cgroup.procs").write_text(str(os.getpid()))


def launch_browser(playwright):
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)


def wait_idle(page, timeout_ms: float = 90_000) -> None:
    page.wait_for_function(APP_IDLE_JS, timeout=timeout_ms)


def open_app(page, server: Server, path: str = "", query: str = "", **wait) -> None:
    """Open a page of the app (path "" is Train) and wait for its script run to end."""
    page.goto(f"{server.url}/{path}" + (f"?{query}" if query else ""))
    wait_idle(page, **wait)


def last_loss_step(page) -> int:
    return page.evaluate(LAST_LOSS_STEP_JS)


def set_slider(page, label: str, value: int, *, minimum: int = 1) -> None:
    """Move a slider with the keyboard, as a person would: Home, then arrow presses."""
    slider = page.get_by_role("slider", name=label)
    slider.focus()
    page.keyboard.press("Home")
    for _ in range(value - minimum):
        page.keyboard.press("ArrowRight")


def set_number(page, key: str, value: float) -> None:
    """Type into a number input (by its widget key) and commit with Enter."""
    box = page.locator(f".st-key-{key} input")
    box.fill(str(value))
    box.press("Enter")


def distinct_values(page, script: str, count: int, timeout_s: float = 60.0) -> list[int]:
    """Sample `script` until it has shown `count` distinct positive values."""
    seen: list[int] = []
    for _ in range(int(timeout_s * 5)):
        value = page.evaluate(script)
        if value > 0 and value not in seen:
            seen.append(value)
            if len(seen) >= count:
                return seen
        page.wait_for_timeout(200)
    raise AssertionError(f"only {seen} within {timeout_s} s")
