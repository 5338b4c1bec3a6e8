"""Settings: one frozen object, built from the command line and ``TELERAD_*`` environment variables.

The embedded default is a data directory holding a SQLite database and a folder of blobs;
``TELERAD_DATABASE_URL=postgresql+psycopg://...`` moves the index to PostgreSQL.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

#: Where ``./dev setup`` installs the OHIF viewer: ``.viewer/`` at the root of the checkout
#: (``src/telerad/config.py`` is two folders below it). An installed package sets
#: ``TELERAD_VIEWER_DIR`` instead.
DEFAULT_VIEWER_DIR = Path(__file__).resolve().parents[2] / ".viewer"


def _env_float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be a number, not {raw!r}") from exc


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything a telerad process needs to know to start."""

    data_dir: Path
    #: SQLAlchemy URL of the index; defaults to ``sqlite:///DATA_DIR/telerad.sqlite3``.
    database_url: str = ""
    #: Our own AE title (the Called AE Title scanners send to).
    ae_title: str = "TELERAD"
    #: Seconds without a new instance after which a study is complete (Orthanc uses 60).
    stable_age: float = 5.0
    #: Largest P-DATA-TF PDU we accept (PS3.8 §9.3.1); large PDUs mean less work per byte.
    maximum_pdu_size: int = 4 * 1024 * 1024
    #: Seconds a DICOM peer may stay silent in an association before it is aborted.
    network_timeout: float = 60.0
    #: Largest STOW-RS request body and largest single instance, in bytes.
    max_upload_bytes: int = 4 * 1024**3
    #: How often the background worker looks for due jobs, in seconds.
    worker_poll_interval: float = 0.5
    #: Minutes without a request after which a signed-in session ends (a night shift's
    #: pauses are shorter; an unattended screen is not).
    session_idle_minutes: float = 60.0
    #: Send session cookies only over HTTPS (set where telerad sits behind TLS).
    secure_cookies: bool = False
    #: The OHIF viewer's built application (its ``dist/`` folder), served under ``/viewer/``.
    viewer_dir: Path = DEFAULT_VIEWER_DIR
    #: Longest pause, in seconds, between two attempts of a delivery to a peer that is down
    #: (the pauses double from one second up to it).
    delivery_max_backoff: float = 300.0
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.database_url:
            object.__setattr__(
                self, "database_url", f"sqlite:///{self.data_dir / 'telerad.sqlite3'}"
            )

    @property
    def blob_dir(self) -> Path:
        """Where the folder blob store keeps instances."""
        return self.data_dir / "blobs"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @classmethod
    def from_env(
        cls, data_dir: Path, env: Mapping[str, str] | None = None, **overrides: Any
    ) -> Settings:
        """Settings for ``data_dir``, read from ``TELERAD_*`` variables, then ``overrides``."""
        env = os.environ if env is None else env
        settings = cls(
            data_dir=data_dir.resolve(),
            database_url=env.get("TELERAD_DATABASE_URL", ""),
            ae_title=env.get("TELERAD_AE_TITLE", "TELERAD"),
            stable_age=_env_float(env, "TELERAD_STABLE_AGE", 5.0),
            max_upload_bytes=int(_env_float(env, "TELERAD_MAX_UPLOAD_BYTES", 4 * 1024**3)),
            session_idle_minutes=_env_float(env, "TELERAD_SESSION_IDLE_MINUTES", 60.0),
            secure_cookies=env.get("TELERAD_SECURE_COOKIES", "") in ("1", "true", "yes"),
            viewer_dir=Path(env.get("TELERAD_VIEWER_DIR") or DEFAULT_VIEWER_DIR).resolve(),
            delivery_max_backoff=_env_float(env, "TELERAD_DELIVERY_MAX_BACKOFF", 300.0),
        )
        return replace(settings, **{k: v for k, v in overrides.items() if v is not None})
