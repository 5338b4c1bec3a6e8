"""Logging set-up. Log lines carry UIDs and ids, never patient names or identifiers."""

from __future__ import annotations

import logging
import sys


def configure(level: str = "INFO") -> None:
    """One line per event on stderr, with the logger's name (the module) and the level."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # pynetdicom logs every PDU at INFO/DEBUG, with patient attributes: keep it quiet.
    logging.getLogger("pynetdicom").setLevel(logging.WARNING)
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
