"""The Keepers' pages over a fake sanctuary: hostile words escaped, the token once and uncached, the desk by POST."""

from __future__ import annotations

from aiohttp.test_utils import TestClient

from ftm.webui.sanctuary import KeeperCard, KeeperRequestView
from tests.webui.fakes import HOSTILE, KEEPER_TOKEN, NOW, FakeSanctuary
from tests.webui.markup import Markup
from tests.webui.test_forms import csrf_token

Client = TestClient  # type: ignore[type-arg]


async def test_vetted_keepers_words_are_escaped(web_client: Client, sanctuary: FakeSanctuary) -> None:
    sanctuary.keeper_cards.append(KeeperCard("keeper-0001", HOSTILE, HOSTILE, HOSTILE, NOW))
    response = await web_client.get("/keepers")
    html = await response.text()
    assert response.status == 200 and HOSTILE not in html and "&lt;script&gt;" in html
    assert Markup(html).live_problems() == []


async def test_registering_shows_the_token_once_without_caching(web_client: Client, sanctuary: FakeSanctuary) -> None:
    token = await csrf_token(web_client, "/keepers", "/keepers")
    form = {"name": "Ann", "statement": "s", "contact": "c", "offer": "o", "node_key": "", "csrf_token": token}
    response = await web_client.post("/keepers", data=form)
    html = await response.text()
    assert response.status == 200 and html.count(KEEPER_TOKEN) == 1
    assert response.headers["Cache-Control"] == "no-store"
    assert sanctuary.keeper_registrations[0].contact == "c"


async def test_the_desk_never_puts_the_token_in_a_url(web_client: Client, sanctuary: FakeSanctuary) -> None:
    sanctuary.keeper_requests.append(KeeperRequestView("r1", "lumen0000000000000000", "Lumen", "requested", NOW, None))
    token = await csrf_token(web_client, "/keepers/desk", "/keepers/desk")
    response = await web_client.post("/keepers/desk", data={"keeper_token": KEEPER_TOKEN, "csrf_token": token})
    html = await response.text()
    assert response.status == 200 and response.headers["Cache-Control"] == "no-store"
    assert 'method="post" action="/keepers/desk/decide"' in html and KEEPER_TOKEN not in str(response.url)
    assert "?" not in html.split('action="/keepers/desk/decide"')[0].rsplit("<form", 1)[-1]
    assert Markup(html).live_problems() == []
