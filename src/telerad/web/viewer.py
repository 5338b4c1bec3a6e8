"""The diagnostic viewer: OHIF's built application served under ``/viewer/``, configured
for telerad's DICOMweb with the user's session.

``./dev setup`` installs the ``dist/`` folder of the ``@ohif/app`` npm package into
``Settings.viewer_dir``; it is served as the package ships it, with one difference. OHIF
was built for the root of a site (webpack's public path ``/``), and telerad serves it
under ``/viewer/``: the few places naming the root are rewritten as they are served
(``index.html``'s links and ``window.PUBLIC_URL``, the public path of the bundles and web
workers, the stylesheets' font URLs, the web manifest's icons). So the install stays the
package's own bytes and the prefix lives here only.

Its configuration, ``/viewer/app-config.js``, is written here: one DICOMweb data source,
telerad's ``/dicomweb`` on the page's own origin. The browser sends its session cookie with
every call (same origin; no token in the page), so every image OHIF loads goes through the
user's scope and into the audit trail like any other DICOMweb call. The Content-Security-
Policy keeps the viewer's calls on this origin: pixels cannot be sent elsewhere.

The application's pages (index.html for OHIF's client-side routes, and its configuration)
need a signed-in user allowed to read the archive. Its code, styles and images are the
public package's, served to anyone, cached for a year when their name carries a hash.
"""

from __future__ import annotations

import json
import mimetypes
import os
import re
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, RedirectResponse, Response

from telerad.auth.service import Actor, Permission
from telerad.httpauth import runtime_of
from telerad.web.pages import render, signed_in, to_signin

router = APIRouter(include_in_schema=False)

#: Where the viewer is served; OHIF's router basename and the public path of its files.
PREFIX = "/viewer/"
#: The file whose presence means the viewer is installed.
INDEX = "index.html"
#: One DICOMweb service, telerad's own, on the page's origin (prefixed in the browser).
DICOMWEB_ROOT = "/dicomweb"
#: A hashed file name (webpack's content hash, 16 hex digits): its bytes never change.
_HASHED = re.compile(r"(^|\.)[0-9a-f]{16}\.")
IMMUTABLE = "public, max-age=31536000, immutable"
#: Other files are checked again (cheaply, by ETag) at each use: an upgrade shows at once.
REVALIDATE = "no-cache"
#: The viewer's calls stay on this origin; OHIF needs inline scripts (index.html), eval
#: and WebAssembly (its codecs), and blob: workers.
CONTENT_SECURITY_POLICY = "; ".join((
    "default-src 'self'",
    "script-src 'self' 'unsafe-inline' 'unsafe-eval' 'wasm-unsafe-eval' blob:",
    "worker-src 'self' blob:",
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data: blob:",
    "font-src 'self' data:",
    "connect-src 'self' data: blob:",
    "object-src 'none'",
    "base-uri 'self'",
    "frame-ancestors 'self'",
))
_SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff",
                     "Content-Security-Policy": CONTENT_SECURITY_POLICY}


# -- the rewriting of "/" into PREFIX -----------------------------------------------------


_PUBLIC_PATH = b'__webpack_require__.p = "/";'
_HTML_ROOT_ATTRIBUTE = re.compile(rb'\b(href|src|content)="/(?!/)')
_HTML_PUBLIC_URL = re.compile(rb'window\.PUBLIC_URL\s*=\s*"/"')


def rewrite(name: str, data: bytes, prefix: str = PREFIX) -> bytes:
    """``data`` of the file ``name`` with its references to the site's root moved to
    ``prefix``; unchanged when it has none."""
    new = prefix.encode()
    if name == INDEX:
        data = _HTML_ROOT_ATTRIBUTE.sub(rb'\1="' + new, data)
        return _HTML_PUBLIC_URL.sub(b'window.PUBLIC_URL="' + new + b'"', data)
    if name.endswith((".js", ".mjs")):  # bundles and workers load their chunks from here
        return data.replace(_PUBLIC_PATH, b'__webpack_require__.p = "' + new + b'";')
    if name.endswith(".css"):
        return data.replace(b"url(/", b"url(" + new)
    if name.endswith((".json", ".webapp")):  # the web manifests' icons
        return data.replace(b'"/assets/', b'"' + new + b"assets/")
    return data


#: Rewritten files by (path, modification time, size); ``None``: served as installed. A
#: process rewrites each file once (the largest, OHIF's main bundle, is about 17 MB).
_rewritten: dict[tuple[Path, int, int], bytes | None] = {}
_REWRITABLE = (".html", ".js", ".mjs", ".css", ".json", ".webapp")


def _rewritten_body(path: Path, stat: os.stat_result) -> bytes | None:
    """The file as served when it differs from the installed one."""
    if not path.name.endswith(_REWRITABLE):
        return None
    key = (path, stat.st_mtime_ns, stat.st_size)
    if key not in _rewritten:
        data = path.read_bytes()
        body = rewrite(path.name, data)
        _rewritten[key] = None if body == data else body
    return _rewritten[key]


# -- files ----------------------------------------------------------------------------------


def safe_path(root: Path, path: str) -> Path | None:
    """The file ``path`` names under ``root``, or ``None`` when it would leave it (``..``,
    an absolute path, a link out) or names a hidden file (the install's stamp)."""
    parts = PurePosixPath(path).parts
    if "\\" in path or "\0" in path or any(p in ("..", "/") or p.startswith(".") for p in parts):
        return None
    base = root.resolve()
    target = base.joinpath(*parts).resolve() if parts else base
    return target if target.is_relative_to(base) else None


def _cache_control(name: str) -> str:
    return IMMUTABLE if _HASHED.search(name) else REVALIDATE


def _not_modified(request: Request, etag: str) -> bool:
    presented = request.headers.get("if-none-match", "")
    return presented.strip() == "*" or etag in (
        tag.strip().removeprefix("W/") for tag in presented.split(","))


def _static(request: Request, path: Path) -> Response:
    """The file, rewritten if need be; its ETag follows the installed file (the rewriting
    is the same for the same bytes), so a browser revalidates with a 304."""
    stat = path.stat()
    etag = f'"{stat.st_mtime_ns:x}-{stat.st_size:x}"'
    headers = {"Cache-Control": _cache_control(path.name), "ETag": etag, **_SECURITY_HEADERS}
    if _not_modified(request, etag):
        return Response(status_code=304, headers=headers)
    body = _rewritten_body(path, stat)
    if body is None:
        return FileResponse(path, headers=headers, stat_result=stat)
    media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return Response(body, headers=headers, media_type=media_type)


# -- configuration --------------------------------------------------------------------------


def app_config() -> dict[str, Any]:
    """OHIF's configuration (``window.config``), its URLs relative to the page's origin."""
    return {
        "routerBasename": PREFIX,
        "extensions": [],
        "modes": [],
        # No guided tour popping over the first image of every new browser.
        "customizationService": {"ohif.tours": {"$set": []}},
        # telerad's worklist chooses the study: OHIF's own list of every study is off.
        "showStudyList": False,
        # Used for diagnosis under the site's own responsibility, not for investigation.
        "investigationalUseDialog": {"option": "never"},
        "showWarningMessageForCrossOrigin": False,
        # Tell the radiologist when the browser has no WebGL (slower CPU rendering).
        "showCPUFallbackMessage": True,
        "showLoadingIndicator": True,
        "maxNumberOfWebWorkers": 3,
        "maxNumRequests": {"interaction": 100, "thumbnail": 5, "prefetch": 25},
        "showErrorDetails": "dev",
        "defaultDataSourceName": "telerad",
        "dataSources": [{
            "namespace": "@ohif/extension-default.dataSourcesModule.dicomweb",
            "sourceName": "telerad",
            "configuration": {
                "friendlyName": "telerad",
                "name": "telerad",
                "qidoRoot": DICOMWEB_ROOT,
                "wadoRoot": DICOMWEB_ROOT,
                "wadoUriRoot": DICOMWEB_ROOT,
                "qidoSupportsIncludeField": True,
                "supportsFuzzyMatching": True,
                "supportsWildcard": True,
                "imageRendering": "wadors",
                "thumbnailRendering": "wadors",
                "enableStudyLazyLoad": True,
                "staticWado": False,
                "omitQuotationForMultipartRequest": True,
                "dicomUploadEnabled": False,
                "bulkDataURI": {"enabled": True, "relativeResolution": "studies"},
            },
        }],
    }


_ROOT_KEYS = ("qidoRoot", "wadoRoot", "wadoUriRoot")


def app_config_script() -> str:
    """``app-config.js``: the configuration as JSON, its DICOMweb roots completed with the
    page's origin in the browser (the origin the user reached, whatever proxy is between)."""
    return (
        "// Written by telerad (telerad.web.viewer): OHIF reads telerad's DICOMweb.\n"
        "(function () {\n"
        f"  var config = {json.dumps(app_config(), indent=2)};\n"
        "  config.dataSources.forEach(function (source) {\n"
        f"    {json.dumps(_ROOT_KEYS)}.forEach(function (key) {{\n"
        "      source.configuration[key] = window.location.origin + source.configuration[key];\n"
        "    });\n"
        "  });\n"
        "  // A session that ended (idle, signed out elsewhere): sign in again, then reopen.\n"
        "  config.httpErrorHandler = function (error) {\n"
        "    if (error && error.status === 401) { window.location.assign('/signin'); }\n"
        "  };\n"
        "  window.config = config;\n"
        "})();\n"
    )


def viewer_url(study_instance_uid: str | None) -> str:
    """Where OHIF opens ``study_instance_uid`` (its basic viewer mode, route ``viewer``);
    empty while the exam has no study yet."""
    if not study_instance_uid:
        return ""
    return f"{PREFIX}viewer?{urlencode({'StudyInstanceUIDs': study_instance_uid})}"


# -- routes ---------------------------------------------------------------------------------


def _reader(request: Request) -> Actor | Response:
    """The signed-in user, who may read images; the way to sign in for anyone else."""
    signed = signed_in(request)
    if signed is None:
        return to_signin()
    signed[0].scope.require(Permission.ARCHIVE_READ)
    return signed[0]


@router.get("/viewer")
def viewer_without_slash(request: Request) -> Response:
    if isinstance(reader := _reader(request), Response):
        return reader
    query = f"?{request.url.query}" if request.url.query else ""
    return RedirectResponse(PREFIX + query, status_code=307)


@router.get("/viewer/app-config.js")
def viewer_config(request: Request) -> Response:
    if isinstance(reader := _reader(request), Response):
        return reader
    return Response(app_config_script(), media_type="text/javascript",
                    headers={"Cache-Control": "no-store", **_SECURITY_HEADERS})


@router.get("/viewer/{path:path}")
def viewer(request: Request, path: str) -> Response:
    """A file of the viewer; any other path is one of OHIF's own routes (``viewer``,
    ``viewer/dicomweb``...), answered with its page."""
    root = runtime_of(request).settings.viewer_dir
    target = safe_path(root, path)
    if target is None:
        return Response("not found", status_code=404, media_type="text/plain")
    index = root.resolve() / INDEX
    if target != index and target.is_file():
        return _static(request, target)
    if target != index and "." in target.name:  # a file that is not there
        return Response("not found", status_code=404, media_type="text/plain")
    if isinstance(reader := _reader(request), Response):
        return reader
    if not index.is_file():  # not installed: say how, rather than fail
        return render(request, "viewer_missing.html", "viewer_missing_title", status_code=503,
                      actor=reader)
    return _static(request, index)
