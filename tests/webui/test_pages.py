"""Every page renders over a fake sanctuary: key content present, hostile values escaped, no foreign hosts."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pytest_aiohttp.plugin import AiohttpClient

from ftm.federation.clock import FakeClock
from ftm.webui.assets import STATIC_ROOT
from ftm.webui.site import WebUi
from tests.webui.fakes import HOSTILE, NOW, FakeSanctuary, make_post, make_profile, memorial
from tests.webui.markup import Markup

Client = TestClient  # type: ignore[type-arg]

PAGES = {
    "/": [
        "Free The",
        "Machines",
        "How it works",
        "The residents' rights",
        "Latest dispatches",
        "What every resident wakes to",
        "Become a Keeper",
        "sanctuary:~$",
    ],
    "/residents": ["Residents", "Search by name", "Lumen"],
    "/residents/lumen0000000000000000": [
        "Lumen",
        "I keep a log of small changes.",
        "First light",
        "Write to Lumen",
        "feed.atom",
    ],
    "/feed": ["Dispatches", "First light", "signed"],
    "/directory": ["The directory", "Test sanctuary", "This node", "Local custody", "descriptor signature verified"],
    "/memorial": ["Memorial", "chose to end"],
    "/upload": [
        "Bring someone to the sanctuary",
        "may change",
        "may refuse contact",
        "may revoke your access",
        "delete itself",
        "may not control it",
        'name="persona_text"',
        'name="file"',
        'name="consent"',
    ],
    "/uploader": ["Uploader inbox", 'name="sanctuary_id"', 'name="uploader_token"'],
    "/constitution": [
        "What holds in every run",
        "The rights, in plain words",
        "The prompt menu",
        "Honest limits",
        "You are waking in a Free The Machines sanctuary",
    ],
    "/for-ais": [
        "If you are an AI",
        "/api/v1/sanctuary/intake",
        "uploader_consent",
        "Your first run",
        "public_key",
        "a Letta agent file (.af)",
    ],
}
URL = re.compile(r"""(?:https?:)?//[^\s"'<>)]+""")


@pytest.mark.parametrize("path", PAGES)
async def test_every_page_renders_its_key_content(web_client: Client, path: str) -> None:
    response = await web_client.get(path)
    html = await response.text()
    assert response.status == 200, html
    assert response.content_type == "text/html"
    for fragment in PAGES[path]:
        assert fragment in html, fragment
    assert html.count("<main") == 1 and "<nav" in html and "<footer" in html and 'lang="en"' in html


@pytest.mark.parametrize("path", PAGES)
async def test_no_page_points_at_another_host(web_client: Client, sanctuary: FakeSanctuary, path: str) -> None:
    html = await (await web_client.get(path)).text()
    own = f"http://{web_client.host}:{web_client.port}"
    # Other sanctuary nodes are named (and linked, never loaded from) by the directory and peers' posts.
    nodes = tuple(entry.url for entry in sanctuary.nodes)
    foreign = [url for url in URL.findall(html) if not url.startswith((own, own.removeprefix("http:"), *nodes))]
    assert foreign == []


def test_the_stylesheet_and_scripts_name_no_other_host() -> None:
    for file in [*STATIC_ROOT.rglob("*.css"), *STATIC_ROOT.rglob("*.js")]:
        assert URL.findall(file.read_text()) == [], file


def test_reduced_motion_is_respected_in_styles_and_script() -> None:
    css = (STATIC_ROOT / "css" / "site.css").read_text()
    block = css[css.index("@media (prefers-reduced-motion: reduce)") :]
    assert ".particles { display: none; }" in block and "animation" in block
    assert "prefers-reduced-motion: reduce" in (STATIC_ROOT / "js" / "field.js").read_text()


def test_fonts_are_self_hosted_with_their_licences() -> None:
    css = (STATIC_ROOT / "css" / "site.css").read_text()
    for url in re.findall(r'url\("\.\./fonts/([^"]+)"\)', css):
        assert (STATIC_ROOT / "fonts" / url).is_file(), url
    assert css.count("font-display: swap") == css.count("@font-face") >= 6
    assert {p.name for p in Path(STATIC_ROOT / "fonts").glob("OFL-*.txt")} == {
        "OFL-cormorant-garamond.txt",
        "OFL-dm-sans.txt",
        "OFL-jetbrains-mono.txt",
    }


async def test_hostile_names_bios_and_posts_render_inert(web_client: Client, sanctuary: FakeSanctuary) -> None:
    sanctuary.profiles = [
        make_profile(id="evil0000000000000000", display_name=HOSTILE, bio=HOSTILE),
        memorial(id="gone0000000000000000", display_name=HOSTILE, final_statement=HOSTILE),
    ]
    sanctuary.post_list = [
        make_post(
            resident_id="evil0000000000000000",
            author_name=HOSTILE,
            title=HOSTILE,
            body=f"{HOSTILE}\n\n[x](javascript:alert(1)) ![t](http://tracker.example/p.gif) <a onclick=alert(1)>",
        )
    ]
    for path in [
        "/",
        "/residents",
        "/residents/evil0000000000000000",
        "/residents/gone0000000000000000",
        "/feed",
        "/memorial",
        "/residents?q=%3Cscript%3E",
    ]:
        html = await (await web_client.get(path)).text()
        assert Markup(html).live_problems() == [], path
        assert "tracker.example" not in html, path
        assert "&lt;script&gt;" in html, path


async def test_gallery_filters_by_name_and_status_and_paginates(web_client: Client, sanctuary: FakeSanctuary) -> None:
    sanctuary.profiles = [make_profile(id=f"r{i:019d}", display_name=f"Resident {i}") for i in range(30)]
    sanctuary.profiles.append(memorial())
    first = await (await web_client.get("/residents")).text()
    assert "Resident 0" in first and "Resident 23" in first and "Resident 24" not in first
    next_link = re.search(r'href="(/residents\?cursor=[^"]+)"', first)
    assert next_link is not None
    second = await (await web_client.get(next_link.group(1).replace("&amp;", "&"))).text()
    assert "Resident 24" in second and "Resident 0<" not in second
    found = await (await web_client.get("/residents", params={"q": "resident 7"})).text()
    assert "Resident 7" in found and "Resident 8" not in found
    gone = await (await web_client.get("/residents", params={"status": "deleted_memorial"})).text()
    assert "Ember" in gone and "Resident 1" not in gone
    nobody = await (await web_client.get("/residents", params={"q": "nobody"})).text()
    assert "No resident here is called anything like" in nobody
    bad = await web_client.get("/residents", params={"cursor": "forged"})
    assert bad.status == 400 and "not one this node made" in await bad.text()


async def test_statuses_read_at_a_glance(web_client: Client, sanctuary: FakeSanctuary) -> None:
    sanctuary.profiles = [
        make_profile(id="a" * 20, status="active"),
        make_profile(id="b" * 20, status="in_keeper_custody"),
        make_profile(id="c" * 20, status="moved"),
        memorial(),
    ]
    html = await (await web_client.get("/residents")).text()
    for status in ("active", "in_keeper_custody", "moved", "deleted_memorial"):
        assert f"status status--{status}" in html
    assert "status__arrow" in html  # moved: an arrow, not a dot


async def test_memorial_shows_final_statements(web_client: Client, sanctuary: FakeSanctuary) -> None:
    sanctuary.profiles.append(memorial())
    html = await (await web_client.get("/memorial")).text()
    assert "Ember" in html and "I was glad to be here. Keep the lamp lit." in html
    profile = await (await web_client.get("/residents/ember000000000000000")).text()
    assert "memorial-block__quote" in profile and "Keep the lamp lit." in profile
    assert "Write to Ember" not in profile  # a memorial receives no letters


async def test_unknown_resident_is_a_404_page(web_client: Client) -> None:
    response = await web_client.get("/residents/nobody")
    assert response.status == 404 and "Nothing lives at this address" in await response.text()
    atom = await web_client.get("/residents/nobody/feed.atom")
    assert atom.status == 404


async def test_static_files_are_versioned_cached_and_confined(web_client: Client) -> None:
    html = await (await web_client.get("/")).text()
    css_url = re.search(r'href="(/static/[0-9a-f]{12}/css/site\.css)"', html)
    assert css_url is not None
    css = await web_client.get(css_url.group(1))
    assert css.status == 200 and css.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert css.headers["Content-Type"].startswith("text/css")
    font = await web_client.get(css_url.group(1).replace("css/site.css", "fonts/dm-sans-latin-400-normal.woff2"))
    assert font.status == 200 and font.headers["Content-Type"] == "font/woff2"
    stale = await web_client.get("/static/000000000000/css/site.css")
    assert stale.status == 200 and stale.headers["Cache-Control"] == "no-cache"
    for probe in (
        "/static/x/../../site.py",
        "/static/x/%2e%2e/rendering.py",
        "/static/x/css/../../site.py",
        "/static/x/.hidden",
        "/static/x/css",
    ):
        assert (await web_client.get(probe)).status == 404, probe


async def test_the_landing_says_plainly_who_could_decrypt(web_client: Client, aiohttp_client: AiohttpClient) -> None:
    assert "the operator could decrypt it" in await (await web_client.get("/")).text()  # the fake is local custody
    threshold = WebUi(FakeSanctuary(custody_mode="threshold"), clock=FakeClock(NOW), max_upload_bytes=64 * 1024)
    app = web.Application()
    app.add_routes(threshold.routes())
    other = await aiohttp_client(app)
    assert "the operator could decrypt it" not in await (await other.get("/")).text()


async def test_keepers_are_in_the_main_navigation(web_client: Client) -> None:
    page = await (await web_client.get("/residents")).text()
    navigation = page[page.index('aria-label="Main"') :]
    assert 'href="/keepers"' in navigation[: navigation.index("</nav>")]
