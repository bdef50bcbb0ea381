"""Fixtures for the browser tests: one app server and one Chromium for the whole session."""

from __future__ import annotations

import os

import pytest
from harness import (
    ARTIFACTS,
    SCREENSHOTS,
    VIEWPORT,
    chromium_missing_reason,
    launch_browser,
    start_server,
)


@pytest.fixture(scope="session")
def chromium() -> None:
    """Skip without Debian's Chromium, except in CI (CI=true), where that is a failure."""
    reason = chromium_missing_reason()
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"browser tests cannot run in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def server(chromium, tmp_path_factory):
    """`streamlit run app.py` on a free port, with a private RNNLAB_HOME."""
    home = tmp_path_factory.mktemp("rnnlab-home")
    # A closed tab's runs stop after 5 s here (60 s by default), so a test can see it.
    running = start_server(home, ARTIFACTS / "e2e-server.log", env={"RNNLAB_ORPHAN_AFTER_S": "5"})
    yield running
    running.stop()


@pytest.fixture(scope="session")
def browser(chromium):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = launch_browser(playwright)
        yield launched
        launched.close()


@pytest.fixture
def new_page(browser):
    """Pages in fresh browser contexts: each is a separate tab with its own session."""
    contexts = []

    def make():
        context = browser.new_context(viewport=VIEWPORT)
        context.set_default_timeout(60_000)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


@pytest.fixture(scope="session")
def screenshots():
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
