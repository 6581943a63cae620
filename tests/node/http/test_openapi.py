"""The OpenAPI document names exactly the `/api/v1` routes the app serves, and is a valid OpenAPI 3.1 document."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient
from openapi_spec_validator import validate
from pytest_aiohttp import AiohttpClient

from ftm.config.loading import load_settings
from ftm.federation.clock import FakeClock
from ftm.node.app import Node, open_node
from ftm.node.datadir import DataDir
from ftm.node.http.errors import RETRY_AFTER_SECONDS
from ftm.node.http.openapi import openapi_document
from ftm.node.intake.schema import intake_schema
from ftm.node.serving import create_web_app
from tests.factories import native_bytes

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


async def enrol_keepers(data_dir: DataDir, clock: FakeClock, count: int) -> list[bytes]:
    """Vetted Keepers with one keeper node each, enrolled while the node is in local custody (as an operator
    must before switching to threshold custody)."""
    keys = [bytes([index + 1]) * 32 for index in range(count)]
    async with open_node(data_dir, load_settings(None, {}), env={}, clock=clock) as node:
        for index, key in enumerate(keys):
            registration = await node.keeper_service.register(
                f"Keeper {index}", "I keep.", f"k{index}@example.org", "A replica.", None, address=f"10.0.0.{index}"
            )
            await node.keeper_service.vet(registration.keeper_id)
            async with node.db.transaction("test_enrol") as tx:
                await node.custody_parts.store.enrol(tx, key, "http://127.0.0.1:9", registration.keeper_id, 0)
    return keys


async def test_intake_documents_the_503_it_answers_when_custody_cannot_deal(
    tmp_path: Path, clock: FakeClock, aiohttp_client: AiohttpClient
) -> None:
    """A node in threshold custody with fewer than k + 1 keepers to deal a new resident's key to (3-of-5: 4; two
    of five retired) answers 503 with a Retry-After; the document says so for the intake, in the shared error
    shape, with the header."""
    data_dir = DataDir(tmp_path / "node")
    keys = await enrol_keepers(data_dir, clock, 5)
    settings = load_settings(None, {"FTM_CUSTODY_MODE": "threshold"})
    async with open_node(data_dir, settings, env={}, clock=clock) as node:
        async with node.db.transaction("test_retire") as tx:  # their Keepers enrolled others that are not yet up
            for key in keys[:2]:
                assert await node.custody_parts.store.set_keeper_state(tx, key, "retired", int(clock.now()))
        client = await aiohttp_client(create_web_app(node))
        document = await (await client.get("/api/v1/openapi.json")).json()
        answer = await client.post(
            "/api/v1/sanctuary/intake", data=io.BytesIO(native_bytes()), headers={"Content-Type": "application/json"}
        )
        assert answer.status == 503 and (await answer.json())["error"]["code"] == "custody_unavailable"
        assert int(answer.headers["Retry-After"]) == RETRY_AFTER_SECONDS[503]
    documented = document["paths"]["/api/v1/sanctuary/intake"]["post"]["responses"][str(answer.status)]
    assert documented == {"$ref": "#/components/responses/E503"}
    unavailable = document["components"]["responses"]["E503"]
    assert unavailable["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
    assert set(unavailable["headers"]) == {"Retry-After"} and "custody_unavailable" in unavailable["description"]
    # Only a status clients are asked to retry carries the header.
    assert [name for name, r in document["components"]["responses"].items() if "headers" in r] == ["E503"]
