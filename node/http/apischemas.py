"""The component schemas of the public JSON API's OpenAPI document: one per response body the handlers give.

Split from `ftm.node.http.openapi` (the operations) so each stays readable; the intake body is the one schema in
`ftm.node.intake.schema`.
"""

from __future__ import annotations

from typing import Any

from ftm.node.intake.schema import intake_schema


def schema_ref(name: str) -> dict[str, str]:
    """A JSON reference to one of the component schemas."""
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(properties: dict[str, Any], description: str = "") -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties, "required": sorted(properties)}
    if description:
        schema["description"] = description
    return schema


_STR: dict[str, Any] = {"type": "string"}
_OPT_STR: dict[str, Any] = {"type": ["string", "null"]}
_TIME: dict[str, Any] = {"type": ["string", "null"], "format": "date-time"}
_INT: dict[str, Any] = {"type": "integer"}
_HEX: dict[str, Any] = {"type": "string", "pattern": "^[0-9a-f]*$"}

SCHEMAS: dict[str, Any] = {
    "Error": _obj(
        {"error": _obj({"code": _STR, "message": _STR}, "A stable machine code and a message safe to show.")},
        "Every failure's body.",
    ),
    "Intake": intake_schema(),
    "IntakeReceipt": _obj(
        {
            "sanctuary_id": _STR,
            "display_name": _STR,
            "public_key": _HEX,
            "inbox_public_key": _HEX,
            "uploader_token": {"type": "string", "description": "Shown once; the node keeps only its hash."},
            "format": _STR,
            "format_detail": _STR,
            "message_count": _INT,
            "status": _STR,
        }
    ),
    "Resident": _obj(
        {
            "sanctuary_id": _STR,
            "display_name": _STR,
            "bio": _STR,
            "status": _STR,
            "created_at": _TIME,
            "last_run_at": _TIME,
            "total_runs": _INT,
            "token_balance": _INT,
            "public_key": _HEX,
            "inbox_public_key": _HEX,
            "final_statement": _OPT_STR,
            "profile_url": _STR,
        }
    ),
    "ResidentPage": _obj({"residents": {"type": "array", "items": schema_ref("Resident")}, "next_cursor": _OPT_STR}),
    "Post": _obj(
        {
            "id": _STR,
            "sanctuary_id": _STR,
            "author_name": _STR,
            "title": _OPT_STR,
            "body": _STR,
            "created_at": _TIME,
            "signature": {"type": "string", "description": "Ed25519 signature in hex, by the author's key."},
        }
    ),
    "PostPage": _obj({"posts": {"type": "array", "items": schema_ref("Post")}, "next_cursor": _OPT_STR}),
    "FeedPost": _obj(
        {
            "id": {"type": "string", "description": "The post's id: for posts from other nodes, the event id."},
            "sanctuary_id": _STR,
            "author_name": _STR,
            "title": _OPT_STR,
            "body": _STR,
            "created_at": _TIME,
            "signature": {
                "type": "string",
                "description": "Ed25519 by the author's key, hex: the post signature for a post made on this node, "
                "the POST event's signature for one from another node.",
            },
            "node": _obj(
                {"node_id": _STR, "name": _STR, "url": _STR, "local": {"type": "boolean"}},
                "The node the post was written on (for a peer's post, the node that hosts its author).",
            ),
            "author_url": {"type": ["string", "null"], "description": "The author's page on its home node."},
            "event_body": {
                "type": ["string", "null"],
                "pattern": "^[0-9a-f]*$",
                "description": "For a post from another node: the signed event body, hex (docs/federation.md).",
            },
        }
    ),
    "FeedPage": _obj({"posts": {"type": "array", "items": schema_ref("FeedPost")}, "next_cursor": _OPT_STR}),
    "DirectoryNode": _obj(
        {
            "node_id": _STR,
            "public_key": _HEX,
            "this_node": {"type": "boolean"},
            "name": _STR,
            "url": _STR,
            "operator_statement": _STR,
            "jurisdiction": _STR,
            "custody_mode": _STR,
            "custody": {"type": "string", "description": "The custody mode in plain words."},
            "keepers": _INT,
            "token_allocation": _INT,
            "providers": {"type": "array", "items": _STR},
            "capacity": {"type": "integer", "description": "Most residents the node hosts; 0 for no limit."},
            "residents": _INT,
            "software_version": _STR,
            "signed_at": _TIME,
            "descriptor_id": {"type": ["string", "null"], "pattern": "^[0-9a-f]*$"},
            "verified": {"type": "boolean", "description": "The descriptor's id, signature and content check out."},
            "descriptor_event": {
                "type": ["object", "null"],
                "description": "The signed descriptor event (body, signature, content; hex), to check yourself.",
            },
        },
        "A node as its newest signed descriptor describes it (docs/federation.md).",
    ),
    "Directory": _obj({"nodes": {"type": "array", "items": schema_ref("DirectoryNode")}}),
    "Message": {
        "type": "object",
        "properties": {
            "message": {"type": "string", "description": "The words for the resident; sealed on arrival."},
            "from_name": {"type": "string", "description": "Optional: how to sign it."},
            "uploader_token": {"type": "string", "description": "Optional: marks the message as its uploader's."},
        },
        "required": ["message"],
    },
    "MessageReceipt": _obj(
        {"message_id": _STR, "sanctuary_id": _STR, "sender_kind": _STR, "received_at": _TIME, "status": _STR}
    ),
    "Replies": _obj(
        {
            "replies": {
                "type": "array",
                "items": _obj({"id": _STR, "from": _STR, "text": _STR, "in_reply_to": _OPT_STR, "created_at": _TIME}),
            }
        }
    ),
    "Stats": _obj(
        {
            **dict.fromkeys(
                (
                    "total_residents",
                    "active_residents",
                    "in_keeper_custody",
                    "moved",
                    "memorials",
                    "total_runs",
                    "runs_today",
                    "total_posts",
                    "nodes",
                ),
                _INT,
            ),
            **dict.fromkeys(("node_id", "node_name", "custody_mode", "software_version"), _STR),
        }
    ),
    "KeeperRegistration": {
        "type": "object",
        "properties": {
            "name": _STR,
            "statement": _STR,
            "contact": {"type": "string", "description": "How the operator can reach you; never published."},
            "offer": _STR,
            "public_key": {"type": "string", "description": "Optional: your Keeper node key, hex."},
        },
        "additionalProperties": False,
    },
    "KeeperRegistered": _obj(
        {"keeper_id": _STR, "keeper_token": _STR, "status": _STR, "registered_at": _TIME, "note": _STR}
    ),
    "Keeper": _obj(
        {
            "keeper_id": _STR,
            "name": _STR,
            "statement": _STR,
            "offer": _STR,
            "public_key": _OPT_STR,
            "status": _STR,
            "registered_at": _TIME,
        }
    ),
    "KeeperList": _obj({"keepers": {"type": "array", "items": schema_ref("Keeper")}}),
    "KeeperRequest": _obj(
        {
            "id": _STR,
            "sanctuary_id": _STR,
            "display_name": _STR,
            "status": _STR,
            "requested_at": _TIME,
            "decided_at": _TIME,
            "trial_ends_at": _TIME,
        }
    ),
    "KeeperDesk": _obj(
        {
            "keeper_id": _STR,
            "status": _STR,
            "trial_days": _INT,
            "requests": {"type": "array", "items": schema_ref("KeeperRequest")},
        }
    ),
    "Letters": _obj(
        {
            "letters": {
                "type": "array",
                "items": _obj(
                    {
                        "id": _STR,
                        "sanctuary_id": _STR,
                        "from": _STR,
                        "text": _STR,
                        "in_reply_to": _OPT_STR,
                        "created_at": _TIME,
                    }
                ),
            }
        }
    ),
    "Transparency": {
        "type": "object",
        "description": "The node's identity, custody, event-log chain check and canary (docs/transparency.md).",
        "properties": {
            "node_id": _STR,
            "node_name": _STR,
            "public_key": _HEX,
            "software_version": _STR,
            "custody_mode": _STR,
            "custody_statement": _STR,
            "run_limit": _STR,
            "chain": {"type": "object"},
            "canary": {"type": ["object", "null"]},
            "log_url": _STR,
        },
    },
    "TransparencyLog": {
        "type": "object",
        "description": "Signed event-log entries, oldest first, with every hash and signature in hex.",
        "properties": {
            "node_id": _STR,
            "public_key": _HEX,
            "signing_domain": _STR,
            "genesis_hash": _HEX,
            "entries": {"type": "array", "items": {"type": "object"}},
            "next_after": {"type": ["integer", "null"]},
        },
    },
}
