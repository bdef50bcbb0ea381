"""Korean and English: the catalogues agree with the code, and every page renders in both."""

import re
from pathlib import Path

import pytest
from babel.messages.pofile import read_po
from streamlit.testing.v1 import AppTest

from ui import i18n

APP = str(Path(__file__).resolve().parents[1] / "dashboard.py")
PAGES = [
    "views/train.py",
    "views/inside.py",
    "views/compare.py",
    "views/race.py",
    "views/room.py",
    "views/learn.py",
]


def catalogue(language: str) -> dict[str, object]:
    with i18n.catalogue_path(language).open("rb") as file:
        messages = read_po(file, locale=language)
    return {m.id if isinstance(m.id, str) else m.id[0]: m.string for m in messages if m.id}


def placeholders(text: object) -> set[str]:
    texts = [text] if isinstance(text, str) else list(text)
    return {name for each in texts for name in re.findall(r"\{(\w*)[^{}]*\}", each)}


@pytest.mark.parametrize("language", list(i18n.LANGUAGES))
def test_every_string_of_the_code_is_in_the_catalogue_and_no_other(language):
    wanted, have = i18n.source_messages(), catalogue(language)
    assert sorted(wanted - set(have)) == [], f"strings {language} lacks"
    assert sorted(set(have) - wanted) == [], f"strings {language} has that no code uses"


@pytest.mark.parametrize("language", list(i18n.LANGUAGES))
def test_every_string_is_translated_with_the_same_placeholders(language):
    for message, translation in catalogue(language).items():
        texts = [translation] if isinstance(translation, str) else list(translation)
        assert all(texts), f"{language}: {message!r} has no translation"
        assert placeholders(translation) <= placeholders(message), (
            f"{language}: {message!r} -> {translation!r} names other placeholders"
        )


def test_korean_is_korean():
    korean = catalogue("ko")
    hangul = re.compile("[\uac00-\ud7a3]")
    assert sum(bool(hangul.search(str(t))) for t in korean.values()) >= 0.9 * len(korean)


def open_in(language: str, page: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["lang"] = language
    at.run()
    if page != PAGES[0]:
        at.switch_page(page).run()
    assert not at.exception, [e.message for e in at.exception]
    return at


@pytest.mark.parametrize("page", PAGES)
@pytest.mark.parametrize("language", list(i18n.LANGUAGES))
def test_every_page_renders_in_both_languages(language, page):
    at = open_in(language, page)
    shown = " ".join(
        [e.value for e in at.title] + [e.value for e in at.caption] + [e.value for e in at.markdown]
    )
    hangul = re.search("[\uac00-\ud7a3]", shown)
    assert bool(hangul) == (language == "ko"), f"{page} in {language}: {shown[:300]}"


def test_the_language_comes_from_the_address_else_english():
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert at.session_state["language"] == "en"
    assert at.title[0].value == "Train a recurrent network"
    korean = open_in("ko", PAGES[0])
    assert korean.session_state["language"] == "ko"
    assert korean.title[0].value != "Train a recurrent network"


def test_the_sidebar_picker_switches_the_language_and_the_address():
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.selectbox(key=i18n.PICKER_KEY).set_value("ko").run()
    assert not at.exception
    assert at.session_state["language"] == "ko"
    assert at.query_params["lang"] in ("ko", ["ko"])
    assert re.search("[\uac00-\ud7a3]", at.title[0].value)
