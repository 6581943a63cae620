"""Where mDNS runs: the plan from settings and interfaces, and the guards that keep zeroconf off default interfaces.

Everything here runs on made-up interface lists and never opens a socket; real multicast is tested only inside a
private network namespace (test_discovery.py).
"""

from __future__ import annotations

import logging

import pytest

from ftm.config.loading import SettingsError, load_settings
from ftm.config.settings import DiscoverySettings
from ftm.federation.mdns import Interface, ZeroconfDiscovery, create_mdns_discovery, plan_mdns

LOOPBACK = Interface("lo", ("127.0.0.1",))
ETH0 = Interface("eth0", ("192.0.2.10",))
WLAN0 = Interface("wlan0", ("198.51.100.7", "198.51.100.8"))
HOST = [LOOPBACK, ETH0, WLAN0]

ANY = "0.0.0.0"  # noqa: S104 - a listen address for the plan to read; nothing binds to it here
AUTO, ON, OFF = DiscoverySettings(), DiscoverySettings(mdns="on"), DiscoverySettings(mdns="off")


def test_the_default_loopback_node_does_not_multicast_unless_asked() -> None:
    plan = plan_mdns("127.0.0.1", AUTO, HOST)
    assert not plan.enabled and "loopback" in plan.reason
    assert plan_mdns("localhost", AUTO, HOST).addresses == ()
    on = plan_mdns("127.0.0.1", ON, HOST)
    assert (on.addresses, on.device) == (("127.0.0.1",), "lo")
    assert on.local_url(8080) == "http://127.0.0.1:8080"
    assert plan_mdns("localhost", ON, HOST).addresses == ("127.0.0.1",)


def test_a_node_on_one_address_uses_that_interface_only() -> None:
    plan = plan_mdns("192.0.2.10", AUTO, HOST)
    assert (plan.addresses, plan.device) == (("192.0.2.10",), "eth0")
    assert plan_mdns("198.51.100.8", AUTO, HOST).device == "wlan0"


def test_off_means_off_whatever_the_address() -> None:
    for host in ("127.0.0.1", "192.0.2.10", ANY):
        plan = plan_mdns(host, OFF, HOST)
        assert not plan.enabled and plan.reason == "discovery.mdns is off"


def test_a_wildcard_listener_names_every_non_loopback_address_explicitly() -> None:
    plan = plan_mdns(ANY, AUTO, HOST)
    assert plan.addresses == ("192.0.2.10", "198.51.100.7", "198.51.100.8")
    assert plan.device is None  # several interfaces: no single device to pin the shared socket to
    assert plan_mdns("::", AUTO, HOST).addresses == plan.addresses
    single = plan_mdns(ANY, AUTO, [LOOPBACK, ETH0])
    assert (single.addresses, single.device) == (("192.0.2.10",), "eth0")
    assert not plan_mdns(ANY, AUTO, [LOOPBACK]).enabled


def test_listed_addresses_narrow_a_wildcard_and_name_a_host_name(caplog: pytest.LogCaptureFixture) -> None:
    chosen = DiscoverySettings(mdns_addresses="198.51.100.7, 203.0.113.99")
    with caplog.at_level(logging.WARNING, logger="ftm.federation.mdns"):
        plan = plan_mdns(ANY, chosen, HOST)
    assert (plan.addresses, plan.device) == (("198.51.100.7",), "wlan0")
    assert "203.0.113.99" in caplog.text
    assert plan_mdns("sanctuary.lan", chosen, HOST).addresses == ("198.51.100.7",)
    assert not plan_mdns("sanctuary.lan", AUTO, HOST).enabled
    bad = plan_mdns(ANY, DiscoverySettings(mdns_addresses="eth0"), HOST)
    assert not bad.enabled and "'eth0'" in bad.reason


def test_addresses_this_host_lacks_and_ipv6_are_refused() -> None:
    assert "no interface" in plan_mdns("192.0.2.99", AUTO, HOST).reason
    assert "IPv6" in plan_mdns("fd00::2", AUTO, HOST).reason


@pytest.mark.parametrize("addresses", [[], [ANY], ["224.0.0.251"], ["::1"], ["eth0"]])
def test_zeroconf_discovery_takes_only_explicit_interface_addresses(addresses: list[str]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message; the refusal is the point
        ZeroconfDiscovery(addresses)


async def test_the_node_factory_follows_the_settings_without_opening_sockets() -> None:
    assert await create_mdns_discovery(load_settings(None, {})) is None  # 127.0.0.1 and auto
    opted_in = await create_mdns_discovery(load_settings(None, {"FTM_DISCOVERY_MDNS": "on"}))
    assert isinstance(opted_in, ZeroconfDiscovery)
    assert opted_in.confined_to is None  # not started: no socket exists yet
    await opted_in.close()


def test_the_mdns_setting_accepts_only_its_choices() -> None:
    assert load_settings(None, {"FTM_DISCOVERY_MDNS": "off"}).discovery.mdns == "off"
    with pytest.raises(SettingsError, match=r"discovery\.mdns"):
        load_settings(None, {"FTM_DISCOVERY_MDNS": "sometimes"})
