import pytest


@pytest.fixture(autouse=True)
def private_run_store(tmp_path_factory, monkeypatch):
    """Every test records its runs in a store of its own, never in ~/.rnnlab."""
    monkeypatch.setenv("RNNLAB_HOME", str(tmp_path_factory.mktemp("rnnlab-home")))
