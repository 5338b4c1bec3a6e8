"""The words of the hospital portal's pages, in French (the default) and English."""

from __future__ import annotations

FR: dict[str, str] = {
}

EN: dict[str, str] = {
}
