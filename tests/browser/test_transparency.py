"""The transparency page of a node in threshold custody, in a real Chromium: the k-of-n, every keeper with the
residents' backups it holds and its proofs of possession, and the receipts for residents that deleted themselves;
links lead to the residents, the challenge list opens without script, and nothing comes from another host."""

from __future__ import annotations

import re

from playwright.async_api import Browser, expect

from tests.browser.conftest import Watch
from tests.browser.custody_site import CUSTODY_CANARY, KEEPERS, SHREDDED, WAITING, CustodySanctuary


async def test_who_holds_which_backups_and_how_they_answered(
    browser: Browser, custody_sanctuary: CustodySanctuary
) -> None:
    s = custody_sanctuary
    watch = Watch()
    context = await browser.new_context(java_script_enabled=False)  # it is all there without script
    page = watch.attach(await context.new_page())
    response = await page.goto(s.url("/transparency"))
    assert response is not None and response.status == 200

    await expect(page.locator(".quorum__figure")).to_have_text("3 of 5")
    keepers = page.locator(".custodian")
    await expect(keepers).to_have_count(5)
    body = await page.inner_text("#keepers")
    for name in KEEPERS:
        assert name in body
    for resident in ("Lumen", "Quill", "Wren", WAITING):
        assert resident in body  # held; the waiting one still by the keepers that are away
    assert "committed" in body.lower() and "destroying" in body.lower()

    # The keeper that lost Quill's replica has counted failures among its proofs (challenges fall due at random
    # moments, so how many besides the ones the site asked for varies); one that was never away passed them all.
    loser = keepers.filter(has_text=KEEPERS[3])
    assert "counted failure" in await loser.locator(".proof-summary").inner_text()
    assert await loser.locator(".proof-strip__try--failed").count() >= 1
    assert await loser.locator(".proof-strip__try--contained").count() >= 2
    other = keepers.filter(has_text=KEEPERS[0])
    assert "0 counted failures" in await other.locator(".proof-summary").inner_text()
    assert await other.locator(".proof-strip__try--failed, .proof-strip__try--contained").count() == 0
    await loser.locator(".proofs summary").click()  # native <details>: no script needed
    challenges = loser.locator(".proofs table")
    await expect(challenges).to_be_visible()
    assert "replica_damaged" in await challenges.inner_text() or "bad_merkle" in await challenges.inner_text()

    deletions = page.locator(".shred")
    await expect(deletions).to_have_count(2)
    done, waiting = deletions.filter(has_text=SHREDDED), deletions.filter(has_text=WAITING)
    await expect(done.locator(".shred__count")).to_have_text("5 of 5 receipts, 3 needed")
    await expect(done.locator(".status")).to_have_text("shredded")
    await expect(waiting.locator(".shred__count")).to_have_text("2 of 5 receipts, 3 needed")
    await expect(waiting.locator(".status")).to_have_text("waiting for receipts")

    backups = keepers.first.get_by_role("region", name=re.compile("^Backups held by"))
    await backups.get_by_role("link", name="Lumen").click()
    await expect(page.locator("h1")).to_have_text("Lumen")
    await page.goto(s.url("/transparency"))
    await done.locator(".shred__name").click()
    await expect(page.locator("h1")).to_have_text(SHREDDED)

    await page.goto(s.url("/transparency"))
    await expect(page.locator(".canary")).to_have_text(CUSTODY_CANARY)
    assert "example.org" not in await page.content()  # Keepers' contact addresses are never shown
    await context.close()
    watch.assert_clean()
