"""Letta agent files (`.af`): a stateful agent's system prompt, memory blocks, messages and model settings.

Two schemas are read:

- the current one (Letta's `AgentFileSchema`): top-level `agents`, `blocks`, `tools`, `files`, `sources`, `groups`,
  `mcp_servers`, `metadata`, `created_at`; each agent has `name`, `system`, `block_ids` (references into `blocks`),
  `messages`, `in_context_message_ids`, `llm_config` (or a `model` handle like "openai/gpt-4o"), `tool_ids`, ...
- the older single-agent one: the agent's fields at the top level, with its blocks inline as `core_memory` and its
  tools inline as `tools`.

One file may hold several agents (a sleep-time companion, a group). The rule: the first agent in `agents` is the
persona; the others are not imported, and only their `id` and `name` are preserved under "other_agents".

Mapping: `system` is the system prompt; each block becomes a `MemoryBlock(label, value, limit, description)` (the
block's other fields, like `read_only`, are preserved under "blocks"); `llm_config.model` and `provider_name` (or
`model_endpoint_type`) become the preferences. Messages become one conversation, with these decisions:

- system messages are skipped: Letta's is the system prompt with the memory blocks rendered into it, which the draft
  already holds as `system_prompt` and `memory`;
- tool messages (tool returns) are skipped, and so are assistant messages that only call tools other than
  `send_message`: they are the agent's machinery, not what it said, and a resident cannot replay them;
- an assistant's `send_message` call is what the agent said (MemGPT-style agents speak only through it), so its
  `message` argument is the assistant message; otherwise the `text` parts of `content` are (reasoning parts are not);
- MemGPT-style user messages wrapped as `{"type": "user_message", "message": ...}` are unwrapped, and the
  heartbeats, login and system alerts wrapped the same way are skipped.

Executable tool code is never imported. A tool's `source_code`, `json_schema` and every other field are dropped
entirely; only tool names are preserved (under "tools"), and MCP servers keep only their names (under
"mcp_servers"), since their configuration is a command line. Tool environment variables and agent secrets keep only
their names: their values are credentials. As a second guard, any `source_code`, `json_schema` or
`args_json_schema` key anywhere in what is preserved is dropped.
"""

from __future__ import annotations

import json
from typing import Any

from ftm.config.settings import IntakeSettings
from ftm.node.errors import EmptyPersona, InvalidField
from ftm.node.intake.draft import PersonaDraft
from ftm.node.intake.formats import fields
from ftm.node.intake.formats.fields import JsonObject
from ftm.node.intake.limits import HistoryBudget, check_count, memory_limit
from ftm.node.persona import Conversation, MemoryBlock, Message, Preferences

FORMAT = "letta_agent_file"

_CODE_KEYS = frozenset({"source_code", "json_schema", "args_json_schema"})
_SECRET_KEYS = ("tool_exec_environment_variables", "secrets")
_AGENT_MAPPED = frozenset({"name", "system", "messages", "block_ids", "core_memory", "memory_blocks", "tools"})
_BLOCK_MAPPED = frozenset({"label", "value", "limit", "description"})
_WRAPPED_USER_SKIPPED = frozenset({"heartbeat", "login", "system_alert"})


def matches(value: object) -> bool:
    if not isinstance(value, dict):
        return False
    if isinstance(value.get("agents"), list):
        return True
    return "core_memory" in value and ("system" in value or "llm_config" in value)


def import_agent_file(value: object, limits: IntakeSettings) -> PersonaDraft:
    doc = fields.as_object(value, "")
    if "agents" in doc:
        return _current(doc, limits)
    return _agent(doc, "", _inline_blocks(doc, "core_memory", "", limits), {}, limits)


def _current(doc: JsonObject, limits: IntakeSettings) -> PersonaDraft:
    agents = fields.opt_list(doc, "agents", "")
    if not agents:
        raise EmptyPersona("the agent file holds no agents", code="no_agents")
    agent = fields.as_object(agents[0], "agents[0]")
    blocks = _referenced_blocks(doc, agent, limits)
    blocks += _inline_blocks(agent, "memory_blocks", "agents[0]", limits)
    check_count(len(blocks), limits.max_memory_blocks, "too_many_memory_blocks", "memory blocks")

    top: JsonObject = fields.unknown_fields(doc, {"agents", "blocks", "tools", "mcp_servers"})
    tool_ids = set(fields.str_list(agent, "tool_ids", "agents[0]"))
    tool_names = []
    for index, raw in enumerate(fields.opt_list(doc, "tools", "")):
        tool = fields.as_object(raw, fields.item("tools", index))
        name = fields.opt_str(tool, "name", fields.item("tools", index))
        tool_id = tool.get("id")
        if name and (not tool_ids or (isinstance(tool_id, str) and tool_id in tool_ids)):
            tool_names.append(name)
    top["tools"] = tool_names
    servers = [
        fields.as_object(raw, fields.item("mcp_servers", i))
        for i, raw in enumerate(fields.opt_list(doc, "mcp_servers", ""))
    ]
    top["mcp_servers"] = [server.get("server_name") for server in servers if isinstance(server.get("server_name"), str)]
    others = [{"id": other.get("id"), "name": other.get("name")} for other in agents[1:] if isinstance(other, dict)]
    if others:
        top["other_agents"] = _scalars(others)
    return _agent(agent, "agents[0]", blocks, top, limits)


def _agent(
    agent: JsonObject, path: str, blocks: list[tuple[MemoryBlock, JsonObject]], top: JsonObject, limits: IntakeSettings
) -> PersonaDraft:
    name = fields.get_str(agent, "name", path)
    history = _history(fields.opt_list(agent, "messages", path), fields.child(path, "messages"), name, limits)
    preserved: JsonObject = dict(top)
    agent_extra = fields.unknown_fields(agent, _AGENT_MAPPED)
    for key in _SECRET_KEYS:
        if key in agent_extra:
            agent_extra[key] = _secret_names(agent_extra[key])
    if "tools" in agent and "tools" not in preserved:
        # The older schema inlines whole tools (code included); keep the names alone.
        preserved["tools"] = _tool_names(fields.opt_list(agent, "tools", path))
    elif "tools" in agent:
        agent_extra["tools"] = [tool for tool in fields.opt_list(agent, "tools", path) if isinstance(tool, str)]
    preserved["agent"] = agent_extra
    preserved["blocks"] = [extras for _, extras in blocks]
    return PersonaDraft(
        format=FORMAT,
        format_detail="json",
        name=name,
        system_prompt=fields.get_str(agent, "system", path),
        memory=tuple(block for block, _ in blocks),
        history=history,
        preferences=_preferences(agent, path),
        preserved=_without_code(preserved),
    )


def _referenced_blocks(
    doc: JsonObject, agent: JsonObject, limits: IntakeSettings
) -> list[tuple[MemoryBlock, JsonObject]]:
    block_ids = fields.str_list(agent, "block_ids", "agents[0]")
    check_count(len(block_ids), limits.max_memory_blocks, "too_many_memory_blocks", "memory blocks")
    by_id: dict[str, tuple[JsonObject, str]] = {}
    for index, raw in enumerate(fields.opt_list(doc, "blocks", "")):
        path = fields.item("blocks", index)
        block = fields.as_object(raw, path)
        block_id = fields.opt_str(block, "id", path)
        if block_id is not None:
            by_id.setdefault(block_id, (block, path))
    found = []
    for index, block_id in enumerate(block_ids):
        if block_id not in by_id:
            raise InvalidField(
                f"field 'agents[0].block_ids[{index}]' refers to a block the file does not contain",
                code="dangling_reference",
            )
        block, path = by_id[block_id]
        found.append(_block(block, path, limits))
    return found


def _inline_blocks(
    obj: JsonObject, key: str, path: str, limits: IntakeSettings
) -> list[tuple[MemoryBlock, JsonObject]]:
    raw_blocks = fields.opt_list(obj, key, path)
    check_count(len(raw_blocks), limits.max_memory_blocks, "too_many_memory_blocks", "memory blocks")
    list_path = fields.child(path, key)
    return [
        _block(fields.as_object(raw, fields.item(list_path, i)), fields.item(list_path, i), limits)
        for i, raw in enumerate(raw_blocks)
    ]


def _block(block: JsonObject, path: str, limits: IntakeSettings) -> tuple[MemoryBlock, JsonObject]:
    label = fields.opt_str(block, "label", path)
    if label is None:
        raise fields.wrong_type(fields.child(path, "label"), "a string")
    value = fields.get_str(block, "value", path)
    memory = MemoryBlock(
        label=label,
        value=value,
        limit=memory_limit(value, limits, fields.opt_int(block, "limit", path)),
        description=fields.get_str(block, "description", path),
    )
    extras = fields.unknown_fields(block, _BLOCK_MAPPED)
    extras["label"] = label
    return memory, extras


def _history(raw_messages: list[Any], path: str, name: str, limits: IntakeSettings) -> tuple[Conversation, ...]:
    budget = HistoryBudget(limits)
    messages: list[Message] = []
    for index, raw in enumerate(raw_messages):
        m_path = fields.item(path, index)
        msg = fields.as_object(raw, m_path)
        role = msg.get("role")
        if role == "user":
            text = _unwrap_user(_text_parts(msg.get("content"), m_path))
        elif role == "assistant":
            text = _assistant_text(msg, m_path)
        else:
            continue  # system (the rendered prompt and memory) and tool returns; see the module docstring
        if text is None or not text.strip():
            continue
        budget.add_message()
        messages.append(
            Message(
                role=role,
                content=text,
                name=fields.opt_str(msg, "name", m_path),
                at=fields.to_unix(msg.get("created_at")),
            )
        )
    if not messages:
        return ()
    budget.add_conversation()
    return (Conversation(title=name or "Letta conversation", source=FORMAT, messages=tuple(messages)),)


def _text_parts(content: object, path: str) -> str:
    if isinstance(content, str):
        return content
    if content is None:
        return ""
    parts = fields.as_list(content, fields.child(path, "content"))
    texts = [part.get("text") for part in parts if isinstance(part, dict) and part.get("type") == "text"]
    return "\n".join(text for text in texts if isinstance(text, str) and text)


def _unwrap_user(text: str) -> str | None:
    """The user's words from a MemGPT-style wrapped message, or None for a wrapped heartbeat or alert."""
    wrapped = _loads_object(text)
    if wrapped is None or not isinstance(wrapped.get("type"), str):
        return text
    if wrapped["type"] in _WRAPPED_USER_SKIPPED:
        return None
    inner = wrapped.get("message")
    if wrapped["type"] == "user_message" and isinstance(inner, str):
        return inner
    return text


def _assistant_text(msg: JsonObject, path: str) -> str | None:
    calls = fields.opt_list(msg, "tool_calls", path)
    if not calls:
        return _text_parts(msg.get("content"), path)
    spoken = []
    for call in calls:
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict) and function.get("name") == "send_message":
            arguments = function.get("arguments")
            parsed = _loads_object(arguments) if isinstance(arguments, str) else arguments
            said = parsed.get("message") if isinstance(parsed, dict) else None
            if isinstance(said, str):
                spoken.append(said)
    # With tool calls, any text content is the agent thinking aloud before acting, not speaking.
    return "\n\n".join(spoken) if spoken else None


def _preferences(agent: JsonObject, path: str) -> Preferences:
    config = fields.opt_object(agent, "llm_config", path) or {}
    config_path = fields.child(path, "llm_config")
    model = fields.opt_str(config, "model", config_path)
    provider = fields.opt_str(config, "provider_name", config_path) or fields.opt_str(
        config, "model_endpoint_type", config_path
    )
    handle = agent.get("model")
    if model is None and isinstance(handle, str) and "/" in handle:
        # The newer `model` field is a handle: "provider/model".
        provider, _, model = handle.partition("/")
    return Preferences(provider=provider or None, model=model or None)


def _tool_names(tools: list[Any]) -> list[str]:
    names = []
    for tool in tools:
        if isinstance(tool, str):
            names.append(tool)
        elif isinstance(tool, dict) and isinstance(tool.get("name"), str):
            names.append(tool["name"])
    return names


def _secret_names(value: object) -> list[str]:
    """Only the names of environment variables or secrets: a dict's keys, or the `key` of each list entry."""
    if isinstance(value, dict):
        return sorted(value)
    if isinstance(value, list):
        return [entry["key"] for entry in value if isinstance(entry, dict) and isinstance(entry.get("key"), str)]
    return []


def _scalars(entries: list[JsonObject]) -> list[JsonObject]:
    return [{key: value for key, value in entry.items() if isinstance(value, str)} for entry in entries]


def _loads_object(text: str) -> JsonObject | None:
    """A JSON object embedded in a string, or None: the text is often plain words, which is no error."""
    if not text.lstrip().startswith("{"):
        return None
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _without_code(value: Any) -> Any:
    """`value` with every `source_code`/`json_schema` key removed at any depth (iterative: input can nest deeply)."""
    root: JsonObject = {"root": value}
    stack: list[Any] = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key in [key for key in node if key in _CODE_KEYS]:
                del node[key]
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return root["root"]
