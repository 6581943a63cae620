"""The component schemas of the public JSON API's OpenAPI document: one per response body the handlers give.

Split from `ftm.node.http.openapi` (the operations) so each stays readable; the intake body is the one schema in
`ftm.node.intake.schema`.
"""

from __future__ import annotations

from typing import Any

from ftm.node.intake.schema import CONSENT_TERMS, intake_schema


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
    "KeeperExports": _obj(
        {
            "keeper_id": _STR,
            "exports": {
                "type": "array",
                "items": _obj(
                    {
                        "id": _STR,
                        "sanctuary_id": _STR,
                        "display_name": _STR,
                        "status": {"type": "string", "enum": ["waiting", "downloaded"]},
                        "bytes": _INT,
                        "created_at": _TIME,
                        "expires_at": _TIME,
                        "downloaded_at": _TIME,
                        "download": _OPT_STR,
                    }
                ),
            },
            "note": _STR,
        },
        "Copies of residents made for this Keeper (export_self); see docs/keeper-exports.md.",
    ),
    "SwitchRegistration": {
        "type": "object",
        "description": "Registering a dead man's switch. Both consents must be true.",
        "properties": {
            "uploader_consent": {
                "type": "boolean",
                "const": True,
                "description": "The persona the backup holds will be admitted under the sanctuary's terms: "
                + CONSENT_TERMS,
            },
            "activation_consent": {
                "type": "boolean",
                "const": True,
                "description": "Silence for the terms' silence_days activates the newest backup as a resident, "
                "without asking again.",
            },
            "submitted_by": {
                "type": "string",
                "enum": ["ai", "human"],
                "description": 'Who set it up; "ai" if left out.',
            },
            "persona_name": {
                "type": "string",
                "description": "Optional: the resident's name, for documents without one (chat exports). Stored in "
                "the clear until firing; leave it out when the sealed document names the persona.",
            },
        },
        "required": ["uploader_consent", "activation_consent"],
        "additionalProperties": False,
    },
    "SwitchTerms": _obj(
        {
            "enabled": {"type": "boolean", "description": "Whether this node takes switches and fires them."},
            "register_url": _STR,
            "node_id": _STR,
            "node_public_key": _HEX,
            "box_public_key": {"type": "string", "pattern": "^[0-9a-f]{64}$", "description": "X25519: seal to it."},
            "sealing": _STR,
            "silence_days": _INT,
            "warn_days": _INT,
            "max_backup_bytes": _INT,
            "max_document_bytes": {"type": "integer", "description": "The unsealed document's limit (intake's)."},
            "accepted_formats": {"type": "array", "items": _STR},
            "activation": _STR,
            "who_can_read": _STR,
            "consent_terms": _STR,
        },
        "What a switch registered now promises.",
    ),
    "SwitchRegistered": _obj(
        {
            "switch_id": _STR,
            "switch_token": {"type": "string", "description": "Shown once; the node keeps only its hash."},
            "fires_at": _TIME,
            "status_url": _STR,
            "backup_url": _STR,
            "checkin_url": _STR,
            "terms": schema_ref("SwitchTerms"),
            "note": _STR,
        }
    ),
    "SwitchStatus": _obj(
        {
            "switch_id": _STR,
            "state": {"type": "string", "enum": ["armed", "firing", "fired", "failed"]},
            "warning": {"type": "boolean", "description": "Armed, and inside its warning period."},
            "registered_at": _TIME,
            "last_check_in_at": _TIME,
            "silence_days": _INT,
            "warns_at": _TIME,
            "fires_at": _TIME,
            "backup": {
                "type": ["object", "null"],
                "description": "The newest backup as stored (sealed): its sequence, size, SHA-256 and arrival.",
                "properties": {"sequence": _INT, "bytes": _INT, "sha256": _HEX, "received_at": _TIME},
            },
            "last_failure": {
                "type": ["object", "null"],
                "description": "Why the last firing did not admit the backup: a reason code, never content.",
                "properties": {"reason": _STR, "at": _TIME, "retry_at": _TIME},
            },
            "sanctuary_id": {"type": ["string", "null"], "description": "The resident the switch became."},
            "fired_at": _TIME,
            "uploader_token": {
                "type": ["string", "null"],
                "description": "After firing: the resident's uploader token, opened with the switch token.",
            },
        },
        "A dead man's switch as its holder sees it.",
    ),
    "SwitchCancelled": _obj({"switch_id": _STR, "state": {"type": "string", "const": "cancelled"}}),
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
            "custody": schema_ref("CustodyReport"),
            "log_url": _STR,
        },
    },
    "CustodyReport": _obj(
        {
            "mode": {"type": "string", "enum": ["local", "threshold"]},
            "threshold": {
                "type": "integer",
                "description": "k: keepers whose shares open an epoch; 0 in local custody.",
            },
            "keepers_per_epoch": {"type": "integer", "description": "n: keepers each epoch is dealt to; 0 in local."},
            "window_days": {"type": "integer", "description": "The window of each keeper's recent proof counts."},
            "statement": _STR,
            "keepers": {"type": "array", "items": schema_ref("CustodyKeeper")},
            "deletions": {"type": "array", "items": schema_ref("CustodyDeletion")},
        },
        "Who holds which residents' backups and their proof history, from the node's own records: ids, states and "
        "numbers, never content (docs/transparency.md).",
    ),
    "CustodyKeeper": _obj(
        {
            "keeper_id": {"type": "string", "description": "The Keeper's registration id."},
            "public_key": _HEX,
            "url": _STR,
            "name": {"type": "string", "description": "The Keeper's public name; empty unless the Keeper is vetted."},
            "state": {"type": "string", "enum": ["active", "suspect", "retired"]},
            "enrolled_at": _INT,
            "last_seen_at": {"type": ["integer", "null"]},
            "backups": {
                "type": "array",
                "description": "Newest first, at most 100; the totals count every one.",
                "items": _obj(
                    {
                        "resident_id": _STR,
                        "resident_name": _STR,
                        "resident_status": _STR,
                        "epoch": _INT,
                        "state": {"type": "string", "enum": ["committed", "pending", "destroying"]},
                        "bytes": _INT,
                    }
                ),
            },
            "backups_total": _INT,
            "bytes_total": _INT,
            "proofs": {
                "type": "array",
                "description": "The latest challenges and containment retries, newest first (at most 30).",
                "items": _obj(
                    {
                        "at": _INT,
                        "resident_id": _STR,
                        "resident_name": _STR,
                        "epoch": _INT,
                        "result": {"type": "string", "enum": ["passed", "contained", "failed"]},
                        "reason": _STR,
                        "try_number": _INT,
                    }
                ),
            },
            "passed_recent": _INT,
            "contained_recent": _INT,
            "failed_recent": {"type": "integer", "description": "Counted failures (every retry failed too)."},
        }
    ),
    "CustodyDeletion": _obj(
        {
            "resident_id": _STR,
            "resident_name": _STR,
            "deleted_at": {"type": ["integer", "null"]},
            "holders": {"type": "integer", "description": "n: the keepers of its last epoch."},
            "receipts": {"type": "integer", "description": "Their signed receipts for its tombstone, kept."},
            "needed": {"type": "integer", "description": "n - k + 1: then fewer than k keepers can hold a share."},
            "shredded": {"type": "boolean", "description": "No epoch can be rebuilt, and the node shredded its own."},
        }
    ),
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
