"""Discovery: the TXT codec, the in-memory fake callers are tested with, and real mDNS inside a private netns.

The real multicast tests never touch this machine's interfaces: they re-run tests/federation/netns_mdns.py under
`unshare -n` (or `unshare -rn` without root), in a fresh network namespace that the script checks holds nothing
but `lo` before it opens a socket. Where no namespace can be made they skip and say why.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ftm.federation.discovery import (
    MAX_URL_CHARS,
    Advert,
    BadAdvert,
    HintBox,
    MemoryDiscovery,
    MemoryLan,
    PeerHint,
    decode_txt,
    encode_txt,
)
from ftm.federation.identity import SigningKey, derive_id

NETNS_SCRIPT = Path(__file__).with_name("netns_mdns.py")
EXIT_REFUSED, EXIT_SETUP = 3, 4  # as in netns_mdns.py


def make_advert(port: int = 8080, **overrides: object) -> Advert:
    fields: dict[str, object] = {
        "public_key": SigningKey.generate().public_key,
        "url": f"http://127.0.0.1:{port}",
        "port": port,
    }
    fields.update(overrides)
    return Advert(**fields)  # type: ignore[arg-type]


def txt_bytes(fields: dict[str, str]) -> dict[bytes, bytes | None]:
    return {key.encode(): value.encode() for key, value in fields.items()}


# --- the TXT record ---------------------------------------------------------------------------------------------


def test_txt_round_trip_keeps_key_and_url_and_stays_small() -> None:
    advert = make_advert(url="https://sanctuary.example:8443")
    txt = encode_txt(advert)
    assert set(txt) == {"v", "id", "pk", "url"} and txt["v"] == "1" and txt["id"] == advert.node_id
    hint = decode_txt(txt_bytes(txt), "mdns")
    assert hint == PeerHint(advert.public_key, "https://sanctuary.example:8443", "mdns")
    assert hint.node_id == derive_id("node", advert.public_key)
    # Each TXT string is length-prefixed: the whole record fits many times over in one mDNS packet.
    assert sum(1 + len(key) + 1 + len(value) for key, value in txt.items()) < 150


def test_unknown_txt_keys_are_ignored_for_later_versions() -> None:
    advert = make_advert()
    hint = decode_txt({**txt_bytes(encode_txt(advert)), b"later": b"x", b"flag": None}, "mdns")
    assert hint.public_key == advert.public_key


def _altered(**changes: str) -> dict[bytes, bytes | None]:
    txt = encode_txt(make_advert())
    txt.update(changes)
    return txt_bytes(txt)


@pytest.mark.parametrize(
    ("properties", "reason"),
    [
        (_altered(v="2"), "version"),
        ({}, "version"),
        (_altered(pk="!!not base64!!"), "public-key"),
        (_altered(pk=base64.urlsafe_b64encode(b"k" * 31).decode()), "public-key"),
        (_altered(id="a" * 26), "node-id"),
        (_altered(url="javascript:alert(1)"), "url"),
        (_altered(url="http://user:pw@127.0.0.1:1"), "url"),
        (_altered(url="http://127.0.0.1:1/?q=1"), "url"),
        (_altered(url="http://" + "a" * MAX_URL_CHARS), "url"),
        ({**_altered(), b"url": "http://é.example".encode()}, "not-ascii"),
    ],
)
def test_malformed_txt_is_refused_with_a_reason(properties: dict[bytes, bytes | None], reason: str) -> None:
    with pytest.raises(BadAdvert) as caught:
        decode_txt(properties, "mdns")
    assert caught.value.reason == reason


@pytest.mark.parametrize(
    "overrides",
    [{"public_key": b"short"}, {"url": "ftp://127.0.0.1"}, {"url": "http://127.0.0.1/#x"}, {"port": 0}],
)
def test_an_advert_is_checked_when_made(overrides: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"advert|public key"):
        make_advert(**overrides)


# --- the in-memory fake ------------------------------------------------------------------------------------------


async def test_nodes_on_one_memory_lan_find_each_other_but_not_themselves() -> None:
    lan = MemoryLan()
    a, b = MemoryDiscovery(lan), MemoryDiscovery(lan)
    await a.start()
    await b.start()
    advert_a, advert_b = make_advert(8001), make_advert(8002)
    await a.advertise(advert_a)
    await b.advertise(advert_b)
    hint = await asyncio.wait_for(anext(a.hints()), 1)
    assert (hint.public_key, hint.url, hint.source) == (advert_b.public_key, advert_b.url, "memory")
    assert [h.public_key for h in a.known()] == [advert_b.public_key]
    assert [h.public_key for h in b.known()] == [advert_a.public_key]
    await a.close()
    await b.close()


async def test_a_late_joiner_sees_what_is_already_advertised() -> None:
    lan = MemoryLan()
    early = MemoryDiscovery(lan)
    await early.start()
    advert = make_advert()
    await early.advertise(advert)
    late = MemoryDiscovery(lan)
    await late.start()
    assert [h.url for h in late.known()] == [advert.url]
    await late.close()
    await early.close()


async def test_only_changes_are_news_and_a_withdrawal_is_forgotten() -> None:
    lan = MemoryLan()
    watcher, node = MemoryDiscovery(lan), MemoryDiscovery(lan)
    await watcher.start()
    await node.start()
    advert = make_advert(8001)
    await node.advertise(advert)
    await node.advertise(advert)  # a re-announcement: not news
    moved = Advert(advert.public_key, "http://127.0.0.1:9001", 9001)
    await node.advertise(moved)
    await node.withdraw()
    assert watcher.known() == ()
    await watcher.close()
    seen = [hint.url async for hint in watcher.hints()]  # ends at close
    assert seen == [advert.url, moved.url]
    assert watcher.counts["accepted"] == 2
    await node.close()


async def test_the_hint_queue_and_the_peer_list_are_bounded() -> None:
    box = HintBox(max_known=5, queue_size=3)
    adverts = [make_advert(8000 + i) for i in range(7)]
    for advert in adverts:
        box.offer(advert.node_id, decode_txt(txt_bytes(encode_txt(advert)), "memory"))
    assert [hint.url for hint in box.known()] == [advert.url for advert in adverts[:5]]
    assert box.counts == {"accepted": 5, "dropped:queue-full": 2, "dropped:too-many": 2}
    stream = box.stream()
    queued = [(await asyncio.wait_for(anext(stream), 1)).url for _ in range(3)]
    assert queued == [advert.url for advert in adverts[:3]]
    box.close()
    assert [hint async for hint in stream] == []


# --- real mDNS in a private network namespace --------------------------------------------------------------------


@pytest.fixture(scope="module")
def netns_prefix() -> list[str]:
    """`unshare -n` as root, else `unshare -rn` (a user namespace that maps us to root); skip if neither works."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip("real mDNS tests need util-linux `unshare` and iproute2 `ip`")
    reasons = []
    for prefix in (["unshare", "-n"], ["unshare", "-r", "-n"]):
        probe = subprocess.run([*prefix, "true"], capture_output=True, text=True, timeout=10)
        if probe.returncode == 0:
            return prefix
        reasons.append(f"`{' '.join(prefix)}`: {probe.stderr.strip() or probe.returncode}")
    pytest.skip("cannot create a private network namespace here: " + "; ".join(reasons))


def run_netns_script(prefix: list[str], before: str = "") -> subprocess.CompletedProcess[str]:
    script = [sys.executable, "-W", "error", str(NETNS_SCRIPT), os.readlink("/proc/self/ns/net")]
    # `before` runs in the new namespace first (as a shell command), then the script replaces the shell.
    command = [*prefix, "sh", "-c", f'{before} && exec "$@"', "sh", *script] if before else [*prefix, *script]
    return subprocess.run(command, capture_output=True, text=True, timeout=90)


@pytest.mark.netns
@pytest.mark.slow
def test_two_nodes_on_loopback_find_each_other_by_real_mdns(netns_prefix: list[str]) -> None:
    result = run_netns_script(netns_prefix)
    if result.returncode == EXIT_REFUSED:
        pytest.fail(f"the namespace was not private or held more than lo, so nothing ran: {result.stderr}")
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert seen["netns"] != seen["parent_netns"]
    assert seen["plan"] == {"addresses": ["127.0.0.1"], "device": "lo"}
    assert seen["bound_devices"] and set(seen["bound_devices"]) == {"lo"}
    assert seen["a_known"] == ["http://127.0.0.1:18002"] and seen["b_known"] == ["http://127.0.0.1:18001"]
    assert seen["a_first_hint"]["url"] == "http://127.0.0.1:18002" and seen["a_first_hint"]["source"] == "mdns"
    assert seen["a_known_after_update"] == ["http://127.0.0.1:18012"]
    assert seen["a_known_after_withdraw"] == []
    assert seen["a_counts"]["rejected:public-key"] >= 1 and seen["a_counts"]["accepted"] == 2


@pytest.mark.netns
@pytest.mark.slow
def test_the_mdns_script_refuses_a_namespace_with_another_interface(netns_prefix: list[str]) -> None:
    # A second interface, made inside the private namespace only; kernels differ in which types they offer.
    add = " || ".join(f"ip link add ftmtest0 type {kind} 2>/dev/null" for kind in ("dummy", "bridge", "ifb"))
    probe = subprocess.run([*netns_prefix, "sh", "-c", add], capture_output=True, text=True, timeout=10)
    if probe.returncode != 0:
        pytest.skip("this kernel offers no dummy, bridge or ifb interface to plant in the namespace")
    result = run_netns_script(netns_prefix, before=add)
    assert result.returncode == EXIT_REFUSED, result.stderr
    assert json.loads(result.stderr)["refused"]["interfaces"] == ["ftmtest0", "lo"]
    assert result.stdout == ""


def test_the_mdns_script_refuses_to_run_in_the_callers_namespace() -> None:
    # Safe anywhere: it checks before it opens any socket.
    script = [sys.executable, str(NETNS_SCRIPT), os.readlink("/proc/self/ns/net")]
    result = subprocess.run(script, capture_output=True, text=True, timeout=30)
    assert result.returncode == EXIT_REFUSED
    assert json.loads(result.stderr)["refused"]["netns"] == os.readlink("/proc/self/ns/net")
