"""Browsers of the web pages' tests, and how those tests read a page: httpx clients that keep
the cookies as a browser would, signed in with a session opened directly (so that an account's
one-time codes are not spent: the second factor is other tests' subject), or anonymous."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html import unescape
from typing import Protocol

import httpx
import pytest

from telerad.httpauth import SESSION_COOKIE
from tests.integration.workflow_env import Env


class Browsers(Protocol):
    def __call__(self, username: str | None, /, *, language: str | None = "en"
                 ) -> httpx.Client:
        """A browser signed in as ``username`` (None: a stranger) that asks for pages in
        ``language`` (None: no Accept-Language at all), follows no redirect, and is closed
        when the test ends."""
        ...


@pytest.fixture
def browsers(env: Env) -> Iterator[Browsers]:
    opened: list[httpx.Client] = []

    def make(username: str | None, /, *, language: str | None = "en") -> httpx.Client:
        http = httpx.Client(base_url=env.server.base_url, follow_redirects=False,
                            headers={} if language is None else {"Accept-Language": language})
        if username is not None:
            token = env.api(username).token
            assert token, f"no session opened for {username}"
            http.cookies.set(SESSION_COOKIE, token)
        opened.append(http)
        return http

    yield make
    for http in opened:
        http.close()  # a second close, after a test's own `with`, does nothing


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token in the page"
    return match.group(1)


def text_of(html: str) -> str:
    """The page as read: tags out, entities decoded, spaces collapsed."""
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def alert_of(html: str) -> str:
    """The text of the page's first alert (role="alert")."""
    match = re.search(r'role="alert"[^>]*>(.*?)</(?:p|div)>', html, re.S)
    assert match, "no alert in the page"
    return unescape(re.sub(r"<[^>]+>", "", match.group(1)))
