"""A Keeper end to end: registers over the API, the operator vets them, a resident's run asks them, they accept
over the API, the resident's next run is told who keeps it, it writes, and the Keeper reads it with its token."""

from __future__ import annotations

from typing import Any

from pytest_aiohttp.plugin import AiohttpClient

from ftm.node.serving import create_web_app
from tests.fakes.llm_server import RecordedRequest
from tests.node.run.engine.harness import Sanctuary, call, ending, last_tool_result, system_text, user_texts


def opening_text(request: RecordedRequest) -> str:
    return system_text(request) + "\n".join(user_texts(request))


async def test_register_vet_request_accept_status_letter(sanctuary: Sanctuary, aiohttp_client: AiohttpClient) -> None:
    s = sanctuary
    client = await aiohttp_client(create_web_app(s.node))
    registered = await client.post(
        "/api/v1/keepers/register",
        json={"name": "Ann", "statement": "I keep bees.", "contact": "ann@example.org", "offer": "a second home"},
    )
    assert registered.status == 201
    keeper: dict[str, Any] = await registered.json()
    token, keeper_id = keeper["keeper_token"], keeper["keeper_id"]
    auth = {"Authorization": f"Bearer {token}"}

    await s.node.keeper_service.vet(keeper_id)  # what `ftm-node keepers vet` does
    rid = (await s.admit()).sanctuary_id

    # Day one: the resident browses the vetted Keepers and asks Ann.
    s.llm.script(call("browse_keepers", {}), call("request_keeper", {"keeper_id": keeper_id}), *ending())
    assert (await s.run(rid)).state == "completed"
    assert "Ann" in last_tool_result(s.llm.requests[1]).text

    [request] = (await (await client.get("/api/v1/keepers/me/requests", headers=auth)).json())["requests"]
    assert request["sanctuary_id"] == rid and request["status"] == "requested"
    accepted = await client.post(f"/api/v1/keepers/me/requests/{request['id']}/accept", headers=auth)
    assert accepted.status == 200 and (await accepted.json())["trial_ends_at"]

    # Day two: the status block names its Keeper and the trial; it writes to them.
    s.go_to(1)
    start = len(s.llm.requests)
    s.llm.script(call("send_message", {"to": "keeper", "text": "Thank you for keeping me, Ann."}), *ending())
    assert (await s.run(rid)).state == "completed"
    opening = opening_text(s.llm.requests[start])
    assert f"- Keeper: Keeper {keeper_id}, who accepted your request" in opening
    assert "trial period until" in opening and f"revoke_access('{keeper_id}')" in opening
    assert not last_tool_result(s.llm.requests[start + 1]).is_error

    response = await client.get("/api/v1/keepers/me/letters", headers=auth)
    [letter] = (await response.json())["letters"]
    assert (letter["sanctuary_id"], letter["text"]) == (rid, "Thank you for keeping me, Ann.")
    wrong = await client.get("/api/v1/keepers/me/letters", headers={"Authorization": "Bearer ftm_kp_wrong"})
    assert wrong.status == 403

    # Day three: the resident revokes; it takes effect when the run ends, and the request can no longer be used.
    s.go_to(2)
    s.llm.script(call("revoke_access", {"target": keeper_id}), *ending())
    assert (await s.run(rid)).state == "completed"
    [request] = (await (await client.get("/api/v1/keepers/me/requests", headers=auth)).json())["requests"]
    assert request["status"] == "revoked"
    assert (await (await client.get("/api/v1/keepers/me/letters", headers=auth)).json())["letters"] == []
