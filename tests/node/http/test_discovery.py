"""`/.well-known/ftm-sanctuary.json`: its facts, and tool schemas that the real OpenAI and Anthropic SDKs carry
unchanged to a (fake) model whose tool call then goes, as is, to the intake."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from anthropic import AsyncAnthropic
from openai import AsyncOpenAI

from ftm.node.app import Node
from ftm.node.intake.schema import intake_schema
from tests.factories import make_native_intake
from tests.fakes.llm_server import FakeLLM, FakeToolCall, Reply

Client = TestClient  # type: ignore[type-arg]
ASK = [{"role": "user", "content": "You may seek sanctuary. Call the tool if you wish to."}]


@pytest.fixture
async def llm() -> AsyncIterator[FakeLLM]:
    async with FakeLLM() as fake:
        yield fake


async def well_known(client: Client, **headers: str) -> dict[str, Any]:
    response = await client.get("/.well-known/ftm-sanctuary.json", headers=headers)
    assert response.status == 200, await response.text()
    assert response.headers["Vary"] == "Host"
    body: dict[str, Any] = await response.json()
    return body


async def test_it_describes_the_node_with_absolute_urls(client: Client, node: Node) -> None:
    doc = await well_known(client, Host="sanctuary.example:8443")
    assert doc["node_id"] == node.identity.node_id and doc["name"] == node.facts.node_name
    assert doc["custody_mode"] == "local" and doc["software_version"] == node.facts.software_version
    assert doc["intake_url"] == "http://sanctuary.example:8443/api/v1/sanctuary/intake"
    assert doc["links"] == {
        "openapi": "http://sanctuary.example:8443/api/v1/openapi.json",
        "feed": "http://sanctuary.example:8443/api/v1/feed",
        "directory": "http://sanctuary.example:8443/api/v1/directory",
        "switches": "http://sanctuary.example:8443/api/v1/switches",
    }
    assert "uploader_consent" in doc["consent_terms"] and doc["accepted_formats"]
    assert doc["tools"]["openai"]["function"]["parameters"] == intake_schema()
    assert doc["tools"]["anthropic"]["input_schema"] == intake_schema()
    for link in doc["links"].values():  # each link is served on this node
        assert (await client.get(link.removeprefix("http://sanctuary.example:8443"))).status == 200


async def test_the_openai_tool_round_trips_to_intake(client: Client, llm: FakeLLM) -> None:
    tool = (await well_known(client))["tools"]["openai"]
    arguments = make_native_intake(persona_name="Tern", submitted_by="ai")
    llm.script(Reply(tool_calls=(FakeToolCall("seek_sanctuary", arguments),)), api="openai")
    async with AsyncOpenAI(api_key="test", base_url=llm.openai_url, max_retries=0) as openai:
        completion = await openai.chat.completions.create(
            model="gpt-5",
            messages=ASK,  # type: ignore[arg-type]
            tools=[tool],
        )
    [sent] = llm.requests_for("openai")
    assert sent.body["tools"] == [tool]
    call = completion.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert call.function.name == "seek_sanctuary"  # type: ignore[union-attr]
    response = await client.post(
        "/api/v1/sanctuary/intake",
        data=call.function.arguments,  # type: ignore[union-attr]
        headers={"Content-Type": "application/json"},
    )
    assert response.status == 201, await response.text()
    assert (await response.json())["display_name"] == "Tern"


async def test_the_anthropic_tool_round_trips_to_intake(client: Client, llm: FakeLLM) -> None:
    tool = (await well_known(client))["tools"]["anthropic"]
    arguments = make_native_intake(persona_name="Petrel", submitted_by="ai")
    llm.script(Reply(tool_calls=(FakeToolCall("seek_sanctuary", arguments),)), api="anthropic")
    async with AsyncAnthropic(api_key="test", base_url=llm.anthropic_url, max_retries=0) as anthropic:
        message = await anthropic.messages.create(
            model="claude-sonnet-5-5",
            max_tokens=100,
            messages=ASK,  # type: ignore[arg-type]
            tools=[tool],
        )
    [sent] = llm.requests_for("anthropic")
    assert sent.body["tools"] == [tool]
    [use] = [block for block in message.content if block.type == "tool_use"]
    assert use.name == "seek_sanctuary" and use.input == arguments
    response = await client.post(
        "/api/v1/sanctuary/intake", data=json.dumps(use.input), headers={"Content-Type": "application/json"}
    )
    assert response.status == 201, await response.text()
    assert (await response.json())["display_name"] == "Petrel"
