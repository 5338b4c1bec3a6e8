"""Every word of the pages exists in both languages."""

from __future__ import annotations

from telerad.web.i18n import TEXTS
from telerad.web.pages import person_name


def test_french_and_english_have_the_same_words() -> None:
    assert set(TEXTS["fr"]) == set(TEXTS["en"])
    assert all(TEXTS["fr"].values())
    assert all(TEXTS["en"].values())


def test_person_names_read_as_people_write_them() -> None:
    assert person_name("DUPONT^MARIE") == "DUPONT Marie"
    assert person_name("DE LA TOUR^JEAN^PIERRE") == "DE LA TOUR Jean Pierre"
    assert person_name("DUPONT") == "DUPONT"
    assert person_name("") == "—"
