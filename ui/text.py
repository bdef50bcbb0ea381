"""Strings from strangers shown as text: in Streamlit's markdown, and in Plotly's labels.

Everything a person or a link can set (a room name, a typed word, a query value, a file
name, an error message that quotes them) goes into markdown through plain() or
markdown_format(), and into a Plotly figure through plotly_text(), never as it is:

    st.warning(markdown_format(_("Ignored `{name}={value}` from the link."), name=n, value=v))
"""

from __future__ import annotations

import re
import string
from typing import Any

LINE_BREAKS = re.compile(r"\r\n|[\r\n\v\f\x1c-\x1e\x85\u2028\u2029]")
# Markdown's inline markup: code, emphasis and strikethrough, links and images, HTML and
# autolinks, entities, LaTeX, tables and headings. An underscore between two letters or
# digits (hidden_size) is no emphasis and is left as it is.
MARKUP = re.compile(r"[\\`*~\[\]<>&$|#]|(?<![^\W_])_|_(?![^\W_])")
# What starts a block only at the start of a line: a list item, a setext underline.
BLOCK_START = re.compile(r"^(\s*)([-+=]|\d+[.)])")
# Streamlit finds some markup in the text itself, after escapes are undone: bare URLs,
# e-mail addresses and www. become links, :streamlit: a logo, :material/icon: an icon.
# An invisible WORD JOINER inside each of them leaves the text as it reads.
WORD_JOINER = "\u2060"
FOUND_IN_TEXT = re.compile(r"[:@]|(?<=www)(?=\.)", re.IGNORECASE)
BACKTICKS = re.compile(r"`+")
PLOTLY_MARKUP = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&#34;", "'": "&#39;"}
_formatter = string.Formatter()


def _inert(text: Any) -> str:
    """One line, with what Streamlit would find in text broken up by word joiners."""
    return FOUND_IN_TEXT.sub(lambda m: m.group() + WORD_JOINER, LINE_BREAKS.sub(" ", str(text)))


def plain(text: Any) -> str:
    """`text` as markdown that shows exactly that text: no link, image, emphasis, code,
    heading, HTML, LaTeX or icon, and on one line."""
    escaped = MARKUP.sub(lambda markup: "\\" + markup.group(), _inert(text))
    return BLOCK_START.sub(lambda start: start[1] + start[2][:-1] + "\\" + start[2][-1], escaped)


def code_span(text: Any) -> str:
    """`text` as an inline code span that shows it literally, whatever backticks it holds
    (CommonMark: a fence longer than any run of backticks inside, padded by a space)."""
    content = _inert(text) or " "  # `` is no empty span but two backticks
    longest = max((len(run) for run in BACKTICKS.findall(content)), default=0)
    fence = "`" * (longest + 1)
    padded = content[:1] == "`" or content[-1:] == "`"
    padded |= content[:1] == " " and content[-1:] == " " and content.strip() != ""
    pad = " " if padded else ""
    return f"{fence}{pad}{content}{pad}{fence}"


def markdown_format(template: str, **values: Any) -> str:
    """template.format(**values) for markdown: a value shows as its text wherever the
    (translated) template puts it; inside one of the template's `code spans`, the span
    is rewritten (code_span) so that no backtick in a value can close it."""
    done: list[str] = []
    span: list[str] | None = None  # the open code span's content so far
    fence = 0
    for literal, field, spec, conversion in _formatter.parse(template):
        position = 0
        for run in BACKTICKS.finditer(literal):
            before = literal[position : run.start()]
            if span is None:
                done.append(before)
                span, fence = [], len(run.group())
            elif len(run.group()) == fence:
                done.append(code_span("".join(span) + before))
                span = None
            else:
                span.append(before + run.group())
            position = run.end()
        (done if span is None else span).append(literal[position:])
        if field is None:
            continue
        value, _key = _formatter.get_field(field, (), values)
        value = _formatter.format_field(_formatter.convert_field(value, conversion), spec or "")
        if span is None:
            done.append(plain(value))
        else:
            span.append(value)
    if span is not None:  # a backtick the template never closes is shown as one
        done.append(plain("`" * fence + "".join(span)))
    return "".join(done)


def plotly_text(text: Any) -> str:
    """`text` for a Plotly label (a trace name, tick or title): Plotly reads <a>, <span
    style>, <br> and entities in text, so these characters go in as entities it decodes."""
    return "".join(PLOTLY_MARKUP.get(character, character) for character in str(text))
