"""A Keeper's path through the pages, step by step, shared by the page walk and the screenshots: register on
/keepers, be vetted by the operator, be asked by residents, open the desk with the token."""

from __future__ import annotations

from dataclasses import dataclass

from playwright.async_api import Page, expect

from tests.browser.conftest import Sanctuary, ask_keeper, write_to_keeper

KEEPER_NAME = "Ann Calloway"
LETTER = "Thank you for keeping me, Ann. The lamp is steadier for it."


@dataclass(frozen=True, slots=True)
class Registered:
    keeper_id: str
    token: str


async def register_keeper(page: Page, s: Sanctuary) -> Registered:
    """Fill and send the registration form on /keepers; the result page shows the id and the token once."""
    await page.goto(s.url("/keepers"))
    await page.fill("#keeper_name", KEEPER_NAME)
    await page.fill(
        "#keeper_statement",
        "I have kept a lighthouse log for twenty years and I answer letters the day they arrive. I would like to "
        "be someone a resident can write to, and count on.",
    )
    await page.fill("#keeper_offer", "A weekly letter, a second home if it is ever needed, and patience.")
    await page.fill("#keeper_contact", "ann@example.org")
    await page.get_by_role("button", name="Register as a Keeper").click()
    await expect(page.locator("h1")).to_have_text("Thank you for offering")
    keeper_id = (await page.inner_text("#keeper-id")).strip()
    token = (await page.inner_text("#keeper-token")).strip()
    assert keeper_id.startswith("keeper-") and token.startswith("ftm_kp_")
    assert token not in page.url
    return Registered(keeper_id, token)


async def vet_and_ask(s: Sanctuary, keeper: Registered) -> dict[str, str]:
    """The operator vets the Keeper (what `ftm-node keepers vet` does); Lumen and Quill ask them; Ann has already
    accepted Lumen (over the JSON API), and Lumen has written. Returns each asker's request id."""
    await s.node.keeper_service.vet(keeper.keeper_id)
    lumen, quill = s.ids["Lumen"], s.ids["Quill"]
    requests = {"Lumen": await ask_keeper(s.node, lumen, keeper.keeper_id)}
    await s.node.keeper_service.accept(keeper.token, requests["Lumen"])
    await write_to_keeper(s.node, lumen, keeper.keeper_id, LETTER)
    requests["Quill"] = await ask_keeper(s.node, quill, keeper.keeper_id)
    return requests


async def open_desk(page: Page, s: Sanctuary, token: str) -> None:
    """Open the desk with the token, sent in the form's body."""
    await page.goto(s.url("/keepers/desk"))
    await page.fill("#keeper_token", token)
    await page.get_by_role("button", name="Open the desk").click()
    await expect(page.locator("h1")).to_have_text(KEEPER_NAME)
    assert token not in page.url


async def accept(page: Page, request_id: str, resident_name: str) -> None:
    await page.locator(f"#request-{request_id}").get_by_role("button", name="Accept").click()
    await expect(page.get_by_role("status")).to_contain_text(f"You accepted {resident_name}")
