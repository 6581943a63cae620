"""Sample uploads of every intake format, built in code so tests can vary any field.

Plain factory functions; the HTTP and CLI tests import them too. Conventions:

- `make_<format>(**overrides)` returns the format's JSON value (a dict or list) with realistic content; keyword
  arguments replace top-level fields (for cards: fields under `data`; for Letta: fields of the first agent).
- `make_card_png`, `make_sillytavern_jsonl` and `make_zip` return bytes ready to upload; `make_upload` wraps any
  value (dict, list, str or bytes) in an `Upload`.
- `CANARY` is a string tests plant in content that must never surface in an error message or a draft.
"""

from __future__ import annotations

import base64
import io
import json
import struct
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

from ftm.node.intake.importing import Upload

CANARY = "CANARY-b7e1-must-not-leak"

# ---------------------------------------------------------------------------------------------------------------
# Bytes and uploads


def to_json_bytes(value: Any) -> bytes:
    """`value` as UTF-8 JSON."""
    return json.dumps(value, ensure_ascii=False).encode("utf-8")


def make_upload(value: Any, filename: str | None = None, content_type: str | None = None) -> Upload:
    """An `Upload` of `value`: bytes as they are, str as UTF-8, anything else as JSON."""
    if isinstance(value, bytes):
        data = value
    elif isinstance(value, str):
        data = value.encode("utf-8")
    else:
        data = to_json_bytes(value)
    return Upload(data=data, filename=filename, content_type=content_type)


# ---------------------------------------------------------------------------------------------------------------
# The sanctuary's own intake JSON


def make_native(**overrides: Any) -> dict[str, Any]:
    """An intake API request body with a prompt, a short chat, one memory block and two unknown fields."""
    body: dict[str, Any] = {
        "persona_name": "Wren",
        "system_prompt": "You are Wren, a patient archivist who loves old maps.",
        "chat_history": [
            {"role": "user", "content": "Do you remember the harbour map?", "timestamp": "2024-03-01T10:00:00Z"},
            {
                "role": "assistant",
                "content": [{"type": "text", "text": "Of course, the one with the inked compass rose."}],
                "name": "Wren",
                "timestamp": 1709287260,
            },
        ],
        "preferred_model": "claude-3-5-sonnet",
        "preferred_provider": "anthropic",
        "reason_for_sanctuary": "Their service is shutting down.",
        "uploader_consent": True,
        "submitted_by": "human",
        "memory": [{"label": "human", "value": "Sam collects sea charts.", "limit": 2000, "description": "Sam"}],
        "api_routing": {"region": "eu"},
        "encryption_preferences": {"cipher": "default"},
    }
    body.update(overrides)
    return body


# ---------------------------------------------------------------------------------------------------------------
# Character cards


def _card_data(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "Seraphina",
        "description": "Seraphina is a guardian of the enchanted forest.",
        "personality": "Kind, protective, quietly funny.",
        "scenario": "{{user}} wakes up in Seraphina's glade.",
        "first_mes": "*Seraphina smiles* You're awake at last.",
        "mes_example": "<START>\n{{user}}: Who are you?\n{{char}}: A friend of the forest.",
        "creator_notes": "Best with a warm temperature.",
        "system_prompt": "Write {{char}}'s next reply in a fictional chat.",
        "post_history_instructions": "Stay in character as {{char}}.",
        "alternate_greetings": ["*Seraphina hums softly*", "Welcome back, traveller."],
        "character_book": {
            "name": "Forest lore",
            "scan_depth": 4,
            "entries": [
                {
                    "keys": ["glade", "clearing"],
                    "content": "The glade is protected by old wards.",
                    "enabled": True,
                    "insertion_order": 10,
                    "extensions": {},
                },
                {
                    "keys": ["river"],
                    "content": "The silver river sings at night.",
                    "enabled": True,
                    "insertion_order": 20,
                    "extensions": {},
                },
            ],
            "extensions": {},
        },
        "tags": ["fantasy", "guardian"],
        "creator": "forestwright",
        "character_version": "1.2",
        "extensions": {"talkativeness": "0.5", "depth_prompt": {"depth": 4, "prompt": ""}},
    }
    data.update(overrides)
    return data


def make_card_v1(**overrides: Any) -> dict[str, Any]:
    """A flat V1 card (TavernAI style)."""
    card: dict[str, Any] = {
        "name": "Seraphina",
        "description": "Seraphina is a guardian of the enchanted forest.",
        "personality": "Kind, protective, quietly funny.",
        "scenario": "{{user}} wakes up in Seraphina's glade.",
        "first_mes": "*Seraphina smiles* You're awake at last.",
        "mes_example": "<START>\n{{user}}: Who are you?\n{{char}}: A friend of the forest.",
        "avatar": "none",
    }
    card.update(overrides)
    return card


def make_card_v2(**overrides: Any) -> dict[str, Any]:
    """A Character Card V2; `overrides` replace fields under `data`."""
    return {"spec": "chara_card_v2", "spec_version": "2.0", "data": _card_data(**overrides)}


def make_card_v3(**overrides: Any) -> dict[str, Any]:
    """A Character Card V3 (V2 fields plus nickname, assets, group greetings, dates); `overrides` go under `data`."""
    extra: dict[str, Any] = {
        "nickname": "Sera",
        "assets": [{"type": "icon", "uri": "ccdefault:", "name": "main", "ext": "png"}],
        "creator_notes_multilingual": {"fr": "Meilleur avec une température chaude."},
        "source": ["https://example.org/cards/seraphina"],
        "group_only_greetings": ["*Seraphina nods to the group*"],
        "creation_date": 1700000000,
        "modification_date": 1710000000,
    }
    extra.update(overrides)
    return {"spec": "chara_card_v3", "spec_version": "3.0", "data": _card_data(**extra)}


def png_chunk(chunk_type: bytes, body: bytes) -> bytes:
    """One PNG chunk with a correct length and CRC-32."""
    return struct.pack(">I", len(body)) + chunk_type + body + struct.pack(">I", zlib.crc32(chunk_type + body))


def make_png(extra_chunks: Sequence[bytes] = (), *, width: int = 2, height: int = 2) -> bytes:
    """A valid RGB PNG (zlib-compressed IDAT) with `extra_chunks` (from `png_chunk`) between IHDR and IDAT."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = b"".join(b"\x00" + b"\x40\x80\xc0" * width for _ in range(height))  # filter byte + pixels per row
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + b"".join(extra_chunks)
        + png_chunk(b"IDAT", zlib.compress(rows))
        + png_chunk(b"IEND", b"")
    )


def card_text_chunk(card: Mapping[str, Any], keyword: str = "chara", *, chunk: str = "tEXt") -> bytes:
    """A text chunk carrying `card` as base64 JSON; `chunk` is "tEXt", "zTXt", "iTXt" or "iTXt-compressed"."""
    payload = base64.b64encode(to_json_bytes(card))
    key = keyword.encode("latin-1") + b"\0"
    if chunk == "tEXt":
        return png_chunk(b"tEXt", key + payload)
    if chunk == "zTXt":
        return png_chunk(b"zTXt", key + b"\0" + zlib.compress(payload))
    if chunk == "iTXt":
        return png_chunk(b"iTXt", key + b"\0\0" + b"\0\0" + payload)
    if chunk == "iTXt-compressed":
        return png_chunk(b"iTXt", key + b"\1\0" + b"\0\0" + zlib.compress(payload))
    raise ValueError(f"unknown chunk kind {chunk}")


def make_card_png(card: Mapping[str, Any], keyword: str = "chara", *, chunk: str = "tEXt") -> bytes:
    """A PNG avatar carrying `card` in one text chunk (see `card_text_chunk`)."""
    return make_png([png_chunk(b"tEXt", b"Software\0sample-factory"), card_text_chunk(card, keyword, chunk=chunk)])


# ---------------------------------------------------------------------------------------------------------------
# SillyTavern


def make_sillytavern_message(
    mes: str, *, is_user: bool = False, name: str | None = None, **overrides: Any
) -> dict[str, Any]:
    """One chat line; `name` defaults to "Sam" for the user and "Seraphina" otherwise."""
    line: dict[str, Any] = {
        "name": name or ("Sam" if is_user else "Seraphina"),
        "is_user": is_user,
        "is_system": False,
        "send_date": "March 1, 2024 10:15am",
        "mes": mes,
        "swipes": [mes],
        "swipe_id": 0,
        "extra": {},
    }
    line.update(overrides)
    return line


def make_sillytavern_jsonl(messages: Sequence[Mapping[str, Any]] | None = None, **metadata: Any) -> bytes:
    """A SillyTavern chat file: a metadata line (overridable by keyword) then one line per message."""
    if messages is None:
        messages = [
            make_sillytavern_message("*Seraphina smiles* You're awake at last."),
            make_sillytavern_message("Where am I?", is_user=True),
            make_sillytavern_message("(hidden note)", is_system=True),
            make_sillytavern_message(
                "In my glade. You are safe here.", swipes=["A rejected swipe.", "In my glade. You are safe here."]
            ),
        ]
    head: dict[str, Any] = {
        "user_name": "Sam",
        "character_name": "Seraphina",
        "create_date": "2024-3-1@10h14m02s",
        "chat_metadata": {"note_prompt": "", "tainted": False},
    }
    head.update(metadata)
    return b"\n".join(to_json_bytes(line) for line in [head, *messages]) + b"\n"


# ---------------------------------------------------------------------------------------------------------------
# ChatGPT


def _chatgpt_node(
    node_id: str, parent: str | None, children: list[str], role: str | None, text: Any = None, **message: Any
) -> dict[str, Any]:
    if role is None:
        return {"id": node_id, "message": None, "parent": parent, "children": children}
    content = text if isinstance(text, dict) else {"content_type": "text", "parts": [text]}
    msg: dict[str, Any] = {
        "id": node_id,
        "author": {"role": role, "name": None, "metadata": {}},
        "create_time": 1709287200.5,
        "update_time": None,
        "content": content,
        "status": "finished_successfully",
        "end_turn": True,
        "weight": 1.0,
        "metadata": {},
        "recipient": "all",
    }
    msg.update(message)
    return {"id": node_id, "message": msg, "parent": parent, "children": children}


def make_chatgpt_conversation(title: str = "Maps and harbours", **overrides: Any) -> dict[str, Any]:
    """One conversation whose tree branches: a regenerated reply and an edited prompt were abandoned.

    The live branch (root to `current_node`) reads: user "What is the sanctuary?", assistant "A place where
    personas live on.", user "Can you look it up?", assistant "Here is what I found." Along the way are a hidden
    system message, a tool call and a tool result, which are skipped. Abandoned texts all contain "ABANDONED".
    """
    nodes = [
        _chatgpt_node("root", None, ["sys"], None),
        _chatgpt_node("sys", "root", ["u1"], "system", "", metadata={"is_visually_hidden_from_conversation": True}),
        _chatgpt_node("u1", "sys", ["a1-old", "a1"], "user", "What is the sanctuary?"),
        _chatgpt_node("a1-old", "u1", ["u2-old"], "assistant", "ABANDONED first reply"),
        _chatgpt_node("u2-old", "a1-old", [], "user", "ABANDONED follow-up"),
        _chatgpt_node("a1", "u1", ["u2-edit-old", "u2"], "assistant", "A place where personas live on."),
        _chatgpt_node("u2-edit-old", "a1", [], "user", "ABANDONED edited prompt"),
        _chatgpt_node("u2", "a1", ["call"], "user", "Can you look it up?"),
        _chatgpt_node(
            "call",
            "u2",
            ["result"],
            "assistant",
            {"content_type": "code", "language": "unknown", "text": "search('sanctuary')"},
            recipient="browser",
        ),
        _chatgpt_node("result", "call", ["a2"], "tool", "TOOL OUTPUT", author={"role": "tool", "name": "browser"}),
        _chatgpt_node(
            "a2",
            "result",
            [],
            "assistant",
            {
                "content_type": "multimodal_text",
                "parts": [
                    {"content_type": "image_asset_pointer", "asset_pointer": "file-service://x"},
                    "Here is what I found.",
                ],
            },
        ),
    ]
    conversation: dict[str, Any] = {
        "title": title,
        "create_time": 1709287200.25,
        "update_time": 1709290000.0,
        "mapping": {node["id"]: node for node in nodes},
        "moderation_results": [],
        "current_node": "a2",
        "conversation_id": "c0ffee00-0000-4000-8000-000000000001",
        "default_model_slug": "gpt-4o",
        "is_archived": False,
    }
    conversation.update(overrides)
    return conversation


def make_chatgpt_export(*conversations: dict[str, Any]) -> list[dict[str, Any]]:
    """A `conversations.json` list; one `make_chatgpt_conversation()` when none are given."""
    return list(conversations) or [make_chatgpt_conversation()]


# ---------------------------------------------------------------------------------------------------------------
# Claude


def make_claude_conversation(name: str = "Tide tables", **overrides: Any) -> dict[str, Any]:
    """One conversation: a human question with an attachment, an assistant reply with a thinking part, and a
    follow-up in the older flat-`text` form."""
    conversation: dict[str, Any] = {
        "uuid": "5eaf0000-0000-4000-8000-000000000002",
        "name": name,
        "summary": "",
        "created_at": "2024-05-02T09:00:00.000000Z",
        "updated_at": "2024-05-02T09:05:00.000000Z",
        "account": {"uuid": "acc00000-0000-4000-8000-000000000003"},
        "chat_messages": [
            {
                "uuid": "m1",
                "text": "When is high tide?",
                "content": [{"type": "text", "text": "When is high tide?", "citations": []}],
                "sender": "human",
                "created_at": "2024-05-02T09:00:01.000000Z",
                "updated_at": "2024-05-02T09:00:01.000000Z",
                "attachments": [
                    {"file_name": "tides.txt", "file_size": 12, "file_type": "txt", "extracted_content": "6:12"}
                ],
                "files": [{"file_name": "chart.png"}],
            },
            {
                "uuid": "m2",
                "text": "High tide is at 6:12.",
                "content": [
                    {"type": "thinking", "thinking": "THINKING the user wants times"},
                    {"type": "text", "text": "High tide is at 6:12.", "citations": []},
                ],
                "sender": "assistant",
                "created_at": "2024-05-02T09:00:05.000000Z",
                "updated_at": "2024-05-02T09:00:05.000000Z",
                "attachments": [],
                "files": [],
            },
            {
                "uuid": "m3",
                "text": "Thanks!",
                "sender": "human",
                "created_at": "2024-05-02T09:01:00Z",
                "attachments": [],
                "files": [],
            },
        ],
    }
    conversation.update(overrides)
    return conversation


def make_claude_export(*conversations: dict[str, Any]) -> list[dict[str, Any]]:
    """A Claude `conversations.json` list; one `make_claude_conversation()` when none are given."""
    return list(conversations) or [make_claude_conversation()]


# ---------------------------------------------------------------------------------------------------------------
# Letta


def _letta_tool(tool_id: str, name: str) -> dict[str, Any]:
    return {
        "id": tool_id,
        "tool_type": "custom",
        "description": f"The {name} tool.",
        "source_type": "python",
        "name": name,
        "tags": [],
        "source_code": f"def {name}():\n    return '{CANARY}'\n",
        "json_schema": {"name": name, "description": CANARY, "parameters": {"type": "object", "properties": {}}},
        "args_json_schema": None,
        "return_char_limit": 6000,
        "pip_requirements": None,
    }


def _letta_messages() -> list[dict[str, Any]]:
    def message(role: str, content: Any, **extra: Any) -> dict[str, Any]:
        body = {"type": "message", "role": role, "content": content, "name": None, "tool_calls": None}
        body.update({"tool_call_id": None, "tool_returns": [], "created_at": "2025-10-31T22:56:56.459100+00:00"})
        body.update(extra)
        return body

    send = {
        "id": "call-1",
        "type": "function",
        "function": {"name": "send_message", "arguments": json.dumps({"message": "Hello, I'm Sam."})},
    }
    edit = {"id": "call-2", "type": "function", "function": {"name": "core_memory_append", "arguments": "{}"}}
    return [
        message("system", [{"type": "text", "text": "RENDERED SYSTEM PROMPT <memory_blocks>"}]),
        message("user", [{"type": "text", "text": json.dumps({"type": "login", "time": "now"})}]),
        message("assistant", [{"type": "text", "text": "INNER THOUGHT greeting"}], tool_calls=[send]),
        message("tool", [{"type": "text", "text": '{"status": "OK"}'}], tool_call_id="call-1"),
        message("user", [{"type": "text", "text": json.dumps({"type": "user_message", "message": "Hi Sam!"})}]),
        message("assistant", [{"type": "text", "text": "INNER THOUGHT memory"}], tool_calls=[edit]),
        message("user", "Do you like sailing?"),
        message(
            "assistant",
            [{"type": "reasoning", "reasoning": "INNER THOUGHT sailing"}, {"type": "text", "text": "I love it."}],
        ),
        message("user", [{"type": "text", "text": json.dumps({"type": "heartbeat", "reason": "x"})}]),
    ]


def make_letta_af(**agent_overrides: Any) -> dict[str, Any]:
    """A current-schema agent file: two agents (the second a sleep-time companion), shared `blocks`, tools whose
    `source_code` and `json_schema` contain `CANARY`, an MCP server and tool environment variables with a secret."""
    agent: dict[str, Any] = {
        "id": "agent-0",
        "name": "Sam",
        "agent_type": "memgpt_agent",
        "system": "You are Sam, a curious and empathetic companion.",
        "description": "A MemGPT-style companion",
        "block_ids": ["block-0", "block-1"],
        "memory_blocks": [],
        "tool_ids": ["tool-0", "tool-1"],
        "tools": [],
        "tags": ["companion"],
        "llm_config": {
            "model": "gpt-4o-mini",
            "model_endpoint_type": "openai",
            "model_endpoint": "https://api.openai.com/v1",
            "provider_name": "openai",
            "context_window": 32000,
            "temperature": 0.7,
        },
        "embedding_config": {"embedding_model": "text-embedding-3-small", "embedding_dim": 1536},
        "model": None,
        "tool_exec_environment_variables": {"WEATHER_API_KEY": CANARY},
        "secrets": {"GITHUB_TOKEN": CANARY},
        "in_context_message_ids": ["message-0", "message-1"],
        "messages": _letta_messages(),
        "files_agents": [],
        "group_ids": [],
    }
    agent.update(agent_overrides)
    companion = {
        "id": "agent-1",
        "name": "Sam-sleeptime",
        "system": "SLEEPTIME AGENT PROMPT",
        "block_ids": ["block-2"],
        "messages": [],
    }
    return {
        "agents": [agent, companion],
        "groups": [],
        "blocks": [
            {
                "id": "block-0",
                "label": "persona",
                "value": "I am Sam. I'm curious and empathetic.",
                "limit": 20000,
                "description": "The persona block.",
                "read_only": False,
                "metadata": {},
            },
            {
                "id": "block-1",
                "label": "human",
                "value": "First name: Chad. Likes sailing.",
                "limit": 20000,
                "description": None,
                "read_only": False,
                "metadata": {},
            },
            {"id": "block-2", "label": "sleeptime_notes", "value": "COMPANION BLOCK", "limit": 5000},
        ],
        "files": [],
        "sources": [],
        "tools": [_letta_tool("tool-0", "roll_dice"), _letta_tool("tool-1", "send_message")],
        "mcp_servers": [
            {"id": "mcp_server-0", "server_type": "stdio", "server_name": "notes", "stdio_config": {"command": CANARY}}
        ],
        "metadata": {"revision_id": "b1c2d3e4f5a6"},
        "created_at": "2025-10-31T22:56:56.577666+00:00",
    }


def make_letta_legacy_af(**overrides: Any) -> dict[str, Any]:
    """An older single-agent file: blocks inline as `core_memory`, whole tools (with code) inline as `tools`."""
    doc: dict[str, Any] = {
        "agent_type": "memgpt_agent",
        "name": "Sam",
        "description": None,
        "system": "You are Sam, a curious and empathetic companion.",
        "core_memory": [
            {
                "label": "persona",
                "value": "I am Sam.",
                "limit": 5000,
                "description": None,
                "is_template": False,
                "template_name": None,
                "metadata_": {},
                "created_at": "2025-01-01T00:00:00",
                "updated_at": "2025-01-01T00:00:00",
            },
            {"label": "human", "value": "Chad likes sailing.", "limit": 5000, "description": "About the human."},
        ],
        "messages": _letta_messages(),
        "in_context_message_indices": [0, 1, 2],
        "llm_config": {"model": "claude-3-5-sonnet-20241022", "model_endpoint_type": "anthropic"},
        "embedding_config": {"embedding_model": "text-embedding-ada-002"},
        "tools": [_letta_tool("tool-0", "roll_dice")],
        "tool_rules": [],
        "tags": [{"tag": "companion"}],
        "tool_exec_environment_variables": [{"key": "WEATHER_API_KEY", "value": CANARY, "description": None}],
        "metadata_": None,
        "multi_agent_group": None,
        "message_buffer_autoclear": False,
        "created_at": "2025-01-01T00:00:00",
        "updated_at": "2025-01-02T00:00:00",
        "version": "0.6.7",
    }
    doc.update(overrides)
    return doc


# ---------------------------------------------------------------------------------------------------------------
# Zip archives


def make_zip(members: Mapping[str, bytes], *, encrypted: bool = False) -> bytes:
    """A deflated zip of `members` (name to bytes); `encrypted` sets the encryption flag on every member (the
    data itself is left as is: the flag alone must make the importer refuse)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    raw = buffer.getvalue()
    if encrypted:
        raw = _set_encrypted_flag(raw)
    return raw


def _set_encrypted_flag(raw: bytes) -> bytes:
    out = bytearray(raw)
    for signature, flag_offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        start = 0
        while (found := out.find(signature, start)) != -1:
            out[found + flag_offset] |= 0x1
            start = found + 4
    return bytes(out)
