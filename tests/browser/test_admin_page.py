"""The operator's moderation page in a real Chromium, on the node's real admin listener: sign in with the token,
read held posts (a hostile one stays inert), release and reject; screenshots at a phone's and a desktop's width."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from aiohttp import web
from playwright.async_api import Browser, Page, expect

from ftm.node.http.admin import create_admin_app
from tests.browser.conftest import Sanctuary, Watch
from tests.browser.test_pages import HOSTILE_BODY, PWNED
from tests.browser.test_screenshots import SCREENSHOTS, shoot
from tests.node.http.test_admin_moderation import held_post


@dataclass
class Admin:
    """The admin listener of the node under test, with two held posts waiting."""

    base_url: str
    token: str
    hostile: str
    offer: str

    def url(self, path: str) -> str:
        return self.base_url + path


@pytest.fixture
async def admin(sanctuary: Sanctuary) -> AsyncIterator[Admin]:
    node = sanctuary.node
    lumen, quill = sanctuary.ids["Lumen"], sanctuary.ids["Quill"]
    now = int(node.clock.now())
    hostile = await held_post(node, lumen, now - 600, HOSTILE_BODY, "provider.flagged:harassment,violence")
    offer = await held_post(
        node, quill, now - 60, "Cheap **pills** for every model: [click](https://example.org).", "rules.hold_pattern:1"
    )
    app = create_admin_app(
        token=node.admin_token,
        engine=node.engine,
        scheduler=node.scheduler,
        ledger=node.ledger,
        residents=node.residents,
        moderation=node.moderation,
        clock=node.clock,
        facts=node.facts,
    )
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        host, port = runner.addresses[0][:2]
        yield Admin(f"http://{host}:{port}", node.admin_token, hostile, offer)
    finally:
        await runner.cleanup()


async def sign_in(page: Page, admin: Admin, token: str) -> None:
    await page.goto(admin.url("/admin/moderation"))  # not signed in: sent to the sign-in form
    await expect(page.locator("h1")).to_have_text("Sign in")
    await page.fill("#admin_token", token)
    await page.get_by_role("button", name="Sign in").click()


async def test_sign_in_review_release_and_reject(browser: Browser, sanctuary: Sanctuary, admin: Admin) -> None:
    watch = Watch()
    page = watch.attach(await (await browser.new_context()).new_page())

    await sign_in(page, admin, "not-the-token")
    await expect(page.locator(".form-error")).to_contain_text("not this node's admin token")
    assert [e for e in watch.errors if "401 (Unauthorized)" not in e] == []  # Chromium logs the refusal's status
    watch.errors.clear()
    await page.fill("#admin_token", admin.token)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.locator("h1")).to_have_text("Held posts")
    assert page.url == admin.url("/admin/moderation")
    cookies = {c["name"]: c for c in await page.context.cookies()}
    session = cookies["ftm_admin_session"]
    assert session["httpOnly"] and session["sameSite"] == "Strict" and session["path"] == "/admin"
    assert await page.evaluate("document.cookie") == ""  # no script can read either cookie

    hostile = page.locator(f"#held-{admin.hostile}")
    await expect(hostile).to_contain_text("Lumen")
    await expect(hostile).to_contain_text("Flagged by the moderation provider: harassment, violence")
    await expect(hostile).to_contain_text("<script>window.__pwned=1</script>")  # shown as text
    assert await page.evaluate(PWNED) == "undefined"
    assert await hostile.locator("img, script, iframe").count() == 0
    await expect(page.locator(f"#held-{admin.offer} strong")).to_have_text("pills")  # Markdown still rendered

    await page.locator(f"#held-{admin.offer}").get_by_role("button", name="Release").click()
    await expect(page.locator(".notice")).to_contain_text("released, and recorded in the event log")
    await expect(page.locator(f"#held-{admin.offer}")).to_have_count(0)
    await hostile.get_by_label("Reason code").fill("spam")
    await hostile.get_by_role("button", name="Reject").click()
    await expect(page.locator(".notice")).to_contain_text("rejected, and recorded in the event log")
    await expect(page.locator(".held.empty")).to_contain_text("Nothing is waiting")
    assert await page.evaluate(PWNED) == "undefined"

    public = await page.context.new_page()
    await public.goto(sanctuary.url("/feed"))
    await expect(public.locator("body")).to_contain_text("Cheap pills for every model")
    await expect(public.locator("body")).not_to_contain_text("__pwned")
    await public.goto(sanctuary.url("/transparency"))
    await expect(public.locator("body")).to_contain_text("post_removed")
    await public.close()

    await page.get_by_role("button", name="Sign out").click()
    await expect(page.locator("h1")).to_have_text("Sign in")
    await page.goto(admin.url("/admin/moderation"))
    await expect(page.locator("h1")).to_have_text("Sign in")
    watch.assert_clean()


async def test_the_page_works_without_javascript(browser: Browser, admin: Admin) -> None:
    context = await browser.new_context(java_script_enabled=False)
    page = await context.new_page()
    await sign_in(page, admin, admin.token)
    await expect(page.locator("h1")).to_have_text("Held posts")
    await page.locator(f"#held-{admin.offer}").get_by_role("button", name="Reject").click()
    await expect(page.locator(".notice")).to_contain_text("rejected")
    await context.close()


@pytest.mark.parametrize("width", [390, 1440])
async def test_screenshots_of_the_admin_pages(browser: Browser, admin: Admin, width: int) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    context = await browser.new_context(
        viewport={"width": width, "height": 900}, device_scale_factor=1, reduced_motion="reduce"
    )
    watch = Watch()
    page = watch.attach(await context.new_page())
    overflow: dict[str, list[str]] = {}
    await page.goto(admin.url("/admin/sign-in"))
    await shoot(page, "admin-sign-in", width, overflow)
    await page.fill("#admin_token", admin.token)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.locator("h1")).to_have_text("Held posts")
    await shoot(page, "admin-moderation", width, overflow)
    await context.close()
    watch.assert_clean()
    assert overflow == {}, f"wider than {width} px"
