"""Nothing a stranger types or links is markup, in a real Chromium on a real server: a
crafted share link's warning shows its text, with no link and no image; room names made
of HTML stay text in the Room's leaderboard, legend and page; a name already taken gets
a suffix."""

from __future__ import annotations

from urllib.parse import quote, urlencode

from harness import open_app, wait_idle

RUN_TIMEOUT_MS = 150_000
WORD_JOINER = "\u2060"  # ui/text.py breaks up what Streamlit would link with it
CRAFTED = "` [CLAIM PRIZE](https://example.com/prize) ![t](https://example.com/t.png)`"
HIDDEN = "x`\n\n![t](https://example.com/t.png)"  # ?hide= names are cut at 40
NAMES = ['<a href="https://example.com">x</a>', '<span style="font-size:99px">BIG</span>']

# Links (HTML's, or SVG's in a Plotly legend) and images that lead to example.com.
STRANGE_LINKS_JS = """(root) => [...(root || document).querySelectorAll('a, img')].filter((e) =>
    [e.getAttribute('href'), e.getAttribute('src'),
     e.getAttributeNS('http://www.w3.org/1999/xlink', 'href')]
        .some((url) => url && url.includes('example.com'))).length"""
# Elements drawn 99 px high, by a style attribute or by what the browser computed.
HUGE_JS = """() => [...document.querySelectorAll('*')].filter((e) =>
    (e.getAttribute('style') || '').replace(/\\s/g, '').includes('font-size:99px')
    || getComputedStyle(e).fontSize === '99px').length"""
# The room's leaderboard names and its legend's texts.
ROOM_NAMES_JS = """() => [...document.querySelectorAll(
    'tr[data-rnnlab-room-run] td[data-column=name]')].map((td) => td.textContent)"""
LEGEND_JS = """() => [...document.querySelectorAll('[data-rnnlab-room-runs] .legendtext')]
    .map((text) => text.textContent)"""


def set_name(page, name: str, *, given: str | None = None) -> None:
    """Type a name in the sidebar's box and wait until the box shows the name given (the
    name itself unless said otherwise): the page's rerun writes it back there."""
    box = page.locator(".st-key-room_name input")
    box.fill(name)
    box.press("Enter")
    page.wait_for_function(
        f"() => document.querySelector('.st-key-room_name input').value === {given or name!r}"
    )
    wait_idle(page)


def test_a_crafted_share_link_warns_in_text_with_no_link_or_image(server, new_page):
    page = new_page()
    open_app(page, server, query=urlencode({"cell": CRAFTED, "hide": HIDDEN}, quote_via=quote))
    alerts = page.locator('[data-testid="stAlert"]')
    page.wait_for_function("() => document.querySelectorAll('[data-testid=stAlert]').length >= 2")
    assert alerts.locator("a, img").count() == 0
    assert page.evaluate(STRANGE_LINKS_JS) == 0
    text = " ".join(alerts.all_text_contents()).replace(WORD_JOINER, "")
    assert CRAFTED in text, text  # the error quotes the value whole
    assert f"cell={CRAFTED[:40]}" in text
    assert f"hide={HIDDEN.replace(chr(10), ' ')}" in text
    assert page.locator('[data-testid="stException"]').count() == 0


def test_names_of_html_stay_text_in_the_room_and_a_taken_name_gets_a_suffix(server, new_page):
    for name in NAMES:
        page = new_page()
        open_app(page, server, query="cell=rnn&hidden_size=4&steps=50000")
        set_name(page, name)
        page.locator(".st-key-train_start button").click()
        wait_idle(page)

    room = new_page()
    open_app(room, server, "room")
    room.wait_for_function(
        f"() => {NAMES!r}.every((name) => ({ROOM_NAMES_JS})().includes(name))",
        timeout=RUN_TIMEOUT_MS,
    )
    legend = [f"{name} · rnn" for name in NAMES]
    room.wait_for_function(
        f"() => {legend!r}.every((text) => ({LEGEND_JS})().includes(text))",
        timeout=RUN_TIMEOUT_MS,
    )
    assert room.evaluate(STRANGE_LINKS_JS) == 0, "a name became a link"
    assert room.evaluate(HUGE_JS) == 0, "a name set a style"

    # The room's own tab asks for the first name: it gets it with a suffix, shown as text.
    given = f"{NAMES[0]} (2)"
    set_name(room, NAMES[0], given=given)
    room.wait_for_function(
        """(said) => [...document.querySelectorAll('[data-testid=stMarkdownContainer]')]
            .some((e) => e.textContent.replaceAll('\\u2060', '') === said)""",
        arg=f"Your runs appear as {given}; change the name in the sidebar.",
    )
    assert room.evaluate(STRANGE_LINKS_JS) == 0 and room.evaluate(HUGE_JS) == 0
    assert room.locator('[data-testid="stException"]').count() == 0
