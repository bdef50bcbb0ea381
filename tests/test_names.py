"""The room's names: no two alike (NFKC, case, invisible characters), trimmed and capped,
free again once their owner has gone, and the instructor's reserved and marked."""

from __future__ import annotations

import threading

import pytest

from rnnlab.jobs.names import INSTRUCTOR_MARK, MAX_NAME, RoomNames, clean_name, name_key

MARKED = f"Prof {INSTRUCTOR_MARK}"


def test_names_alike_get_suffixes_in_turn():
    names = RoomNames()
    asked = ["Ann", "ann", "Ａｎｎ", "An\u200bn", "  ANN\u00a0 ", "A\u034fnn", "Ann\ufe0f"]
    given = [names.claim(f"owner{index}", name) for index, name in enumerate(asked)]
    assert given == [
        "Ann",
        "ann (2)",
        "Ａｎｎ (3)",
        "Ann (4)",
        "ANN (5)",
        "Ann (6)",
        "Ann\ufe0f (7)",
    ]
    assert len({name_key(name) for name in given}) == len(given)
    assert names.names() == set(given)
    assert names.name_of("owner1") == "ann (2)" and names.name_of("nobody") is None
    # Different names stay as they are: accents and other letters are not look-alikes.
    assert names.claim("other", "Anne") == "Anne"
    assert names.claim("accent", "Ánn") == "Ánn"


def test_a_name_is_trimmed_cleaned_and_capped():
    names = RoomNames()
    assert names.claim("a", "  Team \t  LSTM \n") == "Team LSTM"
    assert names.claim("b", "\u202eevil\u202c \u0007bell") == "evil bell"
    assert names.claim("c", "👩\u200d💻 coder") == "👩\u200d💻 coder"  # the joiner stays
    long = "x" * 100
    assert names.claim("d", long) == "x" * MAX_NAME
    assert names.claim("e", long) == "x" * (MAX_NAME - 4) + " (2)"
    assert all(len(name) <= MAX_NAME for name in names.names())
    # A name of nothing visible is no name: the owner goes by none.
    assert names.claim("f", "\u200b\u3164 \u2060") == ""
    assert names.name_of("f") is None
    assert clean_name(f"Ann {INSTRUCTOR_MARK}") == "Ann"


def test_asking_again_keeps_the_name_given():
    names = RoomNames()
    names.claim("ana", "Ann")
    assert names.claim("ben", "Ann") == "Ann (2)"
    # Every rerun of a page asks again, with the name asked for or the one given.
    assert names.claim("ben", "Ann") == "Ann (2)"
    assert names.claim("ben", "Ann (2)") == "Ann (2)"
    assert names.claim("ana", "ann") == "ann", "one's own name, in other letters"
    assert names.claim("ben", "Ben") == "Ben"
    assert names.claim("cy", "Ann (2)") == "Ann (2)", "freed by Ben's new name"


def test_a_name_is_free_once_its_owner_has_gone():
    present = {"ana": True, "ben": True}
    names = RoomNames(presence=lambda owner: present.get(owner))
    names.claim("ana", "Ann")
    assert names.claim("ben", "Ann") == "Ann (2)"
    names.forget(["ana"])
    assert names.claim("cy", "ann") == "ann"
    present["cy"] = False  # a closed tab: asked when someone wants its name
    assert names.claim("dee", "ANN") == "ANN"
    assert names.name_of("cy") is None
    present["dee"] = None  # cannot tell: still there
    assert names.claim("eve", "Ann") == "Ann (3)"


def test_the_least_recently_named_are_forgotten_beyond_max_owners():
    names = RoomNames(max_owners=3)
    for owner in "abcd":
        names.claim(owner, f"Name {owner}")
    assert names.name_of("a") is None and names.name_of("d") == "Name d"
    names.claim("b", "Name b")  # asked again: now the most recent
    names.claim("e", "Name e")
    assert names.name_of("b") == "Name b" and names.name_of("c") is None


def test_the_instructors_name_is_marked_and_reserved():
    names = RoomNames()
    assert names.claim("teacher", "Prof", instructor=True) == MARKED
    for owner, asked in [("s1", "Prof"), ("s2", "prof"), ("s3", "Ｐｒｏｆ"), ("s4", "Pr\u200bof")]:
        assert names.claim(owner, asked) != asked and names.name_of(owner).endswith(")")
    assert names.claim("s5", MARKED) == "Prof (6)", "the mark cannot be typed"
    assert names.claim("s6", f"Pr{INSTRUCTOR_MARK}of") == "Prof (7)"
    assert [name for name in names.names() if INSTRUCTOR_MARK in name] == [MARKED]
    assert names.claim("teacher", MARKED, instructor=True) == MARKED  # every rerun
    names.forget(["teacher"])
    assert names.claim("s7", "PROF") == "PROF", "free once the instructor has gone"


def test_the_instructor_takes_a_name_someone_else_held():
    names = RoomNames()
    assert names.claim("student", "prof") == "prof"
    assert names.claim("teacher", "Prof", instructor=True) == MARKED
    assert names.name_of("student") == "prof (2)"
    assert names.claim("student", "prof") == "prof (2)", "the name it asked for is taken"
    # The instructor again, from a second tab: the first one's name moves aside, marked.
    assert names.claim("teacher2", "PROF", instructor=True) == f"PROF {INSTRUCTOR_MARK}"
    assert names.name_of("teacher") == f"Prof (3) {INSTRUCTOR_MARK}"
    long = names.claim("teacher3", "y" * 60, instructor=True)
    assert long == "y" * (MAX_NAME - 2) + f" {INSTRUCTOR_MARK}" and len(long) == MAX_NAME


@pytest.mark.parametrize("instructor", [False, True])
def test_sessions_asking_at_once_get_names_no_two_alike(instructor):
    names = RoomNames()
    start = threading.Barrier(16)
    given: dict[str, str] = {}

    def ask(owner: str) -> None:
        start.wait()
        for _ in range(50):
            given[owner] = names.claim(owner, "Same Name" if owner != "t0" else "same name")

    threads = [threading.Thread(target=ask, args=(f"t{i}",)) for i in range(16)]
    if instructor:
        names.claim("teacher", "SAME NAME", instructor=True)
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    keys = [name_key(name) for name in names.names()]
    assert len(keys) == len(set(keys)) == 16 + instructor
    assert set(given.values()) <= names.names()
