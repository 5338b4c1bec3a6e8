"""What the DICOMweb routes share: the base URL, DICOM JSON responses, the audit trail."""

from __future__ import annotations

from fastapi import Request, Response

from telerad.audit.service import Action, who_for
from telerad.auth.service import Actor
from telerad.dicom.header import BASE_URL_TOKEN
from telerad.dicomweb.media import DICOM_JSON
from telerad.httpauth import runtime_of, source_of

#: Name of the route at the DICOMweb root; its URL is the base of every RetrieveURL.
ROOT_ROUTE = "dicomweb_root"


def base_url(request: Request) -> str:
    """This service's DICOMweb base URL as the client reached it (``http://host:port/dicomweb``).

    Derived from the root route, so that it follows the mount prefix and the Host header
    (and, behind a proxy, uvicorn's forwarded headers).
    """
    url = request.url_for(ROOT_ROUTE)
    server = request.scope.get("server")
    if url.port is None and server and url.hostname == server[0] and server[1] != (
            443 if url.scheme == "https" else 80):
        # A Host header without its port (dicomweb-client sends its bare hostname) on a
        # direct connection: the port is the one the client connected to.
        url = url.replace(port=server[1])
    return str(url).rstrip("/")


def dicom_json(
    text: str, request: Request, *, status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    """A DICOM JSON body (PS3.18 §F.2) whose stored URLs get this request's base URL.

    The text was serialized once (at ingest for metadata); the base URL is put in with one
    string replacement, never by rebuilding the JSON.
    """
    body = text.replace(BASE_URL_TOKEN, base_url(request))
    return Response(body.encode("utf-8"), status_code=status_code, headers=headers,
                    media_type=DICOM_JSON)


def audit(
    request: Request, actor: Actor, action: Action, *, study_instance_uid: str = "",
    outcome: str = "success", **detail: object,
) -> None:
    """Record this access in the audit trail (PRODUCT.md: every access to patient data).

    The detail names the route template and UIDs, never attribute values: a query's keys
    are recorded, not what was searched for.
    """
    route = request.scope.get("route")
    path = getattr(route, "path", request.url.path)
    runtime_of(request).audit(
        who_for(actor, source_of(request)), action, study_instance_uid=study_instance_uid,
        outcome=outcome,
        detail={"route": path, **{k: v for k, v in detail.items() if v is not None}},
    )
