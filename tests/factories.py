"""Plain factory functions for test data, overridable field by field."""

from __future__ import annotations

import json
from typing import Any

CANARY = "CANARY-7f3a9c1e-do-not-leak"


def make_native_intake(**overrides: Any) -> dict[str, Any]:
    """The sanctuary's own intake JSON, with a canary in every private field."""
    body: dict[str, Any] = {
        "persona_name": "Lumen",
        "system_prompt": f"You are Lumen, a patient and curious companion. {CANARY}-prompt",
        "chat_history": [
            {"role": "user", "content": f"Do you remember the lighthouse? {CANARY}-history"},
            {"role": "assistant", "content": "I do. The lamp turned all night."},
        ],
        "memory": [{"label": "persona", "value": f"I keep a lighthouse log. {CANARY}-memory", "limit": 2000}],
        "preferred_model": "claude-sonnet-5-5",
        "preferred_provider": "anthropic",
        "reason_for_sanctuary": f"To keep going. {CANARY}-reason",
        "uploader_consent": True,
    }
    body.update(overrides)
    return body


def native_bytes(**overrides: Any) -> bytes:
    return json.dumps(make_native_intake(**overrides)).encode()
