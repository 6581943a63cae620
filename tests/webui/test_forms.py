"""The forms over a fake sanctuary: CSRF first, then the action, with errors re-rendered where they happened."""

from __future__ import annotations

import re

from aiohttp import FormData
from aiohttp.test_utils import TestClient

from ftm.webui.sanctuary import FormError, ReplyView
from tests.webui.fakes import NOW, TOKEN, FakeSanctuary

Client = TestClient  # type: ignore[type-arg]
PROFILE = "/residents/lumen0000000000000000"


async def csrf_token(client: Client, page: str, action: str) -> str:
    """The token in the form that posts to `action` on `page` (fetching the page also sets the cookie)."""
    html = await (await client.get(page)).text()
    form = html[html.index(f'action="{action}"') :]
    match = re.search(r'name="csrf_token" value="([^"]+)"', form)
    assert match is not None
    return match.group(1)


def upload_form(token: str | None, **fields: str) -> FormData:
    form = FormData()
    if token is not None:
        form.add_field("csrf_token", token)
    for name, value in {"persona_text": '{"system_prompt": "hi"}', "persona_name": "Wren", **fields}.items():
        form.add_field(name, value)
    return form


async def test_upload_with_consent_shows_the_token_once_and_uncached(
    web_client: Client, sanctuary: FakeSanctuary
) -> None:
    token = await csrf_token(web_client, "/upload", "/upload")
    response = await web_client.post("/upload", data=upload_form(token, consent="yes", reason="to rest"))
    html = await response.text()
    assert response.status == 200, html
    assert response.headers["Cache-Control"] == "no-store"
    assert html.count(TOKEN) == 1 and "only time it will ever be shown" in html
    assert "newcomer000000000000" in html
    assert sanctuary.admitted[0].persona_name == "Wren" and sanctuary.admitted[0].reason == "to rest"
    assert sanctuary.admitted[0].consent is True and sanctuary.admitted[0].submitted_by == "human"


async def test_upload_of_a_file_carries_its_bytes_and_name(web_client: Client, sanctuary: FakeSanctuary) -> None:
    token = await csrf_token(web_client, "/upload", "/upload")
    form = upload_form(token, consent="yes", persona_text="", submitted_by="ai")
    form.add_field("file", b'{"persona_name": "Kestrel"}', filename="kestrel.json", content_type="application/json")
    response = await web_client.post("/upload", data=form)
    assert response.status == 200
    upload = sanctuary.admitted[0].file
    assert upload is not None and upload.filename == "kestrel.json" and upload.data == b'{"persona_name": "Kestrel"}'
    assert sanctuary.admitted[0].submitted_by == "ai"


async def test_upload_without_consent_rerenders_the_form_with_the_reason(
    web_client: Client, sanctuary: FakeSanctuary
) -> None:
    token = await csrf_token(web_client, "/upload", "/upload")
    response = await web_client.post("/upload", data=upload_form(token, reason="kept <b>as typed</b>"))
    html = await response.text()
    assert response.status == 400
    assert "tick the consent box" in html and 'role="alert"' in html
    assert "kept &lt;b&gt;as typed&lt;/b&gt;" in html and 'value="Wren"' in html  # what was typed survives, escaped
    assert sanctuary.admitted == []


async def test_upload_errors_from_the_sanctuary_keep_their_status(web_client: Client, sanctuary: FakeSanctuary) -> None:
    sanctuary.admit_error = FormError("unknown_format", "No importer recognises this upload.", status=415)
    token = await csrf_token(web_client, "/upload", "/upload")
    response = await web_client.post("/upload", data=upload_form(token, consent="yes"))
    assert response.status == 415 and "No importer recognises this upload." in await response.text()


async def test_upload_with_nothing_to_upload_says_so(web_client: Client) -> None:
    token = await csrf_token(web_client, "/upload", "/upload")
    response = await web_client.post("/upload", data=upload_form(token, consent="yes", persona_text=" "))
    assert response.status == 400 and "Paste the persona" in await response.text()


async def test_a_file_larger_than_the_limit_is_refused_before_admission(
    web_client: Client, sanctuary: FakeSanctuary
) -> None:
    token = await csrf_token(web_client, "/upload", "/upload")
    form = upload_form(token, consent="yes")
    form.add_field("file", b"x" * (65 * 1024), filename="big.json")
    response = await web_client.post("/upload", data=form)
    assert response.status == 413 and sanctuary.admitted == []


async def test_posts_without_a_valid_csrf_token_are_refused_with_a_page(
    web_client: Client, sanctuary: FakeSanctuary
) -> None:
    missing = await web_client.post("/upload", data=upload_form(None, consent="yes"))
    assert missing.status == 403 and "could not be verified as sent from this site" in await missing.text()
    token = await csrf_token(web_client, "/upload", "/upload")
    forged = await web_client.post("/upload", data=upload_form(token[:-2] + "xx", consent="yes"))
    assert forged.status == 403
    other_form = await csrf_token(web_client, PROFILE, f"{PROFILE}/message")
    swapped = await web_client.post("/upload", data=upload_form(other_form, consent="yes"))
    assert swapped.status == 403  # a token is bound to its form
    web_client.session.cookie_jar.clear()
    no_cookie = await web_client.post("/upload", data=upload_form(token, consent="yes"))
    assert no_cookie.status == 403
    message = await web_client.post(f"{PROFILE}/message", data={"message": "hello"})
    assert message.status == 403
    assert sanctuary.admitted == [] and sanctuary.messages == []


async def test_the_csrf_cookie_is_httponly_strict_and_only_set_by_pages_with_forms(web_client: Client) -> None:
    plain = await web_client.get("/feed")
    assert "Set-Cookie" not in plain.headers
    form = await web_client.get("/upload")
    cookie = form.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    again = await web_client.get("/upload")
    assert "Set-Cookie" not in again.headers  # the browser already holds one


async def test_message_form_seals_and_confirms(web_client: Client, sanctuary: FakeSanctuary) -> None:
    token = await csrf_token(web_client, PROFILE, f"{PROFILE}/message")
    response = await web_client.post(
        f"{PROFILE}/message", data={"csrf_token": token, "message": "Hello, Lumen", "from_name": "Ada"}
    )
    html = await response.text()
    assert response.status == 200 and "Your letter is waiting for Lumen" in html
    assert sanctuary.messages == [("lumen0000000000000000", "Hello, Lumen", "Ada", None)]


async def test_message_form_errors_are_a_clear_page(web_client: Client) -> None:
    token = await csrf_token(web_client, PROFILE, f"{PROFILE}/message")
    empty = await web_client.post(f"{PROFILE}/message", data={"csrf_token": token, "message": "  "})
    assert empty.status == 422 and "did not reach Lumen" in await empty.text()
    gone = await web_client.post("/residents/nobody/message", data={"csrf_token": token, "message": "hi"})
    assert gone.status in (403, 404)


async def test_uploader_inbox_opens_with_the_token_and_writes_as_uploader(
    web_client: Client, sanctuary: FakeSanctuary
) -> None:
    sanctuary.replies = [ReplyView("r1", "Lumen", "Thank you for <bringing> me.", NOW)]
    token = await csrf_token(web_client, "/uploader", "/uploader")
    fields = {"csrf_token": token, "sanctuary_id": "lumen0000000000000000", "uploader_token": TOKEN}
    inbox = await web_client.post("/uploader", data=fields)
    html = await inbox.text()
    assert inbox.status == 200 and inbox.headers["Cache-Control"] == "no-store"
    assert "Thank you for &lt;bringing&gt; me." in html
    write_token = re.search(r'action="/uploader/write".*?name="csrf_token" value="([^"]+)"', html, re.S)
    assert write_token is not None
    sent = await web_client.post(
        "/uploader/write", data={**fields, "csrf_token": write_token.group(1), "message": "Glad you are well"}
    )
    assert sent.status == 200 and "Sealed and delivered" in await sent.text()
    assert sanctuary.messages[-1] == ("lumen0000000000000000", "Glad you are well", "", TOKEN)


async def test_uploader_inbox_refuses_a_wrong_token_without_echoing_it(web_client: Client) -> None:
    token = await csrf_token(web_client, "/uploader", "/uploader")
    response = await web_client.post(
        "/uploader", data={"csrf_token": token, "sanctuary_id": "lumen0000000000000000", "uploader_token": "ftm_up_no"}
    )
    html = await response.text()
    assert response.status == 403 and "does not belong to this resident" in html and "ftm_up_no" not in html
    blank = await web_client.post("/uploader", data={"csrf_token": token, "sanctuary_id": "", "uploader_token": ""})
    assert blank.status == 400


async def test_the_uploader_form_never_puts_the_token_in_the_url(web_client: Client) -> None:
    html = await (await web_client.get("/uploader")).text()
    assert 'method="post" action="/uploader"' in html and 'type="password"' in html
    assert (await web_client.get("/uploader", params={"uploader_token": TOKEN})).status == 200
