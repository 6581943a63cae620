"""Access logging without visitors' addresses or query strings (which may carry tokens).

Three modes (`http.access_log`):

- `summary` (the default): one line a minute with the count of requests by status class and the median and
  99th-percentile latency, plus a line of its own for every failed request (status 400 and up) and every request
  that changes something (anything but GET and HEAD, node-to-node gossip under /federation/ aside). A sanctuary
  has no use for a record of who read which page when, and a line per read would be most of the node's own cost
  per page (see docs/benchmarks.md, "Web pages").
- `every`: a line per request, for an operator chasing a problem.
- `off`: nothing, not even failures.
"""

from __future__ import annotations

import bisect
import logging
import time
from collections import Counter
from collections.abc import Callable

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

ACCESS_LOG_MODES = ("summary", "every", "off")
SUMMARY_SECONDS = 60.0
# Upper bounds of the latency buckets, in ms: the summary's percentiles are "at most" figures from these.
LATENCY_BOUNDS_MS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, 30_000, 60_000)
_QUIET_METHODS = frozenset({"GET", "HEAD"})
_GOSSIP = "/federation/"  # peers' pushes and fetches change the store, but are traffic, counted in the summary

log = logging.getLogger("aiohttp.access")  # where aiohttp sends the per-request lines too


def log_request(logger: logging.Logger, request: web.BaseRequest, response: web.StreamResponse, seconds: float) -> None:
    logger.info(
        "http request",
        extra={
            "method": request.method,
            "path": request.path,
            "status": response.status,
            "bytes": response.body_length,
            "ms": round(seconds * 1000, 2),
        },
    )


class AccessSummary:
    """Counts requests between summary lines; `note` is called for every request and must stay cheap."""

    def __init__(
        self,
        logger: logging.Logger = log,
        *,
        seconds: float = SUMMARY_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._seconds = seconds
        self._monotonic = monotonic
        self._reset(monotonic())

    def _reset(self, now: float) -> None:
        self._since = now
        self._requests = 0
        self._by_class: Counter[str] = Counter()
        self._latency = [0] * (len(LATENCY_BOUNDS_MS) + 1)

    def note(self, status: int, seconds: float) -> None:
        self._requests += 1
        self._by_class[f"{status // 100}xx"] += 1
        self._latency[bisect.bisect_left(LATENCY_BOUNDS_MS, seconds * 1000)] += 1
        now = self._monotonic()
        if now - self._since >= self._seconds:
            self.flush(now)

    def flush(self, now: float | None = None) -> None:
        """Write the summary of what was counted (nothing if nothing was) and start counting afresh."""
        now = self._monotonic() if now is None else now
        if self._requests:
            self._logger.info(
                "http summary",
                extra={
                    "seconds": round(now - self._since, 1),
                    "requests": self._requests,
                    **dict(sorted(self._by_class.items())),
                    "p50_ms_at_most": self._percentile(0.50),
                    "p99_ms_at_most": self._percentile(0.99),
                },
            )
        self._reset(now)

    def _percentile(self, share: float) -> int | None:
        """The bucket bound below which `share` of the requests finished; None past the last bound."""
        wanted, seen = share * self._requests, 0
        for bound, count in zip((*LATENCY_BOUNDS_MS, None), self._latency, strict=True):
            seen += count
            if seen >= wanted:
                return bound
        return None  # pragma: no cover - the last bucket always reaches the total


def access_logger_class(mode: str, summary: AccessSummary) -> type[AbstractAccessLogger]:
    """The class aiohttp instantiates per connection, bound to one mode and (for `summary`) one shared counter."""
    if mode == "every":

        class EveryRequest(AbstractAccessLogger):
            def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
                log_request(self.logger, request, response, time)

        return EveryRequest

    if mode == "summary":

        class Summarised(AbstractAccessLogger):
            def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
                summary.note(response.status, time)
                if response.status >= 400 or (
                    request.method not in _QUIET_METHODS and not request.path.startswith(_GOSSIP)
                ):
                    log_request(self.logger, request, response, time)

        return Summarised

    if mode == "off":

        class Silent(AbstractAccessLogger):
            @property
            def enabled(self) -> bool:
                return False

            def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
                return None

        return Silent

    raise ValueError(f"unknown access log mode {mode!r}; choose one of {', '.join(ACCESS_LOG_MODES)}")
