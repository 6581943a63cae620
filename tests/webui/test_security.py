"""Security headers on pages, and the CSRF token scheme on its own."""

from __future__ import annotations

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, make_mocked_request

from ftm.webui.security import CSRF_COOKIE, Csrf, CsrfError

Client = TestClient  # type: ignore[type-arg]


async def test_pages_carry_a_strict_content_security_policy_and_friends(web_client: Client) -> None:
    response = await web_client.get("/")
    csp = response.headers["Content-Security-Policy"]
    for directive in (
        "default-src 'self'",
        "script-src 'self'",
        "img-src 'self' data:",
        "frame-ancestors 'none'",
        "form-action 'self'",
        "object-src 'none'",
        "base-uri 'none'",
    ):
        assert directive in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    html = await response.text()
    assert "<script>" not in html and " style=" not in html  # the policy would block them: none may be needed


async def test_error_pages_carry_them_too(web_client: Client) -> None:
    response = await web_client.get("/residents/nobody")
    assert response.status == 404 and "Content-Security-Policy" in response.headers


def request_with_cookie(cookie: str | None) -> web.Request:
    headers = {"Cookie": f"{CSRF_COOKIE}={cookie}"} if cookie else {}
    return make_mocked_request("POST", "/upload", headers=headers)


def test_a_token_verifies_only_with_its_cookie_form_and_key() -> None:
    csrf, cookie = Csrf(b"k" * 32), "c" * 43
    token = csrf.token(cookie, "upload")
    csrf.check(request_with_cookie(cookie), "upload", token)
    for request, form, given in [
        (request_with_cookie(cookie), "message", token),
        (request_with_cookie("d" * 43), "upload", token),
        (request_with_cookie(None), "upload", token),
        (request_with_cookie(cookie), "upload", None),
        (request_with_cookie(cookie), "upload", ""),
        (request_with_cookie("<bad>"), "upload", token),
    ]:
        with pytest.raises(CsrfError):
            csrf.check(request, form, given)
    with pytest.raises(CsrfError):
        Csrf(b"o" * 32).check(request_with_cookie(cookie), "upload", token)


def test_a_fresh_browser_gets_a_new_random_cookie() -> None:
    csrf = Csrf()
    first, second = csrf.for_request(request_with_cookie(None)), csrf.for_request(request_with_cookie(None))
    assert first.token("upload") != second.token("upload")
