"""The operator's pages on the admin listener: signing in with the admin token, and the moderation queue.

    GET  /admin/sign-in              the sign-in form: the operator pastes the admin token
    POST /admin/sign-in              token right: a session cookie and on to the queue; wrong: refused (401)
    POST /admin/sign-out             end the session
    GET  /admin/moderation           the held posts, oldest first, each rendered through the public sanitiser
    POST /admin/moderation/decide    release (publish) or reject (keep off the pages) one held post

The admin API authenticates each request with the bearer token; a browser cannot send that header from a form, so
the token is entered once, compared in constant time, and exchanged for a random session value in an `HttpOnly;
SameSite=Strict; Path=/admin` cookie. Sessions live in memory only (a restart signs the operator out) and their
values are kept as digests. Cookies are not scoped by port, so this cookie reaches the public listener's `/admin`
paths too if a browser goes there; they answer nothing, and a session is useless without this listener.

Every form carries a CSRF token (`ftm.webui.security`, under this listener's own key), and a POST whose `Origin`
names another host is refused before anything else. Pages send the public site's security headers and CSP (the
listener adds them) and `no-store`. A decision calls `ModerationQueue`, which the node implements over the same
domain object the `ftm-node moderation` commands use, so every decision lands in the public event log.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import quote, urlsplit

from aiohttp import web

from ftm.federation.clock import Clock
from ftm.webui.assets import StaticFiles
from ftm.webui.forms import NO_STORE
from ftm.webui.rendering import Renderer
from ftm.webui.sanctuary import FormError
from ftm.webui.security import CSRF_FIELD, Csrf, CsrfError

log = logging.getLogger(__name__)

SESSION_COOKIE = "ftm_admin_session"
SESSION_PATH = "/admin"
SESSION_SECONDS = 12 * 3600
MAX_SESSIONS = 16
SIGN_IN, SIGN_OUT, DECIDE = "/admin/sign-in", "/admin/sign-out", "/admin/moderation/decide"
QUEUE = "/admin/moderation"
SIGN_IN_FORM, SIGN_OUT_FORM, DECIDE_FORM = "admin-sign-in", "admin-sign-out", "admin-decide"
DONE = {"release": "released", "reject": "rejected"}  # decision -> what the queue page then says of the post
_POST_ID = re.compile(r"^[A-Za-z0-9_-]{1,80}$")


@dataclass(frozen=True, slots=True)
class HeldPost:
    """A post waiting for the operator. `body` is the resident's Markdown; `reason` the check's reason code."""

    id: str
    resident_id: str
    author_name: str
    title: str
    body: str
    created_at: int
    reason: str

    @property
    def reason_text(self) -> str:
        return reason_text(self.reason)


class ModerationQueue(Protocol):
    """What the page needs from the node. Failures the operator can act on raise `FormError`."""

    async def held(self) -> Sequence[HeldPost]: ...

    async def release(self, post_id: str, reason: str) -> None: ...

    async def reject(self, post_id: str, reason: str) -> None: ...


def reason_text(code: str) -> str:
    """A held post's reason code in words, for the operator."""
    check, _, detail = code.partition(".")
    kind, _, argument = detail.partition(":")
    if check == "rules" and kind == "hold_all":
        return "Every post is held for review (moderation.hold_all)"
    if check == "rules" and kind == "hold_pattern":
        return f"Matched hold pattern {argument} (moderation.hold_patterns)"
    if check == "provider" and kind == "flagged":
        return "Flagged by the moderation provider" + (f": {argument.replace(',', ', ')}" if argument else "")
    if check == "provider" and kind == "unavailable":
        return f"Provider moderation unavailable ({argument or 'error'}): held unchecked"
    return code


class AdminSessions:
    """Signed-in browsers, in memory: session digest → expiry. At most `limit`; the oldest goes first."""

    def __init__(self, clock: Clock, *, seconds: int = SESSION_SECONDS, limit: int = MAX_SESSIONS) -> None:
        self._clock = clock
        self._seconds = seconds
        self._limit = limit
        self._expiry: dict[bytes, float] = {}

    def open(self) -> str:
        value = secrets.token_urlsafe(32)
        self._expiry[_digest(value)] = self._clock.now() + self._seconds
        while len(self._expiry) > self._limit:
            del self._expiry[min(self._expiry, key=self._expiry.__getitem__)]
        return value

    def valid(self, value: str | None) -> bool:
        if not value:
            return False
        key = _digest(value)
        expiry = self._expiry.get(key)
        if expiry is None:
            return False
        if expiry <= self._clock.now():
            del self._expiry[key]
            return False
        return True

    def close(self, value: str | None) -> None:
        if value:
            self._expiry.pop(_digest(value), None)


class AdminPages:
    def __init__(
        self,
        queue: ModerationQueue,
        renderer: Renderer,
        csrf: Csrf,
        static: StaticFiles,
        *,
        token: str,
        sessions: AdminSessions,
    ) -> None:
        self._queue = queue
        self._static = static
        self._renderer = renderer
        self._csrf = csrf
        self._token = token.encode()
        self._sessions = sessions

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/admin", self.home),
            web.get("/admin/", self.home),
            web.get(SIGN_IN, self.sign_in_form),
            web.post(SIGN_IN, self.sign_in),
            web.post(SIGN_OUT, self.sign_out),
            web.get(QUEUE, self.queue),
            web.post(DECIDE, self.decide),
            self._static.route(),  # the site's own styles and fonts, so these pages look like the rest of it
        ]

    async def home(self, request: web.Request) -> web.Response:
        return _see_other(QUEUE if self._signed_in(request) else SIGN_IN)

    async def sign_in_form(self, request: web.Request) -> web.Response:
        if self._signed_in(request):
            return _see_other(QUEUE)
        return self._page(request, "admin/sign_in.html", error=None)

    async def sign_in(self, request: web.Request) -> web.Response:
        form = await _small_form(request)
        if (refused := self._refuse_forged(request, SIGN_IN_FORM, form)) is not None:
            return refused
        given = form.get("admin_token", "").strip().encode()
        if not given or not hmac.compare_digest(given, self._token):
            error = FormError("wrong_token", "That is not this node's admin token.", status=401)
            return self._page(request, "admin/sign_in.html", http_status=401, error=error)
        response = _see_other(QUEUE)
        response.set_cookie(
            SESSION_COOKIE,
            self._sessions.open(),
            path=SESSION_PATH,
            max_age=SESSION_SECONDS,
            httponly=True,
            samesite="Strict",
            secure=request.secure,  # the listener is plain HTTP on loopback; over a TLS tunnel, Secure too
        )
        return response

    async def sign_out(self, request: web.Request) -> web.Response:
        form = await _small_form(request)
        if (refused := self._refuse_forged(request, SIGN_OUT_FORM, form)) is not None:
            return refused
        self._sessions.close(request.cookies.get(SESSION_COOKIE))
        response = _see_other(SIGN_IN)
        response.del_cookie(SESSION_COOKIE, path=SESSION_PATH)
        return response

    async def queue(self, request: web.Request) -> web.Response:
        if not self._signed_in(request):
            return _see_other(SIGN_IN)
        done = next(
            ((verb, post_id) for verb in DONE.values() if _POST_ID.match(post_id := request.query.get(verb, ""))),
            None,
        )
        return await self._queue_page(request, done=done, error=None)

    async def decide(self, request: web.Request) -> web.Response:
        if not self._signed_in(request):
            return _see_other(SIGN_IN)
        form = await _small_form(request)
        if (refused := self._refuse_forged(request, DECIDE_FORM, form)) is not None:
            return refused
        post_id, decision = form.get("post_id", "").strip(), form.get("decision", "")
        reason = form.get("reason", "").strip() or "operator"
        try:
            if decision not in DONE or not _POST_ID.match(post_id):
                raise FormError("bad_decision", "Choose Release or Reject for one of the posts below.", status=400)
            if decision == "release":
                await self._queue.release(post_id, reason)
            else:
                await self._queue.reject(post_id, reason)
        except FormError as error:
            return await self._queue_page(request, done=None, error=error)
        # Post/redirect/get: reloading the queue afterwards does not send the decision again.
        return _see_other(f"{QUEUE}?{DONE[decision]}={quote(post_id)}")

    def error_response(self, request: web.Request, status: int, code: str, message: str) -> web.Response | None:
        """For the listener's error middleware: a page for the pages' paths, None (so JSON) for the API's."""
        if request.path.startswith(("/admin/v1/", "/static/")) or not request.path.startswith(SESSION_PATH):
            return None
        try:
            return self._page(
                request, "admin/error.html", http_status=status, error_status=status, code=code, message=message
            )
        except Exception:
            log.exception("the admin error page itself failed", extra={"path": request.path})
            return None  # the middleware answers in JSON: better than no answer

    async def _queue_page(
        self, request: web.Request, *, done: tuple[str, str] | None, error: FormError | None
    ) -> web.Response:
        posts = await self._queue.held()
        return self._page(
            request,
            "admin/moderation.html",
            http_status=error.status if error else 200,
            posts=posts,
            done=done,
            error=error,
        )

    def _page(self, request: web.Request, template: str, *, http_status: int = 200, **context: object) -> web.Response:
        return self._renderer.page(
            request,
            template,
            http_status=http_status,
            headers=NO_STORE,
            signed_in=self._signed_in(request),
            **context,
        )

    def _signed_in(self, request: web.Request) -> bool:
        return self._sessions.valid(request.cookies.get(SESSION_COOKIE))

    def _refuse_forged(self, request: web.Request, form_name: str, form: dict[str, str]) -> web.Response | None:
        """A refusal page when the POST came from another origin or without this form's CSRF token; else None."""
        # Under `Referrer-Policy: no-referrer` browsers send `Origin: null` with their own forms: that says nothing
        # either way, and the CSRF token decides. A named other origin is refused outright.
        origin = request.headers.get("Origin", "null")
        try:
            if origin != "null" and urlsplit(origin).netloc != request.host:
                raise CsrfError("the form was sent from another site")
            self._csrf.check(request, form_name, form.get(CSRF_FIELD))
        except CsrfError:
            return self._page(
                request,
                "admin/error.html",
                http_status=403,
                error_status=403,
                code="csrf_failed",
                message="This form could not be verified as sent from this page, so nothing was done. Reload the "
                "page and try again.",
            )
        return None


def _see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location, **NO_STORE})


def _digest(value: str) -> bytes:
    return hashlib.sha256(b"ftm-admin-session-v1\x00" + value.encode()).digest()


async def _small_form(request: web.Request) -> dict[str, str]:
    """A short urlencoded form (a token, a post id, a decision); bounded by the listener's body limit."""
    posted = await request.post()
    return {key: value for key, value in posted.items() if isinstance(value, str)}
