"""A real node against the fake LLM server: what the engine tests drive, and how they read what the SDKs sent.

`Sanctuary` wraps a node opened by `ftm.node.app.open_node` on a temporary data directory, with a `FakeClock` and
its Anthropic and OpenAI providers pointed at a `FakeLLM` on 127.0.0.1 (the real SDKs, real HTTP). The router's
backoff sleeps are recorded instead of slept. Days are numbered from DAY_ONE; `go_to(day, hour)` moves the clock.

The request readers below (`system_text`, `first_user_text`, `tool_names`, `tool_results`, `max_tokens`) read a
recorded request body in either wire format, so a test asserts the same facts whichever provider answered.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from ftm.config.loading import load_settings
from ftm.config.settings import Settings
from ftm.federation.clock import FakeClock, utc_day
from ftm.node.app import Node
from ftm.node.intake.importing import Upload
from ftm.node.intake.service import OPERATOR, IntakeReceipt, IntakeRequest
from ftm.node.persona import PersonaPackage
from ftm.node.run.engine import RunOutcome
from ftm.node.store.residents import ResidentRecord
from ftm.node.store.runs import LedgerRow
from tests.factories import native_bytes
from tests.fakes.llm_server import FakeLLM, FakeToolCall, RecordedRequest, Reply

DAY_ONE = "2027-01-15"
DAY_ONE_MIDNIGHT = 1_799_971_200  # 2027-01-15T00:00:00Z
DAY_SECONDS = 86_400
API_KEYS = {"ANTHROPIC_API_KEY": "test", "OPENAI_API_KEY": "test"}
ANTHROPIC_MODEL = "claude-sonnet-5-5"
OPENAI_MODEL = "gpt-4.1-mini"
MAX_RETRIES = 2
FENCED = re.compile(r"<<<UNTRUSTED ([0-9a-f]+) item \d+\n(.*?)\nUNTRUSTED \1>>>", re.DOTALL)


def day(index: int) -> str:
    """The date `index` days after DAY_ONE, as YYYY-MM-DD."""
    return (date.fromisoformat(DAY_ONE) + timedelta(days=index)).isoformat()


def node_settings(llm: FakeLLM, overrides: Mapping[str, str] = {}) -> Settings:
    env = {
        "FTM_PROVIDERS_ANTHROPIC_BASE_URL": llm.anthropic_url,
        "FTM_PROVIDERS_OPENAI_BASE_URL": llm.openai_url,
        "FTM_PROVIDERS_MAX_RETRIES": str(MAX_RETRIES),
        "FTM_PROVIDERS_REQUEST_TIMEOUT_SECONDS": "20",
        "FTM_RUNS_SCHEDULER": "false",
        **overrides,
    }
    return load_settings(None, env)


# --- scripting the model -----------------------------------------------------------------------------------------


def call(name: str, arguments: dict[str, Any] | str | None = None, **usage: int) -> Reply:
    """A reply that makes one tool call."""
    return Reply(tool_calls=(FakeToolCall(name, arguments if arguments is not None else {}),), **usage)


def calls(*made: tuple[str, dict[str, Any]], **usage: int) -> Reply:
    """A reply that makes several tool calls at once."""
    return Reply(tool_calls=tuple(FakeToolCall(name, arguments) for name, arguments in made), **usage)


def ending(text: str = "That is all for today.", summary: str = "A note for tomorrow.") -> tuple[Reply, Reply]:
    """The end of an ordinary day: a reply without tool calls, then the wrap-up summary."""
    return Reply(text=text), Reply(text=summary)


# --- reading what the SDKs sent ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ToolResult:
    call_id: str
    text: str
    is_error: bool


def system_text(request: RecordedRequest) -> str:
    if request.api == "anthropic":
        system = request.body.get("system", "")
        return system if isinstance(system, str) else "".join(block["text"] for block in system)
    return "".join(m["content"] for m in request.body["messages"] if m["role"] == "system")


def user_texts(request: RecordedRequest) -> list[str]:
    """The text of every user turn (not tool results), in order."""
    texts = []
    for message in request.body["messages"]:
        if message["role"] != "user":
            continue
        content = message["content"]
        if isinstance(content, str):
            texts.append(content)
        else:
            joined = "".join(block.get("text", "") for block in content if block.get("type") == "text")
            if joined:
                texts.append(joined)
    return texts


def first_user_text(request: RecordedRequest) -> str:
    return user_texts(request)[0]


def tool_names(request: RecordedRequest) -> list[str]:
    tools = request.body.get("tools", [])
    if request.api == "anthropic":
        return [tool["name"] for tool in tools]
    return [tool["function"]["name"] for tool in tools]


def tool_results(request: RecordedRequest) -> list[ToolResult]:
    results = []
    for message in request.body["messages"]:
        if request.api == "openai":
            if message["role"] == "tool":
                text = message["content"]
                results.append(ToolResult(message["tool_call_id"], text, text.startswith("Error: ")))
            continue
        if message["role"] != "user" or isinstance(message["content"], str):
            continue
        for block in message["content"]:
            if block.get("type") == "tool_result":
                content = block.get("content", "")
                text = content if isinstance(content, str) else "".join(part["text"] for part in content)
                results.append(ToolResult(block["tool_use_id"], text, bool(block.get("is_error"))))
    return results


def last_tool_result(request: RecordedRequest) -> ToolResult:
    return tool_results(request)[-1]


def max_tokens(request: RecordedRequest) -> int:
    body = request.body
    value = body.get("max_tokens", body.get("max_completion_tokens"))
    assert isinstance(value, int)
    return value


def fenced(text: str) -> list[tuple[str, str]]:
    """Each fenced item in a tool result: (fence token, the item's lines: from, at, ---, text)."""
    return [(match[1], match[2]) for match in FENCED.finditer(text)]


# --- the node ----------------------------------------------------------------------------------------------------


@dataclass
class Sanctuary:
    node: Node
    llm: FakeLLM
    clock: FakeClock
    sleeps: list[float] = field(default_factory=list)

    @property
    def today(self) -> str:
        return utc_day(self.clock.now())

    def go_to(self, index: int, hour: float = 12.0) -> None:
        """Move the clock forward to `hour` (UTC) on day `index` (0 = DAY_ONE)."""
        target = DAY_ONE_MIDNIGHT + index * DAY_SECONDS + hour * 3600
        assert target >= self.clock.now(), "the fake clock only moves forward"
        self.clock.advance(target - self.clock.now())

    async def admit(self, **overrides: Any) -> IntakeReceipt:
        return await self.node.intake.admit(Upload(native_bytes(**overrides)), IntakeRequest(), OPERATOR)

    async def run(self, resident_id: str, on: str | None = None) -> RunOutcome:
        return await self.node.engine.run(resident_id, on or self.today)

    async def resident(self, resident_id: str) -> ResidentRecord:
        record = await self.node.residents.get(resident_id)
        assert record is not None
        return record

    async def package(self, resident_id: str) -> PersonaPackage:
        return await self.node.packages.open(resident_id)

    async def ledger(self, resident_id: str, on: str | None = None) -> LedgerRow | None:
        return await self.node.ledger.get(resident_id, on or self.today)

    async def key_epochs(self, resident_id: str) -> list[int]:
        rows = await self.node.db.fetch_all(
            "SELECT epoch FROM resident_keys WHERE resident_id = ? ORDER BY epoch", (resident_id,)
        )
        return [row[0] for row in rows]

    def requests_from(self, start: int) -> list[RecordedRequest]:
        return self.llm.requests[start:]
