"""The OpenAPI document names exactly the `/api/v1` routes the app serves, and is a valid OpenAPI 3.1 document."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient
from openapi_spec_validator import validate

from ftm.node.app import Node
from ftm.node.http.openapi import openapi_document
from ftm.node.intake.schema import intake_schema
from ftm.node.serving import create_web_app

Client = TestClient  # type: ignore[type-arg]
_IGNORED_METHODS = {"HEAD", "OPTIONS"}
_METHODS = {"get", "put", "post", "delete", "patch"}


def served_routes(node: Node) -> set[tuple[str, str]]:
    """(METHOD, path) of every `/api/v1` route; aiohttp's `{name}` placeholders are OpenAPI's syntax already."""
    routes = set()
    for route in create_web_app(node).router.routes():
        path = route.resource.canonical if route.resource is not None else ""
        if path.startswith("/api/v1/") and route.method not in _IGNORED_METHODS:
            routes.add((route.method, path))
    return routes


def documented_routes(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in document["paths"].items() for method in item if method in _METHODS}


async def test_the_document_names_every_route_and_no_other(client: Client, node: Node) -> None:
    response = await client.get("/api/v1/openapi.json")
    assert response.status == 200
    document = await response.json()
    served, documented = served_routes(node), documented_routes(document)
    undocumented, stale = sorted(served - documented), sorted(documented - served)
    assert not undocumented and not stale, f"undocumented routes: {undocumented}; stale in the document: {stale}"
    assert len(served) > 10  # the router walk found the real routes


async def test_the_document_is_valid_openapi(client: Client) -> None:
    document = await (await client.get("/api/v1/openapi.json")).json()
    validate(document)
    assert document["openapi"].startswith("3.1")


def test_intake_reuses_the_one_schema_and_every_error_is_the_shared_shape() -> None:
    document = openapi_document("1.2.3")
    assert document["components"]["schemas"]["Intake"] == intake_schema()
    intake = document["paths"]["/api/v1/sanctuary/intake"]["post"]
    assert intake["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Intake"}
    assert {"201", "400", "413", "415", "422", "429", "500"} <= set(intake["responses"])
    for name, response in document["components"]["responses"].items():
        assert response["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}, name
    assert document["info"]["version"] == "1.2.3"


async def test_documented_errors_really_have_the_shared_shape(client: Client) -> None:
    response = await client.get("/api/v1/residents/nobody")
    assert response.status == 404
    body = await response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
