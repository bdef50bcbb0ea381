"""The dashboard in Korean and English: one gettext catalogue per language.

    from ui.i18n import _, ngettext
    st.title(_("Compare runs"))
    st.caption(ngettext("{n} run", "{n} runs", n).format(n=n))

Strings are written in English in the code and looked up in
`ui/locales/<language>/LC_MESSAGES/rnnlab.po`, compiled by Babel when a language is
first used. The language of a session is, in order: `?lang=ko` or `?lang=en` in the
address (share links keep it), the sidebar's picker, the browser's language
(`st.context.locale`), English.

To add or change strings: edit the code, then `python -m ui.i18n` lists the strings the
catalogues lack, leave untranslated or no longer use (tests/test_i18n.py fails until
they agree). `python -m ui.i18n merge FILE.po` adds a .po file of Korean translations
to the Korean catalogue and the same strings to the English one.
"""

from __future__ import annotations

import functools
import gettext
import io
import sys
from collections.abc import Callable
from pathlib import Path

import streamlit as st
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

LANGUAGES = {"en": "English", "ko": "한국어"}
DEFAULT_LANGUAGE = "en"
DOMAIN = "rnnlab"
LOCALES = Path(__file__).parent / "locales"
ROOT = Path(__file__).parent.parent
# Where the strings to translate are: the pages (views/), the ui package, and the engine's display
# strings (preset names and texts, task labels), marked there with rnnlab._text.N_.
SOURCES = ("views", "ui", "dashboard.py", "rnnlab/presets.py", "rnnlab/specs.py", "rnnlab/tasks.py")
KEYWORDS = {"_": None, "ngettext": (1, 2), "N_": None}
SESSION_KEY, PICKER_KEY = "language", "language_picker"


def catalogue_path(language: str) -> Path:
    return LOCALES / language / "LC_MESSAGES" / f"{DOMAIN}.po"


def read_catalogue(language: str):
    """The language's catalogue as a babel Catalog."""
    with catalogue_path(language).open("rb") as file:
        return read_po(file, locale=language, domain=DOMAIN)


@functools.cache
def translations(language: str) -> gettext.GNUTranslations:
    """The language's compiled catalogue (compiled once per process)."""
    compiled = io.BytesIO()
    write_mo(compiled, read_catalogue(language))
    compiled.seek(0)
    return gettext.GNUTranslations(compiled)


def _browser_language() -> str | None:
    locale = getattr(st.context, "locale", None) or ""
    code = locale.split("-")[0].split("_")[0].lower()
    return code if code in LANGUAGES else None


def choose_language() -> str:
    """Decide this session's language for this run (see the module doc) and remember it."""
    asked = st.query_params.get("lang")
    if asked in LANGUAGES:
        st.session_state[SESSION_KEY] = asked
    elif st.session_state.get(SESSION_KEY) not in LANGUAGES:
        st.session_state[SESSION_KEY] = _browser_language() or DEFAULT_LANGUAGE
    return st.session_state[SESSION_KEY]


def language() -> str:
    """This session's language; English outside a Streamlit session."""
    try:
        chosen = st.session_state.get(SESSION_KEY)
    except Exception:  # no session: a script or a test calling ui code directly
        chosen = None
    return chosen if chosen in LANGUAGES else DEFAULT_LANGUAGE


def language_picker() -> None:
    """The sidebar's language picker; a choice is written to the address as ?lang=.

    The session's language lives under its own key, not the widget's, so it survives
    runs in which the sidebar is not drawn.
    """

    def picked() -> None:
        st.session_state[SESSION_KEY] = st.session_state[PICKER_KEY]
        st.query_params["lang"] = st.session_state[PICKER_KEY]

    st.session_state[PICKER_KEY] = language()
    st.sidebar.selectbox(
        "Language / 언어",
        list(LANGUAGES),
        format_func=LANGUAGES.get,
        key=PICKER_KEY,
        on_change=picked,
    )


def _(message: str) -> str:
    """`message` in this session's language."""
    return translations(language()).gettext(message)


def translator(labels: dict[str, str] | None = None) -> Callable[[str], str]:
    """_() bound to this session's language now, for a widget's format_func: Streamlit
    may call that outside the script run (AppTest does), where the session is unknown.
    With `labels`, a value is first looked up there (a value without a label is shown
    as it is)."""
    gettext = translations(language()).gettext
    if labels is None:
        return gettext
    return lambda value: gettext(labels[value]) if value in labels else str(value)


def ngettext(singular: str, plural: str, n: int) -> str:
    """The singular or plural form, in this session's language, for `n`."""
    return translations(language()).ngettext(singular, plural, n)


def N_(message: str) -> str:
    """Mark a string for translation where it is defined; translate it with _() where shown."""
    return message


def source_messages() -> set[str]:
    """Every string the code asks to translate (singular forms; plurals by their first)."""
    found: set[str] = set()
    for source in SOURCES:
        path = ROOT / source
        if path.is_file():
            with path.open("rb") as file:
                from babel.messages.extract import extract

                entries = extract("python", file, keywords=KEYWORDS)
                found.update(_message_id(entry[1]) for entry in entries)
            continue
        method_map = [("**.py", "python")]
        for entry in extract_from_dir(path, method_map, keywords=KEYWORDS):
            found.add(_message_id(entry[2]))
    return found


def _message_id(message: str | tuple[str, ...]) -> str:
    return message[0] if isinstance(message, tuple) else message


def write_catalogue(language: str, catalogue) -> None:
    from babel.messages.pofile import write_po

    with catalogue_path(language).open("wb") as file:
        write_po(file, catalogue, width=96, omit_header=False, sort_output=True)


def merge(fragment: Path) -> int:
    """Add a .po file of Korean translations to the Korean catalogue, and the same
    strings to the English one (where a string is its own translation)."""
    with fragment.open("rb") as file:
        korean = read_po(file, locale="ko", domain=DOMAIN)
    catalogues = {code: read_catalogue(code) for code in LANGUAGES}
    added = 0
    for message in korean:
        if not message.id:
            continue
        for code in catalogues:  # a string merged again replaces its old translation
            catalogues[code].delete(message.id)
        catalogues["ko"].add(message.id, message.string)
        catalogues["en"].add(message.id, message.id)  # English is the msgid itself
        added += 1
    for code, catalogue in catalogues.items():
        write_catalogue(code, catalogue)
    print(f"merged {added} strings from {fragment}")
    return 0


def main() -> int:
    """List the strings each catalogue lacks, has untranslated, or no longer needs."""
    if sys.argv[1:2] == ["merge"]:
        return max((merge(Path(name)) for name in sys.argv[2:]), default=0)
    wanted = source_messages()
    status = 0
    for code in LANGUAGES:
        catalogue = read_catalogue(code)
        have = {_message_id(m.id) for m in catalogue if m.id}
        empty = sorted(_message_id(m.id) for m in catalogue if m.id and not m.string)
        for label, messages in (
            ("missing", sorted(wanted - have)),
            ("untranslated", empty),
            ("unused", sorted(have - wanted)),
        ):
            for message in messages:
                status = 1
                print(f"{code}: {label}: {message!r}")
    return status


if __name__ == "__main__":
    sys.exit(main())
