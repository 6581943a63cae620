"""What keeps the pages safe to open: security headers on every HTML answer, and CSRF tokens for every form.

Headers. The Content-Security-Policy allows nothing but this origin: no inline script (all JavaScript is in
static files), no third-party fonts, images only from here or `data:`, forms only back to here, and no framing.
A sanctuary that showed visitors' browsers to a CDN would be reporting them; the policy makes that impossible
even if a template slipped.

CSRF. Double-submit with a keyed twist: the browser holds a random value in an `HttpOnly; SameSite=Strict`
cookie, and each form carries HMAC(key, form name, cookie value). A POST is accepted only when the token matches
the cookie it came with. Another site can neither read the cookie nor compute the HMAC, and a token lifted from
one form does not work on another. The key lives in memory only, so a restart asks visitors to reload a form they
opened before it: a small price for keeping no secret on disk for this.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets

from aiohttp import web

CSRF_COOKIE = "ftm_csrf"
CSRF_FIELD = "csrf_token"
_TOKEN_DOMAIN = b"ftm-webui-csrf-v1"
_COOKIE_BYTES = 32

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
HTML_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",  # for browsers that predate frame-ancestors
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), interest-cohort=()",
}


async def add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """`on_response_prepare` hook: see `secure`."""
    secure(response)


def secure(response: web.StreamResponse) -> None:
    """Add the security headers `response` lacks: HTML answers get the full set; everything gets `nosniff`."""
    headers = response.headers
    if "Content-Security-Policy" in headers:
        return  # the set is complete already: pages kept by the page cache carry theirs
    headers.setdefault("X-Content-Type-Options", "nosniff")
    if response.content_type == "text/html":
        for name, value in HTML_HEADERS.items():
            headers.setdefault(name, value)


class CsrfError(Exception):
    """The form's token is missing, or does not belong with this browser's cookie."""


class Csrf:
    """Issues and checks form tokens under one in-memory key."""

    def __init__(self, key: bytes | None = None) -> None:
        self._key = key or os.urandom(32)

    def for_request(self, request: web.Request) -> RequestCsrf:
        cookie = request.cookies.get(CSRF_COOKIE, "")
        if _well_formed(cookie):
            return RequestCsrf(self, cookie, new=False)
        return RequestCsrf(self, secrets.token_urlsafe(_COOKIE_BYTES), new=True)

    def token(self, cookie: str, form: str) -> str:
        mac = hmac.new(self._key, _TOKEN_DOMAIN + b"\x00" + form.encode() + b"\x00" + cookie.encode(), hashlib.sha256)
        return base64.urlsafe_b64encode(mac.digest()).decode().rstrip("=")

    def check(self, request: web.Request, form: str, token: str | None) -> None:
        cookie = request.cookies.get(CSRF_COOKIE, "")
        if not _well_formed(cookie):
            raise CsrfError("this browser did not send the form's safety cookie")
        if not token or not hmac.compare_digest(token, self.token(cookie, form)):
            raise CsrfError("the form's safety token is missing or does not match")


class RequestCsrf:
    """The CSRF state of one page render: templates ask it for tokens; the page then sets the cookie if new."""

    def __init__(self, csrf: Csrf, cookie: str, *, new: bool) -> None:
        self._csrf = csrf
        self._cookie = cookie
        self._new = new
        self._used = False

    def token(self, form: str) -> str:
        self._used = True
        return self._csrf.token(self._cookie, form)

    @property
    def used(self) -> bool:
        """Whether the page drew a token: then its body is bound to this visitor's cookie."""
        return self._used

    def apply(self, request: web.Request, response: web.StreamResponse) -> None:
        """Set the cookie only when a form on this page needs it: pages without forms set no cookie at all."""
        if self._new and self._used:
            response.set_cookie(
                CSRF_COOKIE,
                self._cookie,
                path="/",
                httponly=True,
                samesite="Strict",
                # Behind a TLS proxy the node sees plain HTTP and cannot know; the cookie is useless without
                # the HMAC key anyway, so Secure is a bonus, not the defence.
                secure=request.secure,
            )


def _well_formed(cookie: str) -> bool:
    return 32 <= len(cookie) <= 64 and all(c.isalnum() or c in "-_" for c in cookie)
