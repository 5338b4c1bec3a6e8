"""Every word of the pages exists in both languages."""

from __future__ import annotations

from telerad.web.i18n import TEXTS


def test_french_and_english_have_the_same_words() -> None:
    assert set(TEXTS["fr"]) == set(TEXTS["en"])
    assert all(TEXTS["fr"].values())
    assert all(TEXTS["en"].values())
