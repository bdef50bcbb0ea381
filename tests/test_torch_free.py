"""The dashboard's server never imports torch: only the training workers (and the CLI and
notebooks) do. Importing it costs the server about 220 MB of its own memory, and the
workers have their own copy.

Each check runs in a fresh interpreter that records the stack of the first `import
torch`, so a failure names the chain of imports that pulled it in.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = [
    "app.py",
    "dashboard.py",
    *sorted(p.relative_to(ROOT).as_posix() for p in ROOT.glob("views/*.py")),
]
UI_MODULES = sorted(f"ui.{path.stem}" for path in ROOT.glob("ui/*.py"))
# What the server reads of the engine, none of it through rnnlab.jobs.
ENGINE_MODULES = [
    "rnnlab",
    "rnnlab.cells",
    "rnnlab.cluster",
    "rnnlab.config",
    "rnnlab.devices",
    "rnnlab.downloads",
    "rnnlab.events",
    "rnnlab.presets",
    "rnnlab.specs",
    "rnnlab.store",
    "rnnlab.text",
    "rnnlab.values",
]
# Runs first in each checking interpreter: a finder that never finds anything, but keeps
# the stack of the first import of torch, in this repository's files.
RECORDER = """
import json, sys, traceback
ROOT = {root!r}
sys.path.insert(0, ROOT)
chain = []

class TorchRecorder:
    def find_spec(self, name, path=None, target=None):
        if not chain and (name == "torch" or name.startswith("torch.")):
            chain.extend(
                f"{{frame.filename[len(ROOT) + 1:]}}:{{frame.lineno}}  {{frame.line}}"
                for frame in traceback.extract_stack()[:-1]
                if frame.filename.startswith(ROOT + "/")
            )
        return None

sys.meta_path.insert(0, TorchRecorder())

def report():
    print(json.dumps({{"torch": "torch" in sys.modules, "chain": chain}}))
"""

# Serves an empty stand-in for rnnlab.jobs and its modules: every name they are asked
# for is a placeholder class, so what imports them loads without them.
WITHOUT_JOBS = """
import importlib.abc, importlib.machinery

def placeholder(name):
    if name.startswith("__"):
        raise AttributeError(name)
    return type(name, (), {})

class StandIn(importlib.abc.Loader):
    def create_module(self, spec):
        return None

    def exec_module(self, module):
        module.__path__ = []
        module.__getattr__ = placeholder

class JobsStandIn(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "rnnlab.jobs" or name.startswith("rnnlab.jobs."):
            return importlib.machinery.ModuleSpec(name, StandIn(), is_package=True)
        return None

sys.meta_path.insert(0, JobsStandIn())
"""

# Imports what the page scripts import (their top-level import statements), without
# running the scripts themselves.
PAGE_IMPORTS = """
import ast, importlib

def import_what(script):
    for node in ast.parse(open(f"{ROOT}/{script}", encoding="utf-8").read()).body:
        if isinstance(node, ast.Import):
            for alias in node.names:
                importlib.import_module(alias.name)
        elif isinstance(node, ast.ImportFrom):
            module = importlib.import_module(node.module)
            for alias in node.names:
                if not hasattr(module, alias.name):
                    importlib.import_module(f"{node.module}.{alias.name}")
"""


class TorchImported(AssertionError):
    """The checked code imported torch; the message shows the chain."""


def check(*lines: str, without_jobs: bool = False) -> dict:
    """Run `lines` after the recorder in a fresh interpreter (with the test's RNNLAB_HOME);
    what report() printed."""
    script = RECORDER.format(root=str(ROOT)) + (WITHOUT_JOBS if without_jobs else "")
    script += PAGE_IMPORTS + "\n".join(lines) + "\nreport()\n"
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def assert_no_torch(found: dict, what: str) -> None:
    if found["torch"]:
        chain = "\n  ".join(found["chain"]) or "(not from this repository's files)"
        raise TorchImported(f"{what} imported torch, through:\n  {chain}")


def test_the_engine_modules_the_server_reads_import_no_torch():
    found = check(
        *(f"import {module}" for module in ENGINE_MODULES),
        "from rnnlab import ConfigError, RunConfig, RunStore, Snapshot, Step",
    )
    assert_no_torch(found, ", ".join(ENGINE_MODULES))


def test_the_pages_and_ui_modules_import_no_torch_but_through_rnnlab_jobs():
    found = check(
        *(f"import_what({page!r})" for page in PAGES),
        *(f"import {module}" for module in UI_MODULES),
        "import rnnlab.sweep",
        without_jobs=True,
    )
    assert_no_torch(found, "the pages, ui and rnnlab.sweep (rnnlab.jobs left out)")


def test_the_package_imports_each_name_on_first_use():
    found = check(
        "import rnnlab",
        "assert dir(rnnlab) == rnnlab.__all__",
        "from rnnlab import RunConfig, Step",
        "assert 'torch' not in sys.modules",
        "import rnnlab.probe, rnnlab.train  # the modules, which leave the functions be",
        "from rnnlab import probe, train",
        "assert (probe.__module__, train.__module__) == ('rnnlab.probe', 'rnnlab.train')",
        "assert callable(rnnlab.probe) and callable(rnnlab.train)",
        "assert rnnlab.Step is Step and rnnlab.TASKS is sys.modules['rnnlab.tasks'].TASKS",
    )
    assert found["torch"]  # rnnlab.train has imported it by then


def test_the_server_never_imports_torch():
    """Every page under AppTest (the shared pool's workers start, in their own
    processes), app.py with its routes, and every ui module."""
    views = [page for page in PAGES if page.startswith("views/")]
    found = check(
        "from streamlit.testing.v1 import AppTest",
        "at = AppTest.from_file(f'{ROOT}/dashboard.py', default_timeout=120).run()",
        "shown = [error.message for error in at.exception]",
        f"for page in {views!r}:",
        "    shown += [error.message for error in at.switch_page(page).run().exception]",
        "assert not shown, shown",
        "import app",
        *(f"import {module}" for module in UI_MODULES),
        "from rnnlab.jobs import manager",
        "manager._manager is None or manager._manager.shutdown(timeout=60)",
    )
    known_cause = any(
        line.startswith(("rnnlab/jobs/", "rnnlab/updates.py")) for line in found["chain"]
    )
    if found["torch"] and not known_cause:  # not what the mark expects: a plain failure
        chain = "\n  ".join(found["chain"])
        raise AssertionError(f"the server imported torch, through:\n  {chain}")
    assert_no_torch(found, "the server")
