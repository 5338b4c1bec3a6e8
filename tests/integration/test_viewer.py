"""The viewer's pages over HTTP (the in-process server): OHIF's files served under
/viewer/ with their root paths rewritten, its configuration pointing at this origin's
DICOMweb, only to signed-in readers, never a file outside its folder; and the DICOMweb
calls a browser makes with the session cookie, scoped and audited.

Most tests use a small stand-in for OHIF's dist/ (the same kinds of files, the same root
references), so they run without the install; one checks the real install's."""

from __future__ import annotations

import datetime as dt
import http.client
import itertools
import json
import re
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from telerad.audit.models import AuditEvent
from telerad.config import DEFAULT_VIEWER_DIR, Settings
from telerad.db import transaction
from telerad.dicom.synthetic import SyntheticStudy
from telerad.httpauth import SESSION_COOKIE
from telerad.web.viewer import IMMUTABLE, app_config_script, rewrite, safe_path, viewer_url
from tests.integration.page_clients import Browsers, browsers
from tests.integration.workflow_env import Env, env

__all__ = ["browsers", "env"]

BUNDLE = "app.bundle.0f6159c501addfe9.js"
#: What OHIF's build writes, in miniature: every kind of reference to the site's root.
INDEX_HTML = (
    '<!doctype html><html><head><meta name="msapplication-TileImage" '
    'content="/assets/mstile-144x144.png"><script>window.PUBLIC_URL="/"</script>'
    '<link rel="manifest" href="/manifest.json"><script src="/app-config.js"></script>'
    f'<script defer src="/{BUNDLE}"></script><link href="/app.bundle.css" rel="stylesheet">'
    '<a href="https://ohif.org/">OHIF</a></head><body><div id="root"></div></body></html>'
)


@pytest.fixture
def viewer_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "viewer"
    (folder / "assets").mkdir(parents=True)
    (folder / "index.html").write_text(INDEX_HTML)
    (folder / BUNDLE).write_text('(() => {\n__webpack_require__.p = "/";\n})();\n')
    (folder / "app.bundle.css").write_text("@font-face{src:url(/a34f9d1faa5f3315.woff2)}")
    (folder / "a34f9d1faa5f3315.woff2").write_bytes(b"wOF2 font")
    (folder / "0ddf166f7a343eda.wasm").write_bytes(b"\0asm\1\0\0\0")
    (folder / "es6-shim.min.js").write_text("/* no root path here */")
    (folder / "manifest.json").write_text('{"icons": [{"src": "/assets/icon.png"}]}')
    (folder / "assets" / "icon.png").write_bytes(b"\x89PNG")
    (folder / ".installed-ohif-test").touch()
    (tmp_path / "secret.txt").write_text("root:x:0:0")
    (folder / "escape.js").symlink_to(tmp_path / "secret.txt")
    return folder


@pytest.fixture
def settings(settings: Settings, viewer_dir: Path) -> Settings:
    """The shared settings, with the stand-in viewer."""
    return replace(settings, viewer_dir=viewer_dir)


@pytest.fixture
def browser(browsers: Browsers) -> httpx.Client:
    """dr_alice's browser: her session cookie, no bearer token, no redirects followed, no
    Accept-Language."""
    return browsers("dr_alice", language=None)


@pytest.fixture
def stranger(browsers: Browsers) -> httpx.Client:
    return browsers(None, language=None)


# -- who may open it ------------------------------------------------------------------------


def test_strangers_are_sent_to_sign_in(stranger: httpx.Client) -> None:
    for path in ("/viewer", "/viewer/", "/viewer/viewer?StudyInstanceUIDs=1.2",
                 "/viewer/app-config.js", "/viewer/index.html"):
        answer = stranger.get(path)
        assert answer.status_code == 303, path
        assert answer.headers["location"] == "/signin"


def test_an_account_without_archive_access_is_refused(browsers: Browsers) -> None:
    """The administrator manages accounts but reads no images."""
    with browsers("admin", language=None) as client:
        assert client.get("/viewer/viewer").status_code == 403
        assert client.get("/viewer/app-config.js").status_code == 403


# -- what it serves -------------------------------------------------------------------------


def test_index_is_served_for_ohif_routes_with_paths_under_viewer(browser: httpx.Client) -> None:
    for path in ("/viewer/", "/viewer/viewer?StudyInstanceUIDs=1.2.3", "/viewer/viewer/dicomweb",
                 "/viewer/index.html"):
        answer = browser.get(path)
        assert answer.status_code == 200, path
        assert answer.headers["content-type"].startswith("text/html")
        assert answer.headers["cache-control"] == "no-cache"
        html = answer.text
        assert 'window.PUBLIC_URL="/viewer/"' in html
        assert 'src="/viewer/app-config.js"' in html
        assert f'src="/viewer/{BUNDLE}"' in html
        assert 'href="/viewer/manifest.json"' in html
        assert 'content="/viewer/assets/mstile-144x144.png"' in html
        assert 'href="https://ohif.org/"' in html  # other sites' links untouched
        assert not re.search(r'(src|href|content)="/(?!viewer/|/)', html), html
    assert browser.get("/viewer").headers["location"] == "/viewer/"


def test_config_points_at_this_origins_dicomweb(browser: httpx.Client, env: Env) -> None:
    answer = browser.get("/viewer/app-config.js")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/javascript")
    assert answer.headers["cache-control"] == "no-store"
    config = json.loads(answer.text.split("var config = ", 1)[1].split(";\n", 1)[0])
    assert config["routerBasename"] == "/viewer/"
    assert config["showStudyList"] is False
    assert config["investigationalUseDialog"] == {"option": "never"}
    (source,) = config["dataSources"]
    assert config["defaultDataSourceName"] == source["sourceName"]
    settings = source["configuration"]
    assert {settings[k] for k in ("qidoRoot", "wadoRoot", "wadoUriRoot")} == {"/dicomweb"}
    assert settings["imageRendering"] == settings["thumbnailRendering"] == "wadors"
    assert settings["dicomUploadEnabled"] is False
    assert "oidc" not in config  # the session cookie authenticates: same origin
    assert "window.location.origin + source.configuration[key]" in answer.text


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node to run the script")
def test_config_script_runs_and_gives_absolute_roots() -> None:
    program = ("var window = {location: {origin: 'https://telerad.example'}};\n"
               + app_config_script()
               + "console.log(JSON.stringify(window.config.dataSources[0].configuration));")
    out = subprocess.run(["node", "-e", program], capture_output=True, text=True, check=True,
                         timeout=30).stdout
    configuration = json.loads(out)
    assert configuration["qidoRoot"] == "https://telerad.example/dicomweb"
    assert configuration["wadoRoot"] == "https://telerad.example/dicomweb"


def test_static_files_are_cached_and_rewritten(stranger: httpx.Client) -> None:
    """OHIF's code is the public package's: served to anyone, a year when hashed."""
    bundle = stranger.get(f"/viewer/{BUNDLE}")
    assert bundle.status_code == 200
    assert bundle.headers["cache-control"] == IMMUTABLE == "public, max-age=31536000, immutable"
    assert "javascript" in bundle.headers["content-type"]
    assert '__webpack_require__.p = "/viewer/";' in bundle.text
    assert bundle.headers["x-content-type-options"] == "nosniff"
    assert "connect-src 'self'" in bundle.headers["content-security-policy"]

    wasm = stranger.get("/viewer/0ddf166f7a343eda.wasm")
    assert wasm.headers["content-type"] == "application/wasm"
    assert wasm.headers["cache-control"] == IMMUTABLE
    assert wasm.content == b"\0asm\1\0\0\0"

    css = stranger.get("/viewer/app.bundle.css")
    assert "url(/viewer/a34f9d1faa5f3315.woff2)" in css.text
    assert css.headers["cache-control"] == "no-cache"  # no hash in its name: revalidated
    again = stranger.get("/viewer/app.bundle.css", headers={"If-None-Match": css.headers["etag"]})
    assert again.status_code == 304

    plain = stranger.get("/viewer/es6-shim.min.js")  # nothing to rewrite: the file itself
    assert plain.text == "/* no root path here */"
    assert stranger.get("/viewer/es6-shim.min.js", headers={
        "If-None-Match": f'W/"other", {plain.headers["etag"]}'}).status_code == 304
    assert '"/viewer/assets/icon.png"' in stranger.get("/viewer/manifest.json").text
    assert stranger.get("/viewer/assets/icon.png").content == b"\x89PNG"
    assert stranger.get("/viewer/missing.bundle.0123456789abcdef.js").status_code == 404


# -- never outside its folder ---------------------------------------------------------------


ESCAPES = [
    "/viewer/../../etc/passwd",
    "/viewer/..%2f..%2fetc%2fpasswd",
    "/viewer/%2e%2e/%2e%2e/etc/passwd",
    "/viewer/%2E%2E%2F%2E%2E%2Fsecret.txt",
    "/viewer/..%5c..%5csecret.txt",
    "/viewer//etc/passwd",
    "/viewer/%2fetc%2fpasswd",
    "/viewer/assets/../../secret.txt",
    "/viewer/escape.js",  # a link out of the folder
    "/viewer/.installed-ohif-test",  # the install's own files
    "/viewer/%00index.html",
]


def test_paths_leaving_the_folder_are_refused(env: Env) -> None:
    """Sent byte for byte (http.client normalizes nothing), signed in or not."""
    token = env.api("dr_alice").token
    for path, cookie in itertools.product(ESCAPES, ("", f"{SESSION_COOKIE}={token}")):
        connection = http.client.HTTPConnection("127.0.0.1", env.server.http_port, timeout=10)
        connection.request("GET", path, headers={"Cookie": cookie} if cookie else {})
        answer = connection.getresponse()
        body = answer.read()
        connection.close()
        assert answer.status == 404, (path, answer.status)
        assert b"root:" not in body


def test_safe_path(viewer_dir: Path) -> None:
    assert safe_path(viewer_dir, "assets/icon.png") == (viewer_dir / "assets/icon.png").resolve()
    assert safe_path(viewer_dir, "") == viewer_dir.resolve()
    for bad in ("../secret.txt", "assets/../../secret.txt", "/etc/passwd", "a\\..\\b",
                ".installed-ohif-test", "escape.js", "x\0y"):
        assert safe_path(viewer_dir, bad) is None, bad


# -- not installed --------------------------------------------------------------------------


def test_a_missing_viewer_says_how_to_install_it(browser: httpx.Client, viewer_dir: Path
                                                 ) -> None:
    shutil.rmtree(viewer_dir)
    answer = browser.get("/viewer/viewer?StudyInstanceUIDs=1.2.3", headers={
        "Accept-Language": "en"})
    assert answer.status_code == 503
    assert "The image viewer (OHIF) is not installed" in answer.text
    assert "./dev setup" in answer.text
    assert browser.get(f"/viewer/{BUNDLE}").status_code == 404
    french = browser.get("/viewer/", headers={"Accept-Language": "fr"})
    assert french.status_code == 503
    assert "Visionneuse non installée" in french.text


def test_the_viewer_folder_setting(tmp_path: Path) -> None:
    assert DEFAULT_VIEWER_DIR.name == ".viewer"
    assert (DEFAULT_VIEWER_DIR.parent / "pyproject.toml").is_file()  # the checkout's root
    assert Settings.from_env(tmp_path, env={}).viewer_dir == DEFAULT_VIEWER_DIR
    chosen = Settings.from_env(tmp_path, env={"TELERAD_VIEWER_DIR": str(tmp_path / "ohif")})
    assert chosen.viewer_dir == tmp_path / "ohif"


# -- the browser's DICOMweb calls -----------------------------------------------------------


def test_dicomweb_with_the_cookie_is_scoped_and_audited(env: Env, browser: httpx.Client
                                                        ) -> None:
    """What OHIF does: find the patient's studies (priors), then read one; by cookie, the
    same scope and audit trail as by token."""
    ours = SyntheticStudy(slices=1, rows=16, columns=16, patient_id="PAT777",
                          study_datetime=dt.datetime(2026, 11, 24, 19, 0))
    prior = SyntheticStudy(slices=1, rows=16, columns=16, patient_id="PAT777",
                           study_datetime=dt.datetime(2025, 1, 2, 9, 0))
    elsewhere = SyntheticStudy(slices=1, rows=16, columns=16, patient_id="PAT777",
                               study_datetime=dt.datetime(2024, 1, 2, 9, 0))
    env.send(ours)
    env.send(prior)
    env.send(elsewhere, site="narbonne")

    found = browser.get("/dicomweb/studies", params={"PatientID": "PAT777"},
                        headers={"Accept": "application/dicom+json"})
    assert found.status_code == 200, found.text
    uids = {s["0020000D"]["Value"][0] for s in found.json()}
    assert uids == {ours.study_instance_uid, prior.study_instance_uid}  # not Narbonne's
    metadata = browser.get(f"/dicomweb/studies/{ours.study_instance_uid}/metadata")
    assert metadata.status_code == 200
    assert browser.get(f"/dicomweb/studies/{elsewhere.study_instance_uid}/metadata"
                       ).status_code == 404

    with transaction(env.runtime.sessions, readonly=True) as session:
        events = session.scalars(select(AuditEvent).where(
            AuditEvent.actor_id.endswith(":dr_alice"))).all()
    assert any(e.action == "search" for e in events)
    assert any(e.action == "read_metadata" and e.study_instance_uid == ours.study_instance_uid
               for e in events)


# -- the real install -----------------------------------------------------------------------


@pytest.mark.skipif(not (DEFAULT_VIEWER_DIR / "index.html").is_file(),
                    reason="the viewer is not installed: ./dev setup")
def test_the_installed_ohif_is_fully_moved_under_viewer() -> None:
    """Every reference of OHIF's build to the site's root is rewritten: its page's, and
    the webpack public path of each bundle and worker (an upgrade adding another kind of
    reference fails here, not in a radiologist's browser)."""
    html = rewrite("index.html", (DEFAULT_VIEWER_DIR / "index.html").read_bytes()).decode()
    assert not re.search(r'(src|href|content)="/(?!viewer/|/)', html)
    assert 'window.PUBLIC_URL="/"' not in html
    for path in DEFAULT_VIEWER_DIR.glob("*.js"):
        assert b'__webpack_require__.p = "/";' not in rewrite(path.name, path.read_bytes())
    for path in DEFAULT_VIEWER_DIR.glob("*.css"):
        assert b"url(/" not in rewrite(path.name, path.read_bytes()).replace(
            b"url(/viewer/", b"")


def test_viewer_url() -> None:
    assert viewer_url("1.2.840.1") == "/viewer/viewer?StudyInstanceUIDs=1.2.840.1"
    assert viewer_url(None) == viewer_url("") == ""
