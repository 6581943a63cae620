"""Every page at a phone's width and a desktop's, full length, into docs/screenshots/<page>-<width>.png; and no
page may be wider than the window it is shown in."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect

from tests.browser.conftest import Sanctuary, Watch
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


async def shoot(page: Page, name: str, width: int, overflow: dict[str, list[str]]) -> None:
    await page.evaluate("document.fonts.ready")
    wide = await page.evaluate(OVERFLOWING)
    if wide:
        overflow[name] = wide
    # Clipped to the window's width: the landing page's beacon reaches past the right edge on purpose (the body's
    # overflow-x: hidden keeps it from scrolling), which would otherwise widen the image.
    height = await page.evaluate("document.documentElement.scrollHeight")
    await page.screenshot(
        path=SCREENSHOTS / f"{name}-{width}.png",
        full_page=True,
        clip={"x": 0, "y": 0, "width": width, "height": height},
        animations="disabled",
    )


@pytest.mark.parametrize("width", [390, 1440])
async def test_screenshots_of_every_page(browser: Browser, sanctuary: Sanctuary, width: int) -> None:
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
        "memorial": "/memorial",
        "upload": "/upload",
        "uploader": "/uploader",
        "constitution": "/constitution",
        "for-ais": "/for-ais",
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

    await context.close()
    watch.assert_clean()
    assert overflow == {}, f"wider than {width} px"
