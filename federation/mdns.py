"""Zeroconf discovery (`_ftm._tcp.local.`), pinned to the interface of the node's listen address.

`plan_mdns` decides, from the settings and the host's interfaces, whether mDNS runs and on which IPv4 addresses;
`ZeroconfDiscovery` runs it with zeroconf's asyncio API. zeroconf is only ever given that explicit address list,
never its all or default interface choices: a node listening on 127.0.0.1 multicasts on loopback only, and one
listening on a LAN address only on that LAN.

zeroconf's shared receiving socket is bound to 0.0.0.0:5353 whatever the address list says, so after start it is
narrowed (Linux): `IP_MULTICAST_ALL` off, so it gets only the groups it joined itself on our interfaces (not those
another mDNS stack on the host joined elsewhere), and, when every address is on one interface, `SO_BINDTODEVICE`
to that interface, so a unicast query arriving on another interface is never answered. Nothing is registered
before that is done.

What is found is a `PeerHint`, unverified: the consumer fetches the signed descriptor from its URL and checks it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import sys
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import ifaddr
from zeroconf import IPVersion, NonUniqueNameException, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from ftm.config.settings import DiscoverySettings, Settings
from ftm.federation.discovery import (
    SERVICE_TYPE,
    Advert,
    BadAdvert,
    DiscoveryError,
    HintBox,
    PeerHint,
    decode_txt,
    encode_txt,
)

log = logging.getLogger(__name__)

_IP_MULTICAST_ALL = 49  # linux/in.h; Python's socket module does not name it
WILDCARDS = frozenset({"", "0.0.0.0", "::"})  # noqa: S104 - recognised in settings, never bound here


@dataclass(frozen=True, slots=True)
class Interface:
    """One network interface of this host and its IPv4 addresses."""

    name: str
    ipv4: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class MdnsPlan:
    """Where mDNS runs: IPv4 addresses (empty: off, `reason` says why) and the one interface they share, if any."""

    addresses: tuple[str, ...]
    device: str | None
    reason: str

    @property
    def enabled(self) -> bool:
        return bool(self.addresses)

    def local_url(self, port: int) -> str:
        """A base URL on the first mDNS address, for a node that has no public URL of its own to advertise."""
        return f"http://{self.addresses[0]}:{port}"


def host_interfaces() -> list[Interface]:
    """This host's interfaces with IPv4 addresses (a blocking system call: run it off the event loop)."""
    found = []
    for adapter in ifaddr.get_adapters():
        ipv4 = tuple(ip.ip for ip in adapter.ips if isinstance(ip.ip, str))
        if ipv4:
            found.append(Interface(adapter.name, ipv4))
    return found


def plan_mdns(host: str, settings: DiscoverySettings, interfaces: Sequence[Interface]) -> MdnsPlan:
    """Decide where mDNS runs for a node listening on `host`, per the `[discovery]` settings (see there)."""
    if settings.mdns == "off":
        return _off("discovery.mdns is off")
    host = "127.0.0.1" if host == "localhost" else host.strip()
    by_address = {address: iface.name for iface in interfaces for address in iface.ipv4}
    try:
        single = ipaddress.ip_address(host) if host not in WILDCARDS else None
    except ValueError:
        single = None  # a host name: which interface it means is not ours to guess
    if single is not None:
        if single.version != 4:
            return _off(f"http.host {host} is IPv6; mDNS here is IPv4 only")
        if single.is_loopback and settings.mdns == "auto":
            return _off("http.host is loopback, where mDNS reaches only this machine (discovery.mdns = on to use it)")
        # Any 127/8 address is on the loopback interface, which lists only 127.0.0.1.
        device = by_address.get("127.0.0.1" if single.is_loopback else host)
        if device is None:
            return _off(f"no interface of this host has the address {host}")
        return MdnsPlan((host,), device, f"on {device} ({host})")
    return _plan_for_many(host, settings, interfaces, by_address)


def _plan_for_many(
    host: str, settings: DiscoverySettings, interfaces: Sequence[Interface], by_address: dict[str, str]
) -> MdnsPlan:
    wanted = [part.strip() for part in settings.mdns_addresses.split(",") if part.strip()]
    if not wanted and host not in WILDCARDS:
        return _off(f"http.host {host} is a host name; list the addresses to use in discovery.mdns_addresses")
    if not wanted:
        wanted = [a for iface in interfaces for a in iface.ipv4 if not ipaddress.ip_address(a).is_loopback]
    addresses = []
    for address in wanted:
        try:
            valid = ipaddress.ip_address(address).version == 4
        except ValueError:
            valid = False
        if not valid:
            return _off(f"discovery.mdns_addresses has {address!r}, which is not an IPv4 address")
        if address not in by_address:
            log.warning("mDNS: no interface of this host has %s (from discovery.mdns_addresses); skipped", address)
            continue
        addresses.append(address)
    if not addresses:
        return _off("no IPv4 address of this host to use")
    devices = {by_address[a] for a in addresses}
    device = devices.pop() if len(devices) == 1 else None
    return MdnsPlan(tuple(addresses), device, f"on {device or 'several interfaces'} ({', '.join(addresses)})")


def _off(reason: str) -> MdnsPlan:
    return MdnsPlan((), None, reason)


async def create_mdns_discovery(settings: Settings) -> ZeroconfDiscovery | None:
    """The node's mDNS discovery per its settings, or None (logged with the reason) when mDNS is off."""
    interfaces = await asyncio.to_thread(host_interfaces)
    plan = plan_mdns(settings.http.host, settings.discovery, interfaces)
    if not plan.enabled:
        log.info("mDNS discovery off: %s", plan.reason)
        return None
    log.info("mDNS discovery %s", plan.reason)
    return ZeroconfDiscovery(plan.addresses, device=plan.device)


def instance_name(node_id: str) -> str:
    return f"ftm-{node_id}.{SERVICE_TYPE}"


class ZeroconfDiscovery:
    """`Discovery` by multicast DNS on the given IPv4 addresses only. Sockets open at `start`, not before."""

    def __init__(
        self,
        addresses: Sequence[str],
        *,
        device: str | None = None,
        resolve_timeout: float = 3.0,
        max_resolving: int = 16,
        operation_timeout: float = 15.0,
    ) -> None:
        if not addresses:
            raise ValueError("mDNS needs explicit addresses: it never picks interfaces by itself")
        for address in addresses:
            ip = ipaddress.IPv4Address(address)  # raises on anything but IPv4, before any socket exists
            if ip.is_unspecified or ip.is_multicast:
                # zeroconf would read 0.0.0.0 as "the default interface", which is exactly what it must not pick.
                raise ValueError(f"mDNS needs an interface address, not {address}")
        self._addresses = tuple(addresses)
        self._device = device
        self._resolve_timeout = resolve_timeout
        self._max_resolving = max_resolving
        self._operation_timeout = operation_timeout
        self._box = HintBox()
        self._zc: AsyncZeroconf | None = None
        self._browser: AsyncServiceBrowser | None = None
        self._info: AsyncServiceInfo | None = None
        self._resolving: dict[str, asyncio.Task[None]] = {}

    @property
    def counts(self) -> Counter[str]:
        """accepted, dropped:<why>, rejected:<why> (records that do not decode, or resolve to nothing)."""
        return self._box.counts

    @property
    def confined_to(self) -> str | None:
        """The interface the sockets are bound to, once started (None: several interfaces, or not Linux)."""
        return self._device if self._zc is not None and sys.platform == "linux" else None

    async def start(self) -> None:
        if self._zc is not None:
            return
        zc = AsyncZeroconf(interfaces=list(self._addresses), ip_version=IPVersion.V4Only)
        self._zc = zc
        try:
            await zc.zeroconf.async_wait_for_start(timeout=self._operation_timeout)
            self._confine(zc.zeroconf)
        except BaseException:
            self._zc = None
            await zc.async_close()
            raise
        self._browser = AsyncServiceBrowser(zc.zeroconf, SERVICE_TYPE, handlers=[self._on_change])

    def _confine(self, zc: Zeroconf) -> None:
        if sys.platform != "linux":
            return
        for reader in zc.engine.readers:
            reader.sock.setsockopt(socket.IPPROTO_IP, _IP_MULTICAST_ALL, 0)
            if self._device is not None:
                # Needs CAP_NET_RAW before Linux 5.7; without it, refuse rather than answer on other interfaces.
                reader.sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, self._device.encode())

    async def advertise(self, advert: Advert) -> None:
        zc = self._running()
        info = AsyncServiceInfo(
            SERVICE_TYPE,
            instance_name(advert.node_id),
            port=advert.port,
            properties=encode_txt(advert),
            server=f"ftm-{advert.node_id}.local.",
            parsed_addresses=list(self._addresses),
        )
        self._box.ignore_own(advert.public_key)
        if self._info is not None and self._info.name != info.name:
            await self.withdraw()
        try:
            async with asyncio.timeout(self._operation_timeout):
                if self._info is None:
                    # Probes first (RFC 6762 §8.1), so a second host claiming this node's name is found out.
                    await (await zc.async_register_service(info))
                else:
                    await (await zc.async_update_service(info))
        except NonUniqueNameException:
            raise DiscoveryError(f"another host on the local network already advertises {info.name}") from None
        except TimeoutError:
            raise DiscoveryError(f"advertising {info.name} took longer than {self._operation_timeout}s") from None
        self._info = info

    async def withdraw(self) -> None:
        if self._info is None or self._zc is None:
            return
        info, self._info = self._info, None
        async with asyncio.timeout(self._operation_timeout):
            await (await self._zc.async_unregister_service(info))  # sends goodbyes (TTL 0)

    def hints(self) -> AsyncIterator[PeerHint]:
        return self._box.stream()

    def known(self) -> tuple[PeerHint, ...]:
        return self._box.known()

    async def close(self) -> None:
        zc, browser = self._zc, self._browser
        self._browser = None
        if browser is not None:
            await browser.async_cancel()
        for task in self._resolving.values():
            task.cancel()
        await asyncio.gather(*self._resolving.values(), return_exceptions=True)
        if zc is not None:
            with contextlib.suppress(TimeoutError):
                await self.withdraw()
            self._zc = None
            await zc.async_close()
        self._box.close()

    def _running(self) -> AsyncZeroconf:
        if self._zc is None:
            raise RuntimeError("start the discovery first")
        return self._zc

    def _on_change(self, zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange) -> None:
        # Called by zeroconf on the event loop, for every record change of our service type on the wire.
        if state_change is ServiceStateChange.Removed:
            if (pending := self._resolving.get(name)) is not None:
                pending.cancel()  # or its late answer would bring back a peer that just said goodbye
            self._box.forget(name)
            return
        if name in self._resolving:
            return
        if len(self._resolving) >= self._max_resolving:
            self._box.counts["dropped:busy"] += 1
            return
        task = asyncio.create_task(self._resolve(zeroconf, name), name=f"mdns-resolve {name}")
        self._resolving[name] = task
        task.add_done_callback(lambda _: self._resolving.pop(name, None))

    async def _resolve(self, zeroconf: Zeroconf, name: str) -> None:
        info = AsyncServiceInfo(SERVICE_TYPE, name)
        if not await info.async_request(zeroconf, self._resolve_timeout * 1000):
            self._box.reject("unresolved")
            return
        try:
            hint = decode_txt(info.properties, "mdns")
        except BadAdvert as bad:
            log.debug("mDNS: ignored %s: %s", name, bad.reason)
            self._box.reject(bad.reason)
            return
        if name.lower() != instance_name(hint.node_id):
            self._box.reject("name")
            return
        self._box.offer(name, hint)
