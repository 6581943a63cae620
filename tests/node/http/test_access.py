"""The access log in its three modes: what each writes, and that it never writes an address or a query string."""

from __future__ import annotations

import logging

import aiohttp
import pytest
from aiohttp import web
from pytest_aiohttp.plugin import AiohttpServer

from ftm.node.http.access import AccessSummary, access_logger_class


async def ok(request: web.Request) -> web.Response:
    return web.Response(text="fine")


async def created(request: web.Request) -> web.Response:
    return web.Response(text="made", status=201)


def app() -> web.Application:
    application = web.Application()
    application.router.add_get("/page", ok)
    application.router.add_post("/things", created)
    return application


def lines(caplog: pytest.LogCaptureFixture, event: str) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.getMessage() == event]


async def exercise(server_factory: AiohttpServer, mode: str, summary: AccessSummary) -> None:
    """Three reads (with a token in the query), a miss and a write, through a real server and client."""
    server = await server_factory(app(), access_log_class=access_logger_class(mode, summary))
    async with aiohttp.ClientSession() as session:
        for _ in range(3):
            assert (await session.get(f"{server.make_url('/page')}?token=secret-in-query")).status == 200
        assert (await session.get(str(server.make_url("/missing")))).status == 404
        assert (await session.post(str(server.make_url("/things")), data=b"x")).status == 201
    await server.close()


async def test_summary_mode_writes_failures_and_changes_and_counts_the_rest(
    aiohttp_server: AiohttpServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    summary = AccessSummary()
    await exercise(aiohttp_server, "summary", summary)
    single = [(r.method, r.path, r.status) for r in lines(caplog, "http request")]  # type: ignore[attr-defined]
    assert single == [("GET", "/missing", 404), ("POST", "/things", 201)]
    summary.flush()
    (line,) = lines(caplog, "http summary")
    assert (line.requests, line.__dict__["2xx"], line.__dict__["4xx"]) == (5, 4, 1)  # type: ignore[attr-defined]
    assert line.p50_ms_at_most is not None  # type: ignore[attr-defined]
    assert "secret-in-query" not in caplog.text and "127.0.0.1" not in caplog.text


async def test_every_mode_writes_a_line_per_request_without_query_strings(
    aiohttp_server: AiohttpServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    await exercise(aiohttp_server, "every", AccessSummary())
    paths = [r.path for r in lines(caplog, "http request")]  # type: ignore[attr-defined]
    assert paths == ["/page"] * 3 + ["/missing", "/things"]
    assert "secret-in-query" not in caplog.text and "127.0.0.1" not in caplog.text


async def test_off_mode_writes_nothing(aiohttp_server: AiohttpServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    summary = AccessSummary()
    await exercise(aiohttp_server, "off", summary)
    summary.flush()
    assert lines(caplog, "http request") == [] and lines(caplog, "http summary") == []


def test_the_summary_line_comes_once_a_window_with_bucketed_percentiles(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    now = [1000.0]
    summary = AccessSummary(seconds=60, monotonic=lambda: now[0])
    for _ in range(98):
        summary.note(200, 0.0004)  # 0.4 ms: the first bucket, "at most 1 ms"
    summary.note(503, 0.3)
    assert lines(caplog, "http summary") == []
    now[0] += 61
    summary.note(200, 0.0004)  # the request that finds the window over writes its summary, itself included
    (line,) = lines(caplog, "http summary")
    assert line.requests == 100 and line.__dict__["5xx"] == 1  # type: ignore[attr-defined]
    assert (line.p50_ms_at_most, line.p99_ms_at_most) == (1, 1)  # type: ignore[attr-defined]
    assert line.seconds == 61.0  # type: ignore[attr-defined]
    summary.flush()  # nothing counted since: no second line
    assert len(lines(caplog, "http summary")) == 1


def test_an_unknown_mode_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="summary, every, off"):
        access_logger_class("verbose", AccessSummary())
