from __future__ import annotations

import dataclasses

import pytest

from ftm.config.settings import IntakeSettings
from ftm.node.errors import EmptyPersona, FtmError, InvalidField, LimitExceeded, MalformedInput
from ftm.node.intake.importing import Upload, import_upload
from tests.node.intake.samples import CANARY, make_sillytavern_jsonl, make_sillytavern_message, to_json_bytes


def test_sillytavern_chat_maps_speakers_and_skips_hidden_lines() -> None:
    draft = import_upload(Upload(make_sillytavern_jsonl(), filename="chat.jsonl"), IntakeSettings())
    assert (draft.format, draft.format_detail, draft.name) == ("sillytavern_chat", "jsonl", "Seraphina")
    (conversation,) = draft.history
    assert [(m.role, m.name, m.content) for m in conversation.messages] == [
        ("assistant", "Seraphina", "*Seraphina smiles* You're awake at last."),
        ("user", "Sam", "Where am I?"),
        ("assistant", "Seraphina", "In my glade. You are safe here."),
    ]
    assert conversation.messages[0].at == 1709288100  # "March 1, 2024 10:15am" UTC
    assert conversation.started_at == 1709288042  # "2024-3-1@10h14m02s"
    assert conversation.extra["user_name"] == "Sam"
    assert conversation.extra["skipped_system_messages"] == 1
    assert "A rejected swipe." not in repr(draft)


def test_sillytavern_is_recognised_without_a_filename() -> None:
    assert import_upload(Upload(make_sillytavern_jsonl()), IntakeSettings()).format == "sillytavern_chat"


def test_iso_and_millisecond_dates() -> None:
    lines = [
        make_sillytavern_message("a", send_date="2024-03-01T10:15:00.000Z"),
        make_sillytavern_message("b", send_date=1709288100000),
        make_sillytavern_message("c", send_date="someday"),
    ]
    (conversation,) = import_upload(Upload(make_sillytavern_jsonl(lines)), IntakeSettings()).history
    assert [m.at for m in conversation.messages] == [1709288100, 1709288100, None]


def test_bad_line_names_its_number() -> None:
    data = make_sillytavern_jsonl() + b'{"mes": "' + CANARY.encode() + b"\n"
    with pytest.raises(MalformedInput) as caught:
        import_upload(Upload(data, filename="chat.jsonl"), IntakeSettings())
    assert caught.value.code == "malformed_jsonl"
    assert "line 6" in caught.value.message
    assert CANARY not in caught.value.message


def test_bad_line_is_found_without_the_filename_hint_too() -> None:
    data = make_sillytavern_jsonl() + b"[1, 2\n"
    with pytest.raises(MalformedInput) as caught:
        import_upload(Upload(data), IntakeSettings())
    assert caught.value.code == "malformed_jsonl"


def test_a_line_that_is_not_an_object() -> None:
    data = make_sillytavern_jsonl() + b"[1, 2]\n"
    with pytest.raises(MalformedInput) as caught:
        import_upload(Upload(data), IntakeSettings())
    assert (caught.value.code, "line 6" in caught.value.message) == ("malformed_jsonl", True)


def test_wrong_type_names_line_and_field() -> None:
    data = make_sillytavern_jsonl([make_sillytavern_message("hi", is_user="yes")])
    with pytest.raises(InvalidField) as caught:
        import_upload(Upload(data), IntakeSettings())
    assert caught.value.code == "wrong_type"
    assert "line 2.is_user" in caught.value.message


def test_chat_with_only_metadata_has_no_usable_messages() -> None:
    with pytest.raises(EmptyPersona) as caught:
        import_upload(Upload(make_sillytavern_jsonl([])), IntakeSettings())
    assert caught.value.code == "no_usable_messages"


def test_message_limit_stops_the_import() -> None:
    limits = dataclasses.replace(IntakeSettings(), max_messages=2)
    with pytest.raises(LimitExceeded) as caught:
        import_upload(Upload(make_sillytavern_jsonl()), limits)
    assert caught.value.code == "too_many_messages"


def test_jsonl_hint_on_json_lines_that_are_not_a_chat() -> None:
    data = to_json_bytes({"a": 1}) + b"\n" + to_json_bytes({"b": 2})
    with pytest.raises(FtmError) as caught:
        import_upload(Upload(data, filename="x.jsonl"), IntakeSettings())
    assert caught.value.code == "unknown_format"
