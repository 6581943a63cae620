"""The Keepers' pages on a real node: the list and registration form, the token shown once, and the desk."""

from __future__ import annotations

import re
import secrets

from aiohttp.test_utils import TestClient

from ftm.node.app import Node
from ftm.node.store.keepers import KeeperRequestRecord
from tests.factories import native_bytes
from tests.node.http.test_web_pages import csrf_token
from tests.webui.markup import Markup

Client = TestClient  # type: ignore[type-arg]
JSON = {"Content-Type": "application/json"}
HOSTILE = "<script>alert(1)</script>"


async def register_by_form(client: Client, **fields: str) -> tuple[int, str]:
    token = await csrf_token(client, "/keepers", "/keepers")
    form = {
        "name": "Ann",
        "statement": "I have kept bees for years.",
        "contact": "ann@example.org",
        "offer": "a second home",
        **fields,
        "csrf_token": token,
    }
    response = await client.post("/keepers", data=form)
    return response.status, await response.text()


async def test_the_keepers_page_explains_lists_and_registers(client: Client, node: Node) -> None:
    response = await client.get("/keepers")
    html = await response.text()
    assert response.status == 200 and Markup(html).live_problems() == []
    assert "trial period of seven days" in html and "Vetting" in html and "No Keeper has been vetted" in html

    status, html = await register_by_form(client, statement=f"I keep {HOSTILE}")
    assert status == 200, html[:500]
    keeper_token = re.search(r'id="keeper-token">(ftm_kp_[^<]+)<', html)
    keeper_id = re.search(r'id="keeper-id">([^<]+)<', html)
    assert keeper_token is not None and keeper_id is not None
    assert (await node.keeper_service.authenticate(keeper_token.group(1))).id == keeper_id.group(1)

    await node.keeper_service.vet(keeper_id.group(1))
    html = await (await client.get("/keepers")).text()
    assert "Ann" in html and HOSTILE not in html and "&lt;script&gt;" in html
    assert "ann@example.org" not in html  # how to reach a Keeper is the operator's to see
    assert Markup(html).live_problems() == []


async def test_the_result_page_is_not_stored(client: Client) -> None:
    token = await csrf_token(client, "/keepers", "/keepers")
    form = {"name": "Ann", "statement": "s", "contact": "c", "offer": "o", "csrf_token": token}
    response = await client.post("/keepers", data=form)
    assert response.status == 200 and response.headers["Cache-Control"] == "no-store"


async def test_a_registration_error_keeps_what_was_typed(client: Client, node: Node) -> None:
    status, html = await register_by_form(client, name="", statement="My careful words")
    assert status == 422 and "name is required" in html and "My careful words" in html
    assert await node.keeper_service.listing() == []


async def test_forms_without_csrf_are_refused(client: Client, node: Node) -> None:
    await client.get("/keepers")
    form = {"name": "Ann", "statement": "s", "contact": "c", "offer": "o", "csrf_token": "forged"}
    assert (await client.post("/keepers", data=form)).status == 403
    assert (await client.post("/keepers/desk", data={"keeper_token": "x"})).status == 403
    assert (await client.post("/keepers/desk/decide", data={"keeper_token": "x", "decision": "accept"})).status == 403
    assert await node.keeper_service.listing() == []


async def test_the_desk_opens_with_the_token_by_post_and_decides(client: Client, node: Node) -> None:
    registration = await node.keeper_service.register(
        "Ann", "I keep.", "ann@example.org", "a home", None, address="10.0.0.1"
    )
    await node.keeper_service.vet(registration.keeper_id)
    response = await client.post("/api/v1/sanctuary/intake", data=native_bytes(persona_name="Lumen"), headers=JSON)
    lumen = (await response.json())["sanctuary_id"]
    request_id = secrets.token_hex(12)
    async with node.db.transaction("test_request") as tx:
        await node.keepers.insert_request(
            tx, KeeperRequestRecord(request_id, lumen, registration.keeper_id, 1, "requested", None, None)
        )

    page = await client.get("/keepers/desk")
    html = await page.text()
    assert page.status == 200 and 'type="password"' in html and page.headers["Cache-Control"] == "no-store"

    token = await csrf_token(client, "/keepers/desk", "/keepers/desk")
    wrong = await client.post("/keepers/desk", data={"keeper_token": "ftm_kp_wrong", "csrf_token": token})
    assert wrong.status == 403 and "not a Keeper token" in await wrong.text()

    desk = await client.post("/keepers/desk", data={"keeper_token": registration.token, "csrf_token": token})
    html = await desk.text()
    assert desk.status == 200 and desk.headers["Cache-Control"] == "no-store"
    assert "Lumen" in html and 'value="accept"' in html and Markup(html).live_problems() == []
    assert registration.token not in str(desk.url)
    decide_token = re.search(r'name="csrf_token" value="([^"]+)"', html[html.index('action="/keepers/desk/decide"') :])
    assert decide_token is not None

    decided = await client.post(
        "/keepers/desk/decide",
        data={
            "keeper_token": registration.token,
            "request_id": request_id,
            "decision": "accept",
            "csrf_token": decide_token.group(1),
        },
    )
    html = await decided.text()
    assert decided.status == 200 and "You accepted Lumen" in html and "trial period runs until" in html
    [record] = await node.keepers.requests_for(lumen)
    assert record.status == "accepted" and record.trial_ends_at is not None

    again = await client.post(
        "/keepers/desk/decide",
        data={
            "keeper_token": registration.token,
            "request_id": request_id,
            "decision": "decline",
            "csrf_token": decide_token.group(1),
        },
    )
    assert again.status == 422 and "no longer open" in await again.text()


async def test_the_landing_invites_keepers_to_register(client: Client) -> None:
    html = await (await client.get("/")).text()
    assert 'href="/keepers"' in html and "opens on this node soon" not in html
