"""Every supported format admitted end to end over HTTP, and its sealed package read back."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from ftm.node.app import Node
from tests.node.intake import samples

Client = TestClient  # type: ignore[type-arg]

# The text fields where formats carry persona content; `plant` appends a marker to each.
CONTENT_KEYS = frozenset(
    {
        "content",
        "text",
        "mes",
        "value",
        "description",
        "personality",
        "scenario",
        "system_prompt",
        "system",
        "first_mes",
        "mes_example",
        "parts",
    }
)


def plant(value: Any, marker: str) -> Any:
    """A copy of `value` with `marker` appended to every persona-content string (for privacy tests)."""
    if isinstance(value, dict):
        return {k: _plant_field(k, v, marker) for k, v in value.items()}
    if isinstance(value, list):
        return [plant(item, marker) for item in value]
    return value


def _plant_field(key: str, value: Any, marker: str) -> Any:
    if key in CONTENT_KEYS and isinstance(value, str) and value:
        return f"{value} {marker}"
    if key == "parts" and isinstance(value, list):
        return [f"{p} {marker}" if isinstance(p, str) else plant(p, marker) for p in value]
    return plant(value, marker)


def format_uploads(marker: str = "") -> list[tuple[str, bytes, str, dict[str, str]]]:
    """(expected format, bytes, filename, extra form fields) for every supported format."""
    mark: Callable[[Any], Any] = (lambda v: plant(v, marker)) if marker else (lambda v: v)
    chatgpt = samples.to_json_bytes(mark(samples.make_chatgpt_export(samples.make_chatgpt_conversation())))
    claude = samples.to_json_bytes(mark(samples.make_claude_export(samples.make_claude_conversation())))
    named = {"persona_name": "Imported"}
    return [
        ("native", samples.to_json_bytes(mark(samples.make_native())), "native.json", {}),
        ("character_card_v1", samples.to_json_bytes(mark(samples.make_card_v1())), "v1.json", {}),
        ("character_card_v2", samples.to_json_bytes(mark(samples.make_card_v2())), "v2.json", {}),
        ("character_card_v3", samples.make_card_png(mark(samples.make_card_v3()), "ccv3"), "v3.png", {}),
        ("character_card_v2", samples.make_card_png(mark(samples.make_card_v2()), "chara"), "v2.png", {}),
        ("sillytavern_chat", _sillytavern(marker), "chat.jsonl", {}),
        ("chatgpt_export", chatgpt, "conversations.json", named),
        ("chatgpt_export", samples.make_zip({"conversations.json": chatgpt}), "export.zip", named),
        ("claude_export", claude, "conversations.json", named),
        ("claude_export", samples.make_zip({"conversations.json": claude}), "claude.zip", named),
        ("letta_agent_file", samples.to_json_bytes(mark(samples.make_letta_af())), "agent.af", {}),
        ("letta_agent_file", samples.to_json_bytes(mark(samples.make_letta_legacy_af())), "old.af", {}),
    ]


def _sillytavern(marker: str) -> bytes:
    messages = [
        samples.make_sillytavern_message(f"Hello from the user {marker}", is_user=True),
        samples.make_sillytavern_message(f"Hello back from the character {marker}"),
    ]
    return samples.make_sillytavern_jsonl(messages)


async def upload_form(client: Client, data: bytes, filename: str, fields: dict[str, str]) -> aiohttp.ClientResponse:
    form = aiohttp.FormData()
    form.add_field("file", io.BytesIO(data), filename=filename)
    form.add_field("uploader_consent", "true")
    for key, value in fields.items():
        form.add_field(key, value)
    return await client.post("/api/v1/sanctuary/intake", data=form)


@pytest.mark.parametrize(("expected", "data", "filename", "fields"), format_uploads())
async def test_each_format_is_admitted_and_sealed(
    client: Client, node: Node, expected: str, data: bytes, filename: str, fields: dict[str, str]
) -> None:
    response = await upload_form(client, data, filename, fields)
    assert response.status == 201, await response.text()
    receipt = await response.json()
    assert receipt["format"] == expected
    package = await node.packages.open(receipt["sanctuary_id"])
    assert package.provenance.format == expected
    assert package.provenance.source_name == filename
    assert package.name == receipt["display_name"]
    assert package.system_prompt or package.memory or package.history
    assert receipt["message_count"] == sum(len(c.messages) for c in package.history)


async def test_chat_exports_need_a_name(client: Client) -> None:
    chatgpt = samples.to_json_bytes(samples.make_chatgpt_export(samples.make_chatgpt_conversation()))
    response = await upload_form(client, chatgpt, "conversations.json", {})
    assert response.status == 422
    assert (await response.json())["error"]["code"] == "name_required"


async def test_letta_tool_code_never_reaches_the_package(client: Client, node: Node) -> None:
    response = await upload_form(client, samples.to_json_bytes(samples.make_letta_af()), "agent.af", {})
    package = await node.packages.open((await response.json())["sanctuary_id"])
    assert samples.CANARY not in repr(package)
    assert samples.CANARY not in json.dumps(package.provenance.preserved)
