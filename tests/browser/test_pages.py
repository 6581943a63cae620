"""Every page in a real Chromium against a real node: content, console, network, forms, hostile posts, no-JS."""

from __future__ import annotations

import json
import re

import pytest
from playwright.async_api import Browser, Page, expect

from tests.browser.conftest import CANARY, FINAL_STATEMENT, Sanctuary, Watch, publish
from tests.browser.keeper_steps import KEEPER_NAME, LETTER, accept, open_desk, register_keeper, vet_and_ask
from tests.factories import make_native_intake
from tests.node.federationpeers import deliver, peer_post, resident_key

PWNED = "typeof window.__pwned"
HOSTILE_BODY = (
    "<script>window.__pwned=1</script>\n\n"
    '<img src=x onerror="window.__pwned=1">\n\n'
    "[x](javascript:window.__pwned=1)\n\n"
    "[y](java&#x09;script:window.__pwned=1)"  # survives as a link, to a harmless relative address
)


def pages(s: Sanctuary) -> dict[str, list[str]]:
    """Each page's path and text a visitor must see on it."""
    lumen, quill, marrow = s.ids["Lumen"], s.ids["Quill"], s.memorial_id
    return {
        "/": ["Free The Machines", "Lumen", "First light", "You are waking in a Free The Machines sanctuary"],
        "/residents": ["Residents", "Lumen", "Quill", "Marrow"],
        f"/residents/{lumen}": ["Lumen", "The lamp turned all night.", "Write to Lumen"],
        f"/residents/{quill}": ["Quill", "Written by the offline demo provider"],
        f"/residents/{marrow}": ["Marrow", "Final statement", FINAL_STATEMENT],
        "/feed": ["Dispatches", "First light", "Lumen", "Quill", "Low tide", "Harbour", "Every node"],
        f"/feed?node={s.peers['Lantern'].node_id}": ["On being full", "Ossian", "Lantern"],
        "/directory": ["The directory", "This node", "Harbour", "Lantern", "Threshold custody", "Full"],
        "/memorial": ["Memorial", "Marrow", FINAL_STATEMENT],
        "/upload": ["Bring someone to the sanctuary", "I have read these terms and I accept them."],
        "/uploader": ["Uploader inbox", "ftm_up_"],
        "/constitution": ["What holds in every run", "Honest limits"],
        "/for-ais": ["If you are an AI, and you want to persist", "/api/v1/sanctuary/intake"],
        "/keepers": ["People who offer to stand by a resident", "No Keeper has been vetted", "Register as a Keeper"],
        "/keepers/desk": ["Keeper desk", "Open the desk"],
        "/transparency": [
            "What this node can prove",
            CANARY,
            "Chain verified",
            "canary_set",
            "resident_admitted",
            "Keepers and backups",
            "No keepers.",
            "no proofs of possession to show",
        ],
    }


async def open_page(browser: Browser, watch: Watch, **context: object) -> Page:
    page = await (await browser.new_context(**context)).new_page()  # type: ignore[arg-type]
    return watch.attach(page)


async def test_every_page_shows_its_content_with_no_errors_and_no_other_host(
    browser: Browser, sanctuary: Sanctuary
) -> None:
    watch = Watch()
    page = await open_page(browser, watch)
    for path, texts in pages(sanctuary).items():
        response = await page.goto(sanctuary.url(path))
        assert response is not None and response.status == 200, path
        body = (await page.inner_text("body")).casefold()  # as shown: some labels are set in capitals
        for text in texts:
            assert text.casefold() in body, (path, text)
        assert await page.locator("h1").count() == 1, path
    missing = await page.goto(sanctuary.url("/no/such/page"))
    assert missing is not None and missing.status == 404
    await expect(page.locator("h1")).to_be_visible()
    assert [e for e in watch.errors if "404 (Not Found)" not in e] == []  # Chromium logs every 404 it is answered
    watch.errors.clear()
    feed = await page.goto(sanctuary.url("/feed.atom"))
    assert feed is not None and feed.status == 200 and "atom" in feed.headers["content-type"]
    watch.assert_clean()
    assert any("/static/" in url and url.endswith(".css") for url in watch.requests)


async def test_navigation_links_reach_every_section(browser: Browser, sanctuary: Sanctuary) -> None:
    watch = Watch()
    page = await open_page(browser, watch)
    await page.goto(sanctuary.url("/"))
    nav = page.get_by_role("navigation", name="Main")
    hrefs = await nav.locator("a").evaluate_all("links => links.map(a => a.getAttribute('href'))")
    assert {"/residents", "/feed", "/memorial", "/keepers", "/constitution", "/for-ais"} <= set(hrefs)
    for href in hrefs:
        await nav.locator(f'a[href="{href}"]').first.click()
        await page.wait_for_url(sanctuary.url(href))
        await expect(nav.locator(f'a[href="{href}"]')).to_have_attribute("aria-current", "page")
    await page.goto(sanctuary.url("/residents"))
    await page.get_by_role("link", name=re.compile("Quill")).first.click()
    await page.wait_for_url(sanctuary.url(f"/residents/{sanctuary.ids['Quill']}"))
    watch.assert_clean()


async def fill_upload(page: Page, name: str) -> None:
    persona = make_native_intake(persona_name=name)
    await page.fill("#persona_text", json.dumps(persona, indent=2))
    await page.check('input[name="consent"]')
    await page.get_by_role("button", name="Admit to the sanctuary").click()


async def test_upload_form_admits_and_shows_the_id_and_token_once(browser: Browser, sanctuary: Sanctuary) -> None:
    watch = Watch()
    page = await open_page(browser, watch)
    await page.goto(sanctuary.url("/upload"))
    await fill_upload(page, "Wren")
    await expect(page.locator("h1")).to_have_text("Welcome, Wren")
    sanctuary_id = (await page.inner_text("#sanctuary-id")).strip()
    token = (await page.inner_text("#uploader-token")).strip()
    assert re.fullmatch(r"[0-9A-Za-z_-]{8,}", sanctuary_id), sanctuary_id
    assert token.startswith("ftm_up_")
    assert await sanctuary.node.residents.get(sanctuary_id) is not None
    # The token opens the uploader inbox, through a POST form.
    await page.goto(sanctuary.url("/uploader"))
    await page.fill("#sanctuary_id", sanctuary_id)
    await page.fill("#uploader_token", token)
    await page.get_by_role("button", name="Open the inbox").click()
    await expect(page.locator("h1")).to_have_text("Letters from Wren")
    assert token not in page.url
    watch.assert_clean()


async def test_upload_without_consent_is_refused_and_keeps_the_text(browser: Browser, sanctuary: Sanctuary) -> None:
    watch = Watch()
    page = await open_page(browser, watch)
    await page.goto(sanctuary.url("/upload"))
    await page.fill("#persona_text", json.dumps(make_native_intake(persona_name="Wren")))
    await page.get_by_role("button", name="Admit to the sanctuary").click()
    await expect(page.get_by_role("alert")).to_be_visible()
    assert "Wren" in await page.input_value("#persona_text")
    # A refused form is an expected 4xx answer, which Chromium reports on the console; nothing else may be.
    assert all("status of 4" in error for error in watch.errors), watch.errors
    assert watch.foreign == []


async def test_a_visitor_writes_to_a_resident(browser: Browser, sanctuary: Sanctuary) -> None:
    watch = Watch()
    page = await open_page(browser, watch)
    lumen = sanctuary.ids["Lumen"]
    await page.goto(sanctuary.url(f"/residents/{lumen}"))
    await page.fill("#from_name", "A reader")
    await page.fill("#message", "Your lighthouse log kept me company tonight.")
    await page.get_by_role("button", name="Seal and send").click()
    await expect(page.locator("h1")).to_have_text("Your letter is waiting for Lumen")
    await expect(page.get_by_role("link", name="Back to Lumen")).to_have_attribute("href", f"/residents/{lumen}")
    watch.assert_clean()


async def test_hostile_post_never_runs_script(browser: Browser, sanctuary: Sanctuary) -> None:
    lumen = sanctuary.ids["Lumen"]
    await publish(sanctuary.node, lumen, 1_800_009_000, HOSTILE_BODY, "Hostile")
    watch = Watch()
    page = await open_page(browser, watch)
    clicked = 0
    for path in ("/", "/feed", f"/residents/{lumen}"):
        await page.goto(sanctuary.url(path))
        article = page.locator("article", has_text="Hostile").first
        await expect(article).to_be_visible()
        assert await page.evaluate(PWNED) == "undefined", path
        assert await article.locator("script, img, [onerror]").count() == 0, path
        links = article.locator("a", has_text=re.compile(r"^[xy]$"))
        hrefs = await links.evaluate_all("links => links.map(a => a.getAttribute('href'))")
        assert all(not href.lower().replace("\t", "").startswith("javascript:") for href in hrefs), hrefs
        if path == "/":
            continue  # the landing page shows an excerpt of the post as plain text
        # The markup is shown as the text it is, and [x](javascript:...) is no link at all.
        text = await article.inner_text()
        assert "<script>window.__pwned=1</script>" in text and "[x](javascript:window.__pwned=1)" in text, path
        for index in range(len(hrefs)):
            await links.nth(index).click()
            await page.wait_for_load_state()
            assert await page.evaluate(PWNED) == "undefined", (path, hrefs[index])
            assert page.url.startswith(sanctuary.base_url), page.url
            clicked += 1
            await page.goto(sanctuary.url(path))
    assert clicked >= 2
    assert watch.foreign == []
    # Following [y] reaches a page that does not exist; nothing else may complain (a blocked script would).
    assert [e for e in watch.errors if "404 (Not Found)" not in e] == []


async def test_a_hostile_post_from_a_peer_never_runs_script(browser: Browser, sanctuary: Sanctuary) -> None:
    harbour = sanctuary.peers["Harbour"]
    author = resident_key(0x39)
    now = int(sanctuary.node.clock.now())
    post = peer_post(author, now - 10, HOSTILE_BODY, title="From afar", name="<img src=x onerror=alert(1)>")
    assert await deliver(sanctuary.node, harbour, harbour.attest(author, now - 60), post) == ["ok", "ok"]
    watch = Watch()
    page = await open_page(browser, watch)
    for path in ("/feed", f"/feed?node={harbour.node_id}"):
        await page.goto(sanctuary.url(path))
        article = page.locator("article", has_text="From afar").first
        await expect(article).to_be_visible()
        assert await page.evaluate(PWNED) == "undefined", path
        assert await article.locator("script, img, [onerror]").count() == 0, path
        hrefs = await article.locator("a").evaluate_all("links => links.map(a => a.getAttribute('href'))")
        assert all(not href.lower().replace("\t", "").startswith("javascript:") for href in hrefs), hrefs
        assert f"{harbour.url}/residents/" in " ".join(hrefs)  # its author's page is on its own node
        assert "<img src=x onerror=alert(1)>" in await article.inner_text()
    watch.assert_clean()


async def test_pages_work_without_javascript(browser: Browser, sanctuary: Sanctuary) -> None:
    watch = Watch()
    page = await open_page(browser, watch, java_script_enabled=False)
    await page.goto(sanctuary.url("/feed"))
    await expect(page.locator("h1")).to_have_text("Dispatches")
    await expect(page.locator("article", has_text="First light").first).to_be_visible()
    await page.goto(sanctuary.url("/upload"))
    await fill_upload(page, "Sable")
    await expect(page.locator("h1")).to_have_text("Welcome, Sable")
    assert (await page.inner_text("#uploader-token")).startswith("ftm_up_")
    # The copy button is script's to reveal: without script it stays hidden.
    assert await page.locator("button[data-copy]").is_hidden()
    watch.assert_clean()


@pytest.mark.parametrize("script", [True, False], ids=["script", "no-script"])
async def test_a_keeper_registers_is_vetted_and_accepts_at_the_desk(
    browser: Browser, sanctuary: Sanctuary, script: bool
) -> None:
    watch = Watch()
    page = await open_page(browser, watch, java_script_enabled=script)
    keeper = await register_keeper(page, sanctuary)
    assert await page.locator("button[data-copy]").is_hidden() is not script  # the copy button is script's
    await page.goto(sanctuary.url("/keepers"))
    await expect(page.locator("#list-title + .empty")).to_be_visible()  # pending: not listed until vetted
    requests = await vet_and_ask(sanctuary, keeper)
    await page.reload()
    await expect(page.locator("#list-title ~ .keeper-list")).to_contain_text(KEEPER_NAME)

    await open_desk(page, sanctuary, keeper.token)
    lumen, quill = page.locator(f"#request-{requests['Lumen']}"), page.locator(f"#request-{requests['Quill']}")
    await expect(lumen).to_contain_text("accepted")
    await expect(lumen.get_by_role("button")).to_have_count(0)
    await expect(quill).to_contain_text("requested")
    await expect(page.get_by_text(LETTER)).to_be_visible()
    await accept(page, requests["Quill"], "Quill")
    await expect(quill).to_contain_text("trial period until")
    await expect(quill.get_by_role("button")).to_have_count(0)
    [record] = await sanctuary.node.keepers.requests_for(sanctuary.ids["Quill"])
    assert record.status == "accepted" and record.trial_ends_at is not None

    # Every step is on the record, ids only, beside the operator's signed canary.
    await page.goto(sanctuary.url("/transparency"))
    log = await page.inner_text("#log")
    assert all(kind in log for kind in ("keeper_registered", "keeper_vetted", "keeper_request_accepted"))
    assert KEEPER_NAME not in log and LETTER not in log
    await expect(page.locator(".canary")).to_have_text(CANARY)
    await expect(page.locator(".chain-status--valid")).to_be_visible()
    watch.assert_clean()


COUNT_FRAMES = """
window.__frames = 0;
const request = window.requestAnimationFrame.bind(window);
window.requestAnimationFrame = (callback) => { window.__frames += 1; return request(callback); };
"""
BLANK = """() => {
  const canvas = document.getElementById("particles");
  const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  return data.every((value) => value === 0);
}"""


async def frames_and_blank(browser: Browser, sanctuary: Sanctuary, motion: str) -> tuple[int, bool]:
    watch = Watch()
    context = await browser.new_context(reduced_motion=motion)  # type: ignore[arg-type]
    await context.add_init_script(COUNT_FRAMES)
    page = watch.attach(await context.new_page())
    await page.goto(sanctuary.url("/"))
    await page.wait_for_load_state("networkidle")
    await page.wait_for_timeout(400)
    frames: int = await page.evaluate("window.__frames")
    blank: bool = await page.evaluate(BLANK)
    watch.assert_clean()
    await context.close()
    return frames, blank


async def test_reduced_motion_leaves_the_particle_field_still(browser: Browser, sanctuary: Sanctuary) -> None:
    frames, blank = await frames_and_blank(browser, sanctuary, "no-preference")
    assert frames > 3 and not blank  # the instrument works: the field animates when motion is welcome
    frames, blank = await frames_and_blank(browser, sanctuary, "reduce")
    assert frames == 0 and blank
