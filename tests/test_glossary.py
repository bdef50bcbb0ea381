"""One Korean term per concept: both catalogues agree with ui/glossary.py."""

import re

import pytest
from babel.messages.pofile import read_po

from ui import i18n
from ui.glossary import TERMS

PLACEHOLDER = re.compile(r"\{[^{}]*\}")


def entries(language: str, *, placeholders: bool = False) -> list[tuple[str, str]]:
    """(msgid, msgstr) of every message, plural forms joined, placeholders removed unless
    asked for (a placeholder's name is no word of either language)."""
    with i18n.catalogue_path(language).open("rb") as file:
        messages = [m for m in read_po(file, locale=language) if m.id]
    joined = []
    for message in messages:
        ids = [message.id] if isinstance(message.id, str) else list(message.id)
        strings = [message.string] if isinstance(message.string, str) else list(message.string)
        english, korean = " ".join(ids), " ".join(strings)
        if not placeholders:
            english, korean = PLACEHOLDER.sub(" ", english), PLACEHOLDER.sub(" ", korean)
        joined.append((english, korean))
    return joined


def test_the_glossary_has_one_korean_term_per_concept():
    concepts = [term.concept for term in TERMS]
    assert len(concepts) == len(set(concepts))
    for term in TERMS:
        assert not term.forbidden_in(term.korean), f"{term.concept}: its own term is forbidden"
        assert term.english_pattern is None or term.in_english(term.english), term.concept


@pytest.mark.parametrize("term", TERMS, ids=lambda term: term.concept)
def test_no_korean_translation_uses_a_forbidden_variant(term):
    wrong = {
        english: term.forbidden_in(korean)
        for english, korean in entries("ko")
        if term.forbidden_in(korean)
    }
    assert wrong == {}, f"{term.concept}: use {term.korean!r}"


@pytest.mark.parametrize(
    "term", [t for t in TERMS if t.english_pattern], ids=lambda term: term.concept
)
def test_where_the_english_names_a_concept_the_korean_uses_its_term(term):
    missing = [
        (english, korean)
        for english, korean in entries("ko")
        if term.in_english(english) and not term.in_korean(korean)
    ]
    assert missing == [], f"{term.concept}: these should say {term.korean!r}"


def test_every_message_has_a_korean_translation():
    korean = entries("ko", placeholders=True)
    untranslated = [english for english, text in korean if not text.strip()]
    assert untranslated == []
    assert {english for english, _ in korean} == {e for e, _ in entries("en", placeholders=True)}


def test_the_english_catalogue_uses_no_korean():
    hangul = re.compile("[\uac00-\ud7a3]")
    assert [english for english, text in entries("en") if hangul.search(text)] == []


@pytest.mark.parametrize("language", ["ko", "en"])
def test_no_message_has_a_pair_of_tildes_markdown_would_strike_through(language):
    # Korean writes ranges as 0~1; two of them in one Markdown string strike the text
    # between them through. Escaped (0\~1) they show as written.
    pairs = [
        text
        for _, text in entries(language, placeholders=True)
        if len(re.findall(r"(?<!\\)~", text)) >= 2
    ]
    assert not pairs, f"escape ~ as \\~ in: {pairs}"
