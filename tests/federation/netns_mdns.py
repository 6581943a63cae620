"""Real mDNS between two nodes, run by tests/federation/test_discovery.py inside a private network namespace.

Usage: unshare -n python netns_mdns.py PARENT_NETNS

Refuses (exit 3) unless it is in a network namespace other than PARENT_NETNS (the test's own, from
/proc/self/ns/net) whose only interface is `lo`, so multicast from here can never reach a real network. Then it
brings `lo` up — nothing else is needed: zeroconf sets IP_MULTICAST_IF to 127.0.0.1, which routes the group's
packets out of `lo` without a 224.0.0.0/4 route or lo's MULTICAST flag — runs two `ZeroconfDiscovery` nodes on
127.0.0.1 and prints what each saw as one JSON object on stdout. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from zeroconf import IPVersion
from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

from ftm.config.settings import DiscoverySettings
from ftm.federation.discovery import SERVICE_TYPE, Advert, PeerHint
from ftm.federation.identity import SigningKey
from ftm.federation.mdns import ZeroconfDiscovery, host_interfaces, plan_mdns

EXIT_REFUSED = 3  # not in a private namespace with only `lo`: nothing was sent
EXIT_SETUP = 4  # `ip link set lo up` failed
WAIT = 15.0  # seconds for any one thing to be seen; mDNS on lo answers within about a second


def refuse_unless_private(parent_netns: str) -> None:
    names = sorted(name for _, name in socket.if_nameindex())
    own_netns = os.readlink("/proc/self/ns/net")
    if own_netns == parent_netns or names != ["lo"]:
        print(json.dumps({"refused": {"netns": own_netns, "interfaces": names}}), file=sys.stderr)
        sys.exit(EXIT_REFUSED)


def bring_up_loopback() -> None:
    result = subprocess.run(["ip", "link", "set", "lo", "up"], capture_output=True, text=True, timeout=10)
    if result.returncode != 0:
        print(json.dumps({"setup": result.stderr.strip()}), file=sys.stderr)
        sys.exit(EXIT_SETUP)


async def until(what: str, check: Callable[[], bool]) -> None:
    async with asyncio.timeout(WAIT):
        while not check():  # noqa: ASYNC110 - the state polled has no event to wait on
            await asyncio.sleep(0.05)
    print(f"seen: {what}", file=sys.stderr)


def urls(hints: tuple[PeerHint, ...]) -> list[str]:
    return sorted(hint.url for hint in hints)


def bound_devices(discovery: ZeroconfDiscovery) -> list[str]:
    zc = discovery._zc  # the test inspects the sockets it set up; nothing else reaches in
    assert zc is not None
    devices = []
    for reader in zc.zeroconf.engine.readers:
        raw = reader.sock.getsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, 16)
        devices.append(raw.rstrip(b"\x00").decode())
    return devices


async def main(parent_netns: str) -> dict[str, Any]:
    plan = plan_mdns("127.0.0.1", DiscoverySettings(mdns="on"), host_interfaces())
    keys = [SigningKey.generate().public_key for _ in range(2)]
    adverts = [Advert(key, f"http://127.0.0.1:{port}", port) for key, port in zip(keys, (18001, 18002), strict=True)]
    a = ZeroconfDiscovery(plan.addresses, device=plan.device, resolve_timeout=3.0)
    b = ZeroconfDiscovery(plan.addresses, device=plan.device, resolve_timeout=3.0)
    rogue = None
    out: dict[str, Any] = {"plan": {"addresses": list(plan.addresses), "device": plan.device}}
    try:
        await a.start()
        await b.start()
        out["bound_devices"] = bound_devices(a) + bound_devices(b)
        first_hint = asyncio.ensure_future(anext(a.hints()))
        await a.advertise(adverts[0])
        await b.advertise(adverts[1])
        await until("each node found the other", lambda: len(a.known()) == 1 and len(b.known()) == 1)
        hint = await asyncio.wait_for(first_hint, WAIT)
        out["a_first_hint"] = {"public_key": hint.public_key.hex(), "url": hint.url, "source": hint.source}
        out["a_known"], out["b_known"] = urls(a.known()), urls(b.known())

        # A record that does not decode is counted and never becomes a hint.
        rogue = AsyncZeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)
        bad = AsyncServiceInfo(
            SERVICE_TYPE,
            f"ftm-bad.{SERVICE_TYPE}",
            port=18003,
            properties={"v": "1", "id": "x", "pk": "short", "url": "http://127.0.0.1:18003"},
            server="ftm-bad.local.",
            parsed_addresses=["127.0.0.1"],
        )
        await asyncio.wait_for(await rogue.async_register_service(bad), WAIT)
        await until("the malformed advert was rejected", lambda: a.counts["rejected:public-key"] >= 1)

        # A changed advert (new URL) reaches the peer as news.
        await b.advertise(Advert(keys[1], "http://127.0.0.1:18012", 18002))
        await until("the new URL", lambda: urls(a.known()) == ["http://127.0.0.1:18012"])
        out["a_known_after_update"] = urls(a.known())

        # A withdrawn node says goodbye and drops out of its peer's list.
        await b.withdraw()
        await until("the goodbye", lambda: not a.known())
        out["a_known_after_withdraw"] = urls(a.known())
        out["a_counts"] = dict(a.counts)
        out["b_counts"] = dict(b.counts)
    finally:
        if rogue is not None:
            await rogue.async_close()
        await a.close()
        await b.close()
    out["netns"] = os.readlink("/proc/self/ns/net")
    out["parent_netns"] = parent_netns
    return out


if __name__ == "__main__":
    parent = sys.argv[1]
    refuse_unless_private(parent)
    bring_up_loopback()
    refuse_unless_private(parent)
    print(json.dumps(asyncio.run(main(parent))))
