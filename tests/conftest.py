import pytest
import torch

from rnnlab.jobs import JobManager
from rnnlab.store import RunStore


@pytest.fixture(autouse=True)
def private_run_store(tmp_path_factory, monkeypatch):
    """Every test records its runs in a store of its own, never in ~/.rnnlab."""
    monkeypatch.setenv("RNNLAB_HOME", str(tmp_path_factory.mktemp("rnnlab-home")))


@pytest.fixture
def store(tmp_path, monkeypatch):
    """A run store of the test's own, opened and closed around it."""
    monkeypatch.setenv("RNNLAB_HOME", str(tmp_path))
    with RunStore() as opened:
        yield opened


@pytest.fixture
def make_manager(store):
    """Build job managers on the test's store; all are shut down afterwards."""
    threads = torch.get_num_threads()
    managers: list[JobManager] = []

    def make(**options) -> JobManager:
        manager = JobManager(store=store, **{"workers": 2, **options})
        managers.append(manager)
        return manager

    yield make
    for manager in managers:
        manager.shutdown(timeout=60)
    torch.set_num_threads(threads)
