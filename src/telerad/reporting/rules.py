"""The report's lifecycle as a table (pure), and what a signature seals.

    draft -> preliminary -> final;  draft -> final;  final -> final (an addendum)

A preliminary may be released once, to the emergency doctor at once; the final is signed;
after it, only addenda, each signed. Every release freezes a version that never changes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping

from telerad.errors import Conflict
from telerad.reporting.models import ReportStatus as R
from telerad.reporting.models import VersionKind as K
from telerad.workflow.exams.models import ExamState

#: For each status, the releases it allows and the status they lead to.
MOVES: dict[R, dict[K, R]] = {
    R.DRAFT: {K.PRELIMINARY: R.PRELIMINARY, K.FINAL: R.FINAL},
    R.PRELIMINARY: {K.FINAL: R.FINAL},
    R.FINAL: {K.ADDENDUM: R.FINAL},
}

#: What each release makes of the exam (None: the exam stays where it is).
EXAM_STATE_AFTER: dict[K, ExamState | None] = {
    K.PRELIMINARY: ExamState.PRELIMINARY, K.FINAL: ExamState.FINAL, K.ADDENDUM: None,
}

#: HL7 OBR-25 Result Status (table 0123) of each release: P preliminary, F final,
#: C correction to a final result (an addendum re-sends the whole report with it).
RESULT_STATUS: dict[K, str] = {K.PRELIMINARY: "P", K.FINAL: "F", K.ADDENDUM: "C"}

#: The addendum being written after the final is the draft's single field.
ADDENDUM_FIELD = "addendum"
MAX_ADDENDUM_LENGTH = 20_000


class InvalidRelease(Conflict):
    """This release is not allowed for the report as it stands."""

    code = "invalid_report_release"


def next_status(status: R, kind: K) -> R:
    """The report's status after releasing ``kind``, or InvalidRelease."""
    allowed = MOVES[status]
    if kind not in allowed:
        if status is R.FINAL:
            raise InvalidRelease("the report is signed: a correction is an addendum")
        raise InvalidRelease(f"a {status} report cannot be released as {kind}")
    return allowed[kind]


def content_sha256(*, kind: K, number: int, content: Mapping[str, str], text: str,
                   signer_name: str, signed_at: dt.datetime) -> str:
    """SHA-256 of the canonical JSON (sorted keys, UTF-8, no spaces) of what is signed: who
    signed what, when. Anyone holding the version can recompute it."""
    sealed = {"kind": str(kind), "number": number, "content": dict(content), "text": text,
              "signer": signer_name, "signed_at": signed_at.astimezone(dt.UTC).isoformat()}
    canonical = json.dumps(sealed, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()
