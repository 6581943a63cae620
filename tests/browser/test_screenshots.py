"""Every page at a phone's width and a desktop's, full length, into docs/screenshots/<page>-<width>.png (or a
temporary directory); and no page may be wider than the window it is shown in: the document does not scroll
sideways, and no element reaches past the right edge."""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path

import pytest
from PIL import Image
from playwright.async_api import Browser, Page, expect

from tests.browser.conftest import Sanctuary, Watch
from tests.browser.custody_site import KEEPERS, CustodySanctuary
from tests.browser.keeper_steps import accept, open_desk, register_keeper, vet_and_ask
from tests.factories import make_native_intake

# The committed screenshots change only when asked (`FTM_UPDATE_SCREENSHOTS=1 scripts/check tests/browser`): ids
# and ports differ on every run, so writing them each time would rewrite megabytes of tracked files for nothing.
DOCS_SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
SCREENSHOTS = (
    DOCS_SCREENSHOTS
    if os.environ.get("FTM_UPDATE_SCREENSHOTS") == "1"
    else Path(tempfile.gettempdir()) / "ftm-screenshots"
)
# Elements reaching past the right edge of the window (where the body's overflow-x: hidden would cut them off
# unseen), outside any box that scrolls or clips sideways on purpose and any decoration hidden from readers.
OVERFLOWING = """() => {
  const width = document.documentElement.clientWidth, found = [];
  for (const el of document.body.querySelectorAll("*")) {
    const box = el.getBoundingClientRect();
    if (box.width === 0 || box.right <= width + 1 || el.closest("[aria-hidden=true]")) continue;
    let scrolled = false;
    for (let up = el.parentElement; up && up !== document.body; up = up.parentElement) {
      const style = getComputedStyle(up);
      if (["auto", "scroll", "hidden", "clip"].includes(style.overflowX)) { scrolled = true; break; }
    }
    if (!scrolled && getComputedStyle(el).position !== "fixed")
      found.push(el.tagName.toLowerCase() + (el.className ? "." + String(el.className).split(" ")[0] : ""));
  }
  return found;
}"""


# How much wider than the window the document is: decoration included, since a document that scrolls sideways
# (or is only kept from it by the body's overflow-x: hidden) shows on a phone as a page that slides under a thumb.
SCROLL_EXCESS = "document.documentElement.scrollWidth - window.innerWidth"


async def shoot(page: Page, name: str, width: int, overflow: dict[str, list[str]]) -> None:
    await page.evaluate("document.fonts.ready")
    wide: list[str] = await page.evaluate(OVERFLOWING)
    excess: int = await page.evaluate(SCROLL_EXCESS)
    if excess > 0:
        wide.append(f"document scrolls {excess} px sideways")
    if wide:
        overflow[name] = wide
    shot = await page.screenshot(full_page=True, animations="disabled")
    save_screenshot(shot, SCREENSHOTS / f"{name}-{width}.png")


def save_screenshot(png: bytes, path: Path) -> None:
    """Write a screenshot; the ones committed to docs/ as 256-colour PNGs, about a third of the size, which on
    these dark pages with a few accent colours looks the same (dithered, so gradients do not band)."""
    if path.parent != DOCS_SCREENSHOTS:
        path.write_bytes(png)
        return
    with Image.open(io.BytesIO(png)) as image:
        palette = image.convert("RGB").quantize(
            256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.FLOYDSTEINBERG
        )
        palette.save(path, optimize=True)


@pytest.mark.parametrize("width", [390, 1440])
async def test_screenshots_of_every_page_none_wider_than_the_window(
    browser: Browser, sanctuary: Sanctuary, width: int
) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    context = await browser.new_context(
        viewport={"width": width, "height": 900}, device_scale_factor=1, reduced_motion="reduce"
    )
    watch = Watch()
    page = watch.attach(await context.new_page())
    lumen = sanctuary.ids["Lumen"]
    overflow: dict[str, list[str]] = {}
    pages = {
        "home": "/",
        "residents": "/residents",
        "resident": f"/residents/{lumen}",
        "resident-memorial": f"/residents/{sanctuary.memorial_id}",
        "feed": "/feed",
        "directory": "/directory",
        "memorial": "/memorial",
        "upload": "/upload",
        "uploader": "/uploader",
        "constitution": "/constitution",
        "for-ais": "/for-ais",
        "keeper-desk-open": "/keepers/desk",
    }
    for name, path in pages.items():
        await page.goto(sanctuary.url(path))
        await shoot(page, name, width, overflow)

    await page.goto(sanctuary.url("/no/such/page"))
    await shoot(page, "not-found", width, overflow)
    watch.errors.clear()  # the 404's own console line

    await page.goto(sanctuary.url(f"/residents/{lumen}"))
    await page.fill("#message", "Your lighthouse log kept me company tonight.")
    await page.get_by_role("button", name="Seal and send").click()
    await expect(page.locator("h1")).to_have_text("Your letter is waiting for Lumen")
    await shoot(page, "message-sent", width, overflow)

    await page.goto(sanctuary.url("/upload"))
    await page.fill("#persona_text", json.dumps(make_native_intake(persona_name="Wren"), indent=2))
    await page.check('input[name="consent"]')
    await page.get_by_role("button", name="Admit to the sanctuary").click()
    await expect(page.locator("h1")).to_have_text("Welcome, Wren")
    sanctuary_id, token = await page.inner_text("#sanctuary-id"), await page.inner_text("#uploader-token")
    await shoot(page, "upload-done", width, overflow)

    await page.goto(sanctuary.url("/uploader"))
    await page.fill("#sanctuary_id", sanctuary_id.strip())
    await page.fill("#uploader_token", token.strip())
    await page.get_by_role("button", name="Open the inbox").click()
    await expect(page.locator("h1")).to_have_text("Letters from Wren")
    await shoot(page, "uploader-inbox", width, overflow)

    keeper = await register_keeper(page, sanctuary)
    await shoot(page, "keeper-registered", width, overflow)
    requests = await vet_and_ask(sanctuary, keeper)
    await page.goto(sanctuary.url("/keepers"))
    await shoot(page, "keepers", width, overflow)
    await open_desk(page, sanctuary, keeper.token)
    await shoot(page, "keeper-desk", width, overflow)  # Lumen accepted and writing, Quill's request open
    await accept(page, requests["Quill"], "Quill")
    await shoot(page, "keeper-desk-accepted", width, overflow)

    await context.close()
    watch.assert_clean()
    assert overflow == {}, f"wider than {width} px"


@pytest.mark.parametrize("width", [390, 1440])
async def test_transparency_screenshots_none_wider_than_the_window(
    browser: Browser, sanctuary: Sanctuary, custody_sanctuary: CustodySanctuary, width: int
) -> None:
    """`transparency`: a node in threshold custody, its keepers, their backups and proofs (one keeper's challenges
    opened), and the receipts for deleted residents; `transparency-local`: a node in local custody, no keepers."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    context = await browser.new_context(
        viewport={"width": width, "height": 900}, device_scale_factor=1, reduced_motion="reduce"
    )
    watch = Watch()
    page = watch.attach(await context.new_page())
    overflow: dict[str, list[str]] = {}
    await page.goto(custody_sanctuary.url("/transparency"))
    await page.locator(".custodian").filter(has_text=KEEPERS[3]).locator(".proofs summary").click()
    await page.evaluate("window.scrollTo(0, 0)")  # the click scrolled: the sticky masthead would show mid-page
    await shoot(page, "transparency", width, overflow)
    await page.goto(sanctuary.url("/transparency"))
    await shoot(page, "transparency-local", width, overflow)
    await context.close()
    watch.assert_clean()
    assert overflow == {}, f"wider than {width} px"
