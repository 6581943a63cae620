"""Importing an upload: size check, format sniffing, dispatch to one importer, then the draft's limits.

The format is decided from the bytes, never from the filename or content type alone (both are chosen by whoever
uploads): a PNG signature means a character card image, a zip signature a chat export archive, and JSON text is
told apart by its shape (see `_import_json`). The filename and content type only break a tie the bytes cannot: text
that is not one JSON document but whose first line is an object is read as JSON lines (a SillyTavern chat), and a
`.jsonl` name or JSON-lines content type makes that reading the one whose error is reported.

Every failure is an `ftm.node.errors.FtmError` with a specific code; nothing an importer meets in an upload (a wrong
type, a missing field, a loop) escapes as a KeyError or TypeError.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ftm.config.settings import IntakeSettings
from ftm.node.errors import EmptyPersona, LimitExceeded, MalformedInput, UnsupportedFormat
from ftm.node.intake.draft import PersonaDraft
from ftm.node.intake.formats import (
    character_card,
    chatgpt,
    claude,
    letta,
    native,
    png,
    sillytavern,
    zip_archive,
)
from ftm.node.intake.formats.jsontext import decode_utf8, parse_json, parse_json_bytes
from ftm.node.intake.limits import enforce_limits

SUPPORTED_FORMATS = (
    "the sanctuary's intake JSON",
    "Character Card V1, V2 or V3 (JSON, or embedded in a PNG)",
    "a SillyTavern chat (.jsonl)",
    "a ChatGPT data export (conversations.json, or the export .zip)",
    "a Claude data export (conversations.json, or the export .zip)",
    "a Letta agent file (.af)",
)
_JSON_START = re.compile(rb"(?:\xef\xbb\xbf)?[ \t\r\n]*[\[{]")
_JSONL_HINTS = ("application/jsonl", "application/x-ndjson", "application/x-jsonlines", "application/jsonlines")


@dataclass(frozen=True, slots=True)
class Upload:
    """Uploaded bytes, with the filename and content type the client claimed (hints only, never trusted)."""

    data: bytes
    filename: str | None = None
    content_type: str | None = None

    @property
    def hints_jsonl(self) -> bool:
        name = (self.filename or "").lower()
        kind = (self.content_type or "").split(";", 1)[0].strip().lower()
        return name.endswith(".jsonl") or kind in _JSONL_HINTS


def import_upload(upload: Upload, limits: IntakeSettings) -> PersonaDraft:
    """Turn an upload into a `PersonaDraft`, or raise the `FtmError` that says what is wrong with it."""
    if len(upload.data) > limits.max_upload_bytes:
        raise LimitExceeded(f"the upload is larger than {limits.max_upload_bytes} bytes", code="too_large")
    draft = _dispatch(upload, limits)
    if not draft.has_content:
        raise EmptyPersona(
            "the upload has no system prompt, memory or messages to make a persona from", code="no_usable_content"
        )
    enforce_limits(draft, limits)
    return draft


def _dispatch(upload: Upload, limits: IntakeSettings) -> PersonaDraft:
    data = upload.data
    if png.is_png(data):
        keyword, card_json = png.read_card(data, max_bytes=limits.max_upload_bytes)
        card = parse_json_bytes(card_json, f"the PNG's '{keyword}' card")
        if not character_card.matches(card):
            raise UnsupportedFormat(
                f"the PNG's '{keyword}' text chunk is not a character card", code="no_character_card"
            )
        return character_card.import_card(card, limits, detail=f"png/{keyword}")
    if zip_archive.is_zip(data):
        conversations = parse_json_bytes(
            zip_archive.read_conversations(data, limits), f"the archive's {zip_archive.MEMBER}"
        )
        return _import_chat_export(conversations, limits, detail="zip")
    if not _looks_like_json_text(data):
        raise _unknown("the upload is not JSON, a PNG image or a zip archive")
    text = decode_utf8(data, "the upload")
    try:
        value = parse_json(text, "the upload")
    except MalformedInput:
        # Not one JSON document. If it is named as JSON lines, or its first line is a chat line, read it as JSON
        # lines (and report their errors); otherwise the JSON error is the one worth reporting.
        if upload.hints_jsonl or _first_line_is_chat_line(text):
            return _import_jsonl(text, limits)
        raise
    return _import_json(value, text, limits)


def _import_json(value: Any, text: str, limits: IntakeSettings) -> PersonaDraft:
    """Dispatch a parsed JSON document by its shape; the order puts the most specific markers first."""
    if isinstance(value, list):
        return _import_chat_export(value, limits, detail="json")
    if letta.matches(value):
        return letta.import_agent_file(value, limits)
    if character_card.matches(value) and not native.matches(value):
        return character_card.import_card(value, limits, detail="json")
    if native.matches(value):
        return native.import_native(value, limits)
    if sillytavern.first_line_matches(value):
        # A SillyTavern chat with only its metadata line (or one message) is also a single JSON document.
        return sillytavern.import_chat(text, limits)
    raise _unknown("the JSON upload does not match any supported format")


def _import_chat_export(value: Any, limits: IntakeSettings, *, detail: str) -> PersonaDraft:
    if isinstance(value, list) and not value:
        raise EmptyPersona(
            "the upload is an empty list: a chat export with no conversations", code="no_usable_messages"
        )
    if chatgpt.matches(value):
        return chatgpt.import_export(value, limits, detail=detail)
    if claude.matches(value):
        return claude.import_export(value, limits, detail=detail)
    raise _unknown("the list is neither a ChatGPT nor a Claude conversations export")


def _import_jsonl(text: str, limits: IntakeSettings) -> PersonaDraft:
    number, first = _first_line(text)
    head = parse_json(first, f"line {number}", code="malformed_jsonl")
    if not sillytavern.first_line_matches(head):
        raise _unknown("the JSON lines do not look like a SillyTavern chat")
    return sillytavern.import_chat(text, limits)


def _first_line_is_chat_line(text: str) -> bool:
    number, first = _first_line(text)
    try:
        head = parse_json(first, f"line {number}")
    except MalformedInput:
        return False
    return sillytavern.first_line_matches(head)


def _first_line(text: str) -> tuple[int, str]:
    """The first non-blank line and its 1-based number (the text is known to start with "{" or "[")."""
    for number, line in enumerate(text.split("\n"), start=1):
        if line.strip():
            return number, line
    return 1, ""


def _looks_like_json_text(data: bytes) -> bool:
    """Whether the upload starts (after an optional byte-order mark and whitespace) like a JSON object or array."""
    return _JSON_START.match(data) is not None


def _unknown(reason: str) -> UnsupportedFormat:
    return UnsupportedFormat(f"{reason}. Supported formats: {'; '.join(SUPPORTED_FORMATS)}.", code="unknown_format")
