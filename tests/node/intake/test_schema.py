"""The intake JSON Schema agrees with the bodies the native importer accepts."""

from __future__ import annotations

import jsonschema
import pytest

from ftm.node.intake.schema import intake_schema
from tests.factories import make_native_intake


def test_the_schema_is_valid_json_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(intake_schema())


@pytest.mark.parametrize("submitted_by", ["human", "ai"])
def test_a_factory_body_validates(submitted_by: str) -> None:
    body = make_native_intake(submitted_by=submitted_by)
    body["chat_history"][0]["name"] = "Ada"
    body["chat_history"][0]["timestamp"] = "2025-01-02T03:04:05Z"
    body["memory"][0]["description"] = "who I am"
    jsonschema.Draft202012Validator(intake_schema()).validate(body)


@pytest.mark.parametrize(
    "overrides",
    [
        {"uploader_consent": False},
        {"uploader_consent": "true"},
        {"submitted_by": "robot"},
        {"chat_history": [{"role": "narrator", "content": "x"}]},
        {"memory": [{"value": "no label"}]},
    ],
)
def test_bodies_the_node_refuses_do_not_validate(overrides: dict[str, object]) -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(intake_schema()).validate(make_native_intake(**overrides))


def test_without_consent_or_name_the_body_does_not_validate() -> None:
    validator = jsonschema.Draft202012Validator(intake_schema())
    for field in ("uploader_consent", "persona_name"):
        body = make_native_intake()
        del body[field]
        assert not validator.is_valid(body), field


def test_every_field_is_described_for_its_reader() -> None:
    schema = intake_schema()
    assert schema["description"]
    assert all(prop.get("description") for prop in schema["properties"].values())
