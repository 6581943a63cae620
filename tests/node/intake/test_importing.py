"""Sniffing and dispatch, the errors shared by every format, and fuzzing of `import_upload`."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ftm.config.settings import IntakeSettings
from ftm.node.errors import FtmError, LimitExceeded, MalformedInput, UnsupportedFormat
from ftm.node.intake.importing import SUPPORTED_FORMATS, Upload, import_upload
from tests.node.intake.samples import (
    CANARY,
    make_card_png,
    make_card_v1,
    make_card_v2,
    make_card_v3,
    make_chatgpt_export,
    make_claude_export,
    make_letta_af,
    make_letta_legacy_af,
    make_native,
    make_sillytavern_jsonl,
    make_upload,
    make_zip,
    to_json_bytes,
)

LIMITS = IntakeSettings()


def fail(upload: Upload, limits: IntakeSettings = LIMITS) -> FtmError:
    with pytest.raises(FtmError) as caught:
        import_upload(upload, limits)
    return caught.value


@pytest.mark.parametrize(
    ("upload", "expected"),
    [
        (make_upload(make_native()), ("native", "json")),
        (make_upload(make_card_v1()), ("character_card_v1", "json")),
        (make_upload(make_card_v2()), ("character_card_v2", "json")),
        (make_upload(make_card_v3()), ("character_card_v3", "json")),
        (Upload(make_card_png(make_card_v2())), ("character_card_v2", "png/chara")),
        (Upload(make_card_png(make_card_v3(), "ccv3")), ("character_card_v3", "png/ccv3")),
        (Upload(make_sillytavern_jsonl()), ("sillytavern_chat", "jsonl")),
        (make_upload(make_chatgpt_export()), ("chatgpt_export", "json")),
        (make_upload(make_claude_export()), ("claude_export", "json")),
        (make_upload(make_letta_af()), ("letta_agent_file", "json")),
        (make_upload(make_letta_legacy_af()), ("letta_agent_file", "json")),
        (Upload(make_zip({"conversations.json": to_json_bytes(make_claude_export())})), ("claude_export", "zip")),
    ],
)
def test_every_format_is_sniffed_from_the_bytes(upload: Upload, expected: tuple[str, str]) -> None:
    draft = import_upload(upload, LIMITS)
    assert (draft.format, draft.format_detail) == expected


def test_misleading_filename_and_content_type_are_ignored() -> None:
    upload = make_upload(make_card_v2(), filename="chat.zip", content_type="image/png")
    assert import_upload(upload, LIMITS).format == "character_card_v2"


def test_byte_order_mark_is_allowed() -> None:
    assert import_upload(Upload(b"\xef\xbb\xbf" + to_json_bytes(make_native())), LIMITS).format == "native"


def test_oversized_upload_is_refused_before_anything_else() -> None:
    limits = dataclasses.replace(LIMITS, max_upload_bytes=1024)
    error = fail(Upload(b"\x00" * 1025), limits)
    assert (type(error), error.code) == (LimitExceeded, "too_large")


def test_unknown_binary_format_lists_supported_formats() -> None:
    error = fail(Upload(b"\xff\xd8\xff\xe0 a jpeg " + CANARY.encode()))
    assert (type(error), error.code) == (UnsupportedFormat, "unknown_format")
    assert all(name in error.message for name in SUPPORTED_FORMATS)
    assert CANARY not in error.message


def test_unknown_json_shape() -> None:
    error = fail(make_upload({CANARY: CANARY}))
    assert (type(error), error.code) == (UnsupportedFormat, "unknown_format")
    assert CANARY not in error.message


@pytest.mark.parametrize(
    "text",
    [
        '{"persona_name": "' + CANARY,
        '{"persona_name": "' + CANARY + '",}',
        '{"persona_name": NaN}',
        '{"x": 1e999}',
        '{"x": ' + "9" * 5000 + "}",
        "[" * 100_000,
        '{"a": 1} {"b": 2}',
    ],
)
def test_malformed_json(text: str) -> None:
    error = fail(Upload(text.encode()))
    assert (type(error), error.code) == (MalformedInput, "malformed_json")
    assert CANARY not in error.message


def test_malformed_json_names_the_line() -> None:
    error = fail(Upload(b'{\n  "persona_name": "x",\n  oops\n}'))
    assert "line 3" in error.message


def test_invalid_utf8_names_the_offset() -> None:
    prefix = b'{"persona_name": "' + CANARY.encode()
    error = fail(Upload(prefix + b'\xff"}'))
    assert (type(error), error.code) == (MalformedInput, "invalid_utf8")
    assert f"offset {len(prefix)}" in error.message
    assert CANARY not in error.message


def test_deeply_nested_unknown_fields_are_refused() -> None:
    data = b'{"persona_name": "x", "system_prompt": "y", "deep": ' + b"[" * 900 + b"]" * 900 + b"}"
    error = fail(Upload(data))
    assert (type(error), error.code) == (LimitExceeded, "nested_too_deeply")


@pytest.mark.parametrize(
    "upload",
    [
        make_upload(make_native(persona_name=["x", CANARY])),
        make_upload(make_native(chat_history=[{"role": CANARY, "content": CANARY}])),
        make_upload(make_card_v2(character_book={"entries": [CANARY]})),
        make_upload([{"mapping": {CANARY: CANARY}, "current_node": CANARY}]),
        make_upload([{"chat_messages": [{"sender": "human", "content": CANARY}]}]),
        make_upload(make_letta_af(block_ids=[CANARY])),
        Upload(make_sillytavern_jsonl() + CANARY.encode() + b"\n"),
        Upload(make_zip({CANARY: CANARY.encode()})),
        Upload(make_card_png(make_card_v2())[:-5] + CANARY.encode()),
    ],
)
def test_errors_never_quote_the_upload(upload: Upload) -> None:
    error = fail(upload)
    assert CANARY not in str(error)
    assert CANARY not in error.message


# ---------------------------------------------------------------------------------------------------------------
# Fuzzing: whatever arrives, only FtmError subclasses come out.

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.sampled_from(["user", "assistant", "human", "text", "chara_card_v2", "send_message", "mapping"]),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=30,
)


def import_or_ftm_error(upload: Upload) -> None:
    with contextlib.suppress(FtmError):
        import_upload(upload, LIMITS)


@FUZZ
@given(data=st.binary(max_size=2048))
def test_random_bytes_raise_only_ftm_errors(data: bytes) -> None:
    import_or_ftm_error(Upload(data))


@FUZZ
@given(prefix=st.sampled_from([b"\x89PNG\r\n\x1a\n", b"PK\x03\x04", b"PK\x05\x06", b"{", b"["]), data=st.binary())
def test_random_bytes_behind_a_signature_raise_only_ftm_errors(prefix: bytes, data: bytes) -> None:
    import_or_ftm_error(Upload(prefix + data))


@FUZZ
@given(value=json_values)
def test_random_json_raises_only_ftm_errors(value: Any) -> None:
    import_or_ftm_error(make_upload(value))


SAMPLES: list[Callable[[], Any]] = [
    make_native,
    make_card_v1,
    make_card_v2,
    make_card_v3,
    make_chatgpt_export,
    make_claude_export,
    make_letta_af,
    make_letta_legacy_af,
]


def _locations(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(value, dict):
        for key, child in value.items():
            found += _locations(child, (*path, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += _locations(child, (*path, index))
    return found


@FUZZ
@given(sample=st.sampled_from(SAMPLES), pick=st.integers(min_value=0), replacement=json_values)
def test_samples_with_one_field_replaced_raise_only_ftm_errors(
    sample: Callable[[], Any], pick: int, replacement: Any
) -> None:
    value = copy.deepcopy(sample())
    locations = _locations(value)[1:]
    path = locations[pick % len(locations)]
    target = value
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = replacement
    import_or_ftm_error(make_upload(value))


@FUZZ
@given(lines=st.lists(json_values, max_size=6))
def test_random_json_lines_raise_only_ftm_errors(lines: list[Any]) -> None:
    data = make_sillytavern_jsonl() + b"\n".join(to_json_bytes(line) for line in lines)
    import_or_ftm_error(Upload(data, filename="chat.jsonl"))


BINARY_SAMPLES = [
    make_card_png(make_card_v2()),
    make_card_png(make_card_v3(), "ccv3", chunk="iTXt-compressed"),
    make_zip({"conversations.json": to_json_bytes(make_chatgpt_export())}),
]


@FUZZ
@given(
    sample=st.sampled_from(BINARY_SAMPLES),
    flips=st.lists(st.tuples(st.integers(min_value=0), st.integers(min_value=1, max_value=255)), max_size=4),
    cut=st.integers(min_value=0),
)
def test_damaged_png_and_zip_raise_only_ftm_errors(sample: bytes, flips: list[tuple[int, int]], cut: int) -> None:
    data = bytearray(sample)
    for position, mask in flips:
        data[position % len(data)] ^= mask
    if cut % 3 == 0:
        data = data[: cut % len(data)]
    import_or_ftm_error(Upload(bytes(data)))
