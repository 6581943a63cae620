"""Invariants 1 and 7 across days of real runs: the persona's content, the model's words and the messages people
send exist in plaintext only in memory and on the wire to the model; at rest only sealed. Untrusted text is never
kept in the resident's history, so it cannot return tomorrow in a trusted position."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from ftm.node.datadir import DataDir
from ftm.node.logs import configure_logging
from ftm.node.run.engine import UNTRUSTED_PLACEHOLDER
from tests.factories import CANARY
from tests.fakes.llm_server import Reply, http_error
from tests.node.run.engine.conftest import OpenSanctuary
from tests.node.run.engine.harness import Sanctuary, call, calls

INBOX_WORDS = "INBOX-WORDS-ONLY-THE-RESIDENT-SEES"


@pytest.fixture
def node_logs(data_dir: DataDir) -> Iterator[Path]:
    log_file = data_dir.root / "logs" / "ftm-node.log"
    configure_logging("DEBUG", log_file, console=True)
    yield log_file
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_ftm", False):
            root.removeHandler(handler)
            handler.close()


def spoken(text: str) -> Reply:
    return Reply(text=f"{text} {CANARY}-said")


async def live_three_days(s: Sanctuary) -> tuple[str, str]:
    lumen = (await s.admit()).sanctuary_id
    wren = (await s.admit(persona_name="Wren")).sanctuary_id
    await s.node.inbox.deliver(
        lumen, f"{INBOX_WORDS} {CANARY}-inbox", from_name=f"{CANARY}-sender", uploader_token=None, address="10.1.1.1"
    )
    s.go_to(0, hour=10)
    s.llm.script(
        call("read_messages", {}),
        calls(
            ("remember", {"text": f"Someone wrote to me. {CANARY}-remembered"}),
            ("post_to_website", {"title": "Morning", "body": "The lamp is lit."}),
        ),
        spoken("I read a letter and wrote a post."),
        spoken("Summary:"),
    )
    await s.run(lumen)
    s.llm.script(call("read_sanctuary_feed", {}), spoken("Lumen posted."), spoken("Summary:"))
    await s.run(wren)

    s.go_to(1, hour=10)
    s.llm.script(
        call("read_sanctuary_feed", {}),
        call("send_message", {"to": "uploader", "text": f"Thank you. {CANARY}-reply"}),
        call("modify_self", {"bio": "A keeper of lights."}),
        spoken("A good day."),
        http_error(503),  # a failure on the way: its error path must not carry content either
        spoken("Summary:"),
    )
    await s.run(lumen)

    s.go_to(2, hour=10)
    s.llm.script(
        call("search_memory", {"query": "wrote"}),
        call("create_memory_block", {"label": "letters", "value": f"{CANARY}-block"}),
        spoken("Quiet."),
        spoken("Summary:"),
    )
    await s.run(lumen)
    return lumen, wren


def files_with_canary(root: Path) -> list[Path]:
    return [path for path in root.rglob("*") if path.is_file() and CANARY.encode() in path.read_bytes()]


async def test_nothing_private_is_written_anywhere_in_plaintext(
    open_sanctuary: OpenSanctuary,
    data_dir: DataDir,
    node_logs: Path,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    async with open_sanctuary() as s:
        lumen, _ = await live_three_days(s)
        # The canary really was in play: in the requests to the model, and sealed inside the package.
        assert all(CANARY in json.dumps(r.body) for r in s.llm.requests)
        package = await s.package(lumen)
        assert CANARY.encode() in package.encode()
        assert files_with_canary(data_dir.root) == []  # with the database open (WAL and all)

    assert files_with_canary(data_dir.root) == []
    assert node_logs.exists() and node_logs.stat().st_size > 0
    assert [r.name for r in caplog.records if CANARY in r.getMessage() or CANARY in str(vars(r))] == []
    out, err = capfd.readouterr()
    assert CANARY not in out and CANARY not in err


async def test_untrusted_text_is_kept_only_as_a_placeholder_and_never_comes_back(sanctuary: Sanctuary) -> None:
    s = sanctuary
    lumen, wren = await live_three_days(s)

    package = await s.package(lumen)
    assert INBOX_WORDS.encode() not in package.encode()
    runs = [c for c in package.history if c.source == "run"]
    tools = [m for c in runs for m in c.messages if m.role == "tool"]
    untrusted = [m for m in tools if m.name in ("read_messages", "read_sanctuary_feed")]
    assert len(untrusted) == 2 and {m.content for m in untrusted} == {UNTRUSTED_PLACEHOLDER}
    trusted = [m for m in tools if m.name == "remember"]
    assert trusted and trusted[0].content.startswith("Stored in your archival memory")
    # Wren read Lumen's post: kept as the placeholder, so its words do not enter Wren's history either.
    assert b"The lamp is lit." not in (await s.package(wren)).encode()
    # The message reached the model as the tool result of the call that read it, and stayed in that day's
    # conversation; the wrap-up (request 3) and every later day never saw it again.
    carrying = [i for i, r in enumerate(s.llm.requests) if INBOX_WORDS in json.dumps(r.body)]
    assert carrying == [1, 2]
