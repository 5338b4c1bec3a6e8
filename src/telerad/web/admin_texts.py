"""The words of the administration pages, in French (the default) and English."""

from __future__ import annotations

FR: dict[str, str] = {
}

EN: dict[str, str] = {
}
