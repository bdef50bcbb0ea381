"""The text task's text: the bundled one, or a file in whatever encoding a person saved it.

Torch-free, so that the dashboard's server can check an upload (decode_text) without
importing PyTorch; rnnlab.tasks builds the text task's data from what read_task_text
returns.
"""

from __future__ import annotations

import codecs
import unicodedata
from importlib import resources
from pathlib import Path
from typing import NamedTuple

import charset_normalizer

from .config import ConfigError

MAX_TEXT_BYTES = 5 * 1024 * 1024
MAX_VOCAB = 256  # characters of a text task's vocabulary, the one for all others included
UNKNOWN_CHAR = "\ufffd"  # stands for every character beyond the MAX_VOCAB - 1 most common


def bundled_text() -> str:
    """Genesis 1-47, King James Version (public domain), about 186 KB."""
    return resources.files("rnnlab").joinpath("data/genesis.txt").read_text("utf-8")


class DecodedText(NamedTuple):
    """A text file's text, and the encoding it was read in ('UTF-8', 'CP949', 'UTF-16', ...)."""

    text: str
    encoding: str


# Byte-order marks, longest first (UTF-32-LE's begins with UTF-16-LE's).
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf_32"),
    (codecs.BOM_UTF32_BE, "utf_32"),
    (codecs.BOM_UTF8, "utf_8_sig"),
    (codecs.BOM_UTF16_LE, "utf_16"),
    (codecs.BOM_UTF16_BE, "utf_16"),
)
_ENCODING_NAMES = {"utf_8_sig": "UTF-8", "utf_8": "UTF-8", "ascii": "UTF-8"}
# Characters no text file has many of: controls (but tab, newlines and form feed),
# unassigned code points, private use and lone surrogates.
_NOT_TEXT_CATEGORIES = frozenset({"Cc", "Cn", "Co", "Cs"})
_WHITESPACE_CONTROLS = frozenset("\t\n\v\f\r")


def decode_text(data: bytes) -> DecodedText:
    """Bytes of an uploaded or given .txt to text, and the encoding it was in.

    A byte-order mark decides (UTF-8, UTF-16, UTF-32); without one, UTF-8 if the bytes are
    valid UTF-8, else what charset-normalizer finds most likely (a Korean file saved on
    Windows is often CP949). Binary data, an encoding that cannot be told, or a file too
    large: ConfigError saying what is wrong.
    """
    if len(data) > MAX_TEXT_BYTES:
        raise ConfigError(
            f"the text file is {len(data) / 2**20:.1f} MB; the limit is "
            f"{MAX_TEXT_BYTES / 2**20:.0f} MB",
            "text_file",
        )
    encoding = next((name for bom, name in _BOMS if data.startswith(bom)), None)
    if encoding is None:
        if b"\x00" in data[:8192]:
            raise _not_text("the file looks binary, not text")
        try:
            data.decode("utf_8")
            encoding = "utf_8"
        except UnicodeDecodeError:
            encoding = _detect_encoding(data)
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as error:
        reason = f"the file is not valid {_encoding_name(encoding)} (bad byte at {error.start})"
        raise _not_text(reason) from None
    if not text.strip():
        raise ConfigError("the text file is empty", "text_file")
    if _looks_binary(text[:65536]):
        raise _not_text("the file looks binary, not text")
    return DecodedText(text, _encoding_name(encoding))


def _detect_encoding(data: bytes) -> str:
    """The most likely encoding of text that is not UTF-8, by charset-normalizer.

    Korean is tried again on its own, more leniently: a short CP949 text that begins with
    a syllable EUC-KR lacks (똠) reads as too chaotic to the general detection.
    """
    best = (
        charset_normalizer.from_bytes(data).best()
        or charset_normalizer.from_bytes(data, cp_isolation=["cp949"], threshold=0.4).best()
    )
    if best is None:
        raise _not_text("the file looks binary, or its encoding cannot be told")
    return best.encoding


def _looks_binary(sample: str) -> bool:
    """More than 1 % of the characters are ones no text has (see _NOT_TEXT_CATEGORIES)."""
    odd = sum(
        unicodedata.category(ch) in _NOT_TEXT_CATEGORIES and ch not in _WHITESPACE_CONTROLS
        for ch in sample
    )
    return odd > len(sample) // 100


def _encoding_name(codec: str) -> str:
    """Python's codec name as people write it: utf_16 -> UTF-16, cp949 -> CP949."""
    return _ENCODING_NAMES.get(codec, codec.upper().replace("_", "-"))


def _not_text(reason: str) -> ConfigError:
    return ConfigError(
        f"{reason}; give a .txt file (UTF-8, UTF-16 or a local encoding such as CP949)",
        "text_file",
    )


def read_text_file(path: str | Path) -> str:
    """The text of a .txt file in any encoding decode_text reads; ConfigError if not."""
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        message = f"cannot read text file {str(path)!r}: {error.strerror}"
        raise ConfigError(message, "text_file") from None
    return decode_text(data).text


def read_task_text(text_file: str) -> str:
    """The text task's text: the file a config names, or the bundled text if none."""
    return read_text_file(text_file) if text_file else bundled_text()
