"""The names people go by in the room: one per owner, no two alike, the instructor's marked.

A name is trimmed, loses control and invisible characters, and is cut to MAX_NAME
characters (clean_name). Two names are alike when their name_key() is the same: NFKC
normalised, case folded, invisible characters dropped, so "Ann", "ann", "Ａｎｎ" and
"An\u200bn" are one name. An owner who asks for a name alike to one another owner holds
gets it with " (2)", " (3)", ... after it.

The instructor's name ends in INSTRUCTOR_MARK, which nobody else's can carry, and takes
precedence: whoever held it (or one alike) moves to a suffix.
"""

from __future__ import annotations

import collections
import dataclasses
import threading
import unicodedata
from collections.abc import Callable, Iterable

MAX_NAME = 40  # characters of a name, suffix and mark included
MAX_OWNERS = 2000  # owners remembered, the least recently named forgotten first
INSTRUCTOR_MARK = "\N{GRADUATION CAP}"
# Joiners that emoji sequences and some scripts need: kept in a name, ignored in its key.
JOINERS = frozenset("\u200c\u200d")
# Blank letters and marks that show nothing (Hangul fillers, Khmer inherent vowels, the
# combining grapheme joiner, Mongolian variation selectors).
FILLERS = frozenset("\u034f\u115f\u1160\u17b4\u17b5\u180b\u180c\u180d\u180f\u3164\uffa0")
# Variation selectors pick an emoji's look; a key ignores them.
SELECTORS = frozenset(map(chr, [*range(0xFE00, 0xFE10), *range(0xE0100, 0xE01F0)]))


def clean_name(name: str) -> str:
    """The name as shown: one space between words, no control, format (bidi overrides,
    zero-width spaces) or blank characters but the joiners, no INSTRUCTOR_MARK, at most
    MAX_NAME characters."""
    kept = "".join(
        character
        for character in str(name)
        if character in JOINERS
        or not (
            unicodedata.category(character) in ("Cc", "Cf", "Cs")
            or character in FILLERS
            or character == INSTRUCTOR_MARK
        )
    )
    return " ".join(kept.split())[:MAX_NAME].rstrip()


def name_key(name: str) -> str:
    """What two names are compared by: NFKC normalised and case folded, without invisible
    characters, variation selectors or INSTRUCTOR_MARK, spaces collapsed."""
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())
    kept = "".join(
        character
        for character in folded
        if not (
            unicodedata.category(character) in ("Cc", "Cf", "Cs")
            or character in FILLERS
            or character in SELECTORS
            or character == INSTRUCTOR_MARK
        )
    )
    return " ".join(kept.split())


def with_suffix(name: str, number: int, *, room: int = MAX_NAME) -> str:
    """`name (number)`, the name shortened so that the whole fits in `room` characters."""
    suffix = f" ({number})"
    return name[: room - len(suffix)].rstrip() + suffix


def marked(name: str) -> str:
    """The instructor's name: `name` (at most MAX_NAME - 2 characters) and the mark."""
    return f"{name} {INSTRUCTOR_MARK}"


@dataclasses.dataclass
class _Held:
    wanted: str  # the cleaned name the owner asked for
    given: str  # the name it got
    key: str  # name_key(given)
    instructor: bool


class RoomNames:
    """Owner -> name, unique by name_key(). Thread-safe.

    `presence(owner)` (optional, settable later) says whether an owner is still there:
    a name held by an owner it reports gone (False) is free again. It is called with this
    object's lock held, so it must be quick and must not call back here.
    """

    def __init__(
        self,
        *,
        presence: Callable[[str], bool | None] | None = None,
        max_owners: int = MAX_OWNERS,
    ):
        self.presence = presence
        self.max_owners = max_owners
        self._lock = threading.Lock()
        self._held: collections.OrderedDict[str, _Held] = collections.OrderedDict()
        self._holders: dict[str, str] = {}  # name_key -> owner

    def claim(self, owner: str, name: str, *, instructor: bool = False) -> str:
        """Let `owner` go by `name` (cleaned, suffixed if another owner holds it or one
        alike, marked if `instructor`); returns the name it got ("" for a name that
        cleans to nothing: the owner then goes by none). Asking again for the name asked
        for or the one given keeps the name given."""
        wanted = clean_name(name)
        if instructor:
            wanted = wanted[: MAX_NAME - 2].rstrip()  # room for the mark
        with self._lock:
            held = self._held.get(owner)
            if (
                held is not None
                and held.instructor == instructor
                and (wanted == held.wanted or name == held.given)
            ):
                self._held.move_to_end(owner)
                return held.given
            self._drop(owner)
            if not wanted:
                return ""
            if instructor:
                given = marked(wanted)
                holder = self._holders.get(name_key(given))
                self._hold(owner, _Held(wanted, given, name_key(given), instructor))
                if holder is not None:
                    self._move_aside(holder)
            else:
                given = self._free(owner, wanted)
                self._hold(owner, _Held(wanted, given, name_key(given), instructor))
            while len(self._held) > self.max_owners:
                self._drop(next(iter(self._held)))
            return given

    def name_of(self, owner: str) -> str | None:
        """The name `owner` goes by, or None."""
        with self._lock:
            held = self._held.get(owner)
            return None if held is None else held.given

    def names(self) -> set[str]:
        """Every name given now."""
        with self._lock:
            return {held.given for held in self._held.values()}

    def forget(self, owners: Iterable[str]) -> None:
        """These owners have gone: their names are free."""
        with self._lock:
            for owner in owners:
                self._drop(owner)

    def _present(self, owner: str) -> bool:
        if self.presence is None:
            return True
        try:
            return self.presence(owner) is not False
        except Exception:
            return True

    def _taken(self, key: str, owner: str) -> bool:
        """Whether another owner, still there, holds `key`. Lock held."""
        holder = self._holders.get(key)
        if holder is None or holder == owner:
            return False
        if self._present(holder):
            return True
        self._drop(holder)
        return False

    def _free(self, owner: str, wanted: str, *, room: int = MAX_NAME) -> str:
        """`wanted`, or the first of its suffixed forms no other owner holds. Lock held."""
        given, number = wanted, 1
        while self._taken(name_key(given), owner):
            number += 1
            given = with_suffix(wanted, number, room=room)
        return given

    def _move_aside(self, owner: str) -> None:
        """The instructor took `owner`'s name: `owner`, if still there, gets a suffix."""
        held = self._held.pop(owner)  # its key is the instructor's now
        if not self._present(owner):
            return
        if held.instructor:  # the instructor's earlier session
            given = marked(self._free(owner, held.wanted, room=MAX_NAME - 2))
        else:
            given = self._free(owner, held.wanted)
        self._hold(owner, dataclasses.replace(held, given=given, key=name_key(given)))

    def _hold(self, owner: str, held: _Held) -> None:
        self._held[owner] = held
        self._held.move_to_end(owner)
        self._holders[held.key] = owner

    def _drop(self, owner: str) -> None:
        held = self._held.pop(owner, None)
        if held is not None and self._holders.get(held.key) == owner:
            del self._holders[held.key]
