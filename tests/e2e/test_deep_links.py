"""A link straight to a page (/learn, /room, ...) opens it inside the dashboard: with its
navigation, language and settings, never as a bare script."""

import re

import pytest
from harness import open_app

HANGUL = re.compile("[\uac00-\ud7a3]")


@pytest.mark.parametrize("path", ["learn", "room", "compare"])
def test_a_link_to_a_page_opens_it_in_the_dashboard_and_its_language(server, new_page, path):
    page = new_page()
    open_app(page, server, path, "lang=ko")
    title = page.locator("h1").first.inner_text()
    assert HANGUL.search(title), f"/{path}?lang=ko shows {title!r}"
    navigation = page.get_by_test_id("stSidebarNav").inner_text()
    assert "배우기" in navigation and "dashboard" not in navigation, navigation
