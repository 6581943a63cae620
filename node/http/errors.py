"""Errors to HTTP in one place: every failure gets a fitting status, a stable code and a safe message.

Domain exceptions map by class; aiohttp's own HTTP errors (unknown route, body too large, wrong method) get
stable codes too; anything unexpected is logged (type and frames only) and answered as `internal_error`
without detail, so no internal text ever reaches a client. What cannot be done now but can later (custody
without enough keepers to deal to or open from) is 503 with a Retry-After.

The body is `{"error": {"code", "message"}}` unless the app was built with an HTML error renderer (the web UI's)
and that renderer claims the request's path: then the same status, code and message become a page.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from ftm.node.custody import CustodyUnavailable
from ftm.node.errors import (
    ConfigurationError,
    EmptyPersona,
    Forbidden,
    FtmError,
    IntegrityError,
    InvalidField,
    LimitExceeded,
    NotFound,
    QuotaExceeded,
    UnsupportedFormat,
)

log = logging.getLogger(__name__)

# Most specific class first: the first isinstance match wins.
_STATUS_BY_ERROR: tuple[tuple[type[FtmError], int], ...] = (
    (LimitExceeded, 413),
    (UnsupportedFormat, 415),
    (EmptyPersona, 422),
    (InvalidField, 422),
    (Forbidden, 403),
    (QuotaExceeded, 429),
    (NotFound, 404),
    (IntegrityError, 500),
    (ConfigurationError, 500),
    (CustodyUnavailable, 503),
)
# Seconds a client is asked to wait before trying again, by status. Keepers that were down for a request are
# rarely back within a minute; the daily run retries a key it could not have after ten.
RETRY_AFTER_SECONDS = {503: 300}
_CODE_BY_STATUS = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
    503: "unavailable",
}


def status_for(error: FtmError) -> int:
    for kind, status in _STATUS_BY_ERROR:
        if isinstance(error, kind):
            return status
    return 400


def error_response(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


def _with_retry_after(response: web.Response, status: int) -> web.Response:
    if status in RETRY_AFTER_SECONDS:
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS[status])
    return response


# Given the request and (status, code, message), a page for it, or None where the path is not a page's.
HtmlErrors = Callable[[web.Request, int, str, str], web.Response | None]


def create_error_middleware(html: HtmlErrors | None = None) -> Middleware:
    def respond(request: web.Request, status: int, code: str, message: str) -> web.Response:
        page = html(request, status, code, message) if html is not None else None
        return _with_retry_after(page if page is not None else error_response(status, code, message), status)

    @web.middleware
    async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except FtmError as error:
            status = status_for(error)
            if status in RETRY_AFTER_SECONDS:
                # Not the node's fault nor the client's: the message (ids and counts of keepers) stays in the log.
                log.warning("request deferred", extra={"path": request.path, "code": error.code})
                return respond(request, status, error.code, "the node cannot do this now; try again later")
            if status >= 500:
                log.error("request failed", extra={"path": request.path, "code": error.code})
                return respond(request, status, error.code, "the node could not complete this request")
            return respond(request, status, error.code, error.message)
        except web.HTTPException as error:
            if error.status < 400:
                raise
            code = _CODE_BY_STATUS.get(error.status, "http_error")
            message = error.reason if error.status != 413 else "the request body is larger than this node accepts"
            return respond(request, error.status, code, message)
        except Exception:
            log.exception("unhandled error", extra={"path": request.path})
            return respond(request, 500, "internal_error", "the node hit an unexpected error; it has been logged")

    return error_middleware


# JSON only: for apps without pages (the admin listener).
error_middleware = create_error_middleware()
