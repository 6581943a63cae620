"""The node's directory entry: what its signed NODE_DESCRIPTOR says, read from settings and the node's state.

Fixed at start: name, URL, operator statement, jurisdiction, custody mode, providers, capacity and software
version (settings and what the process could build). Read each time: residents hosted, vetted keepers and the
daily token allocation (runtime settings). `NodeFederation` decides when a new descriptor is signed.
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass, replace

from ftm.config.settings import Settings
from ftm.federation.eventcontent import NodeDescriptorContent
from ftm.node.errors import ConfigurationError
from ftm.node.store.localevents import LocalEventStore
from ftm.node.store.runtime_settings import RuntimeSettingsStore

log = logging.getLogger(__name__)

_WILDCARDS = ("", "0.0.0.0", "::")  # noqa: S104 - recognising a wildcard, not binding one


def public_url(settings: Settings) -> str:
    """`node.public_url`, or one derived from where the public listener binds: `http://host:port` (loopback for a
    wildcard host, since no single address of a wildcard is known to reach the node)."""
    if settings.node.public_url.strip():
        return settings.node.public_url.strip().rstrip("/")
    host = settings.http.host.strip()
    if host in _WILDCARDS:
        host = "127.0.0.1"
    try:
        if ipaddress.ip_address(host).version == 6:
            host = f"[{host}]"
    except ValueError:
        pass  # a host name
    return f"http://{host}:{settings.http.port}"


@dataclass(frozen=True, slots=True)
class DescriptorSource:
    """Builds the node's current `NodeDescriptorContent`."""

    fixed: NodeDescriptorContent  # residents, keepers and token allocation are filled in by `describe`
    store: LocalEventStore
    runtime_settings: RuntimeSettingsStore

    @classmethod
    def create(
        cls,
        settings: Settings,
        *,
        custody_mode: str,
        providers: tuple[str, ...],
        software_version: str,
        store: LocalEventStore,
        runtime_settings: RuntimeSettingsStore,
    ) -> DescriptorSource:
        """Check the settings the descriptor publishes now, so a name or statement too long for an event stops the
        node at start with the setting's name instead of failing later."""
        try:
            fixed = NodeDescriptorContent(
                name=settings.node.name,
                url=public_url(settings),
                operator_statement=settings.node.operator_statement,
                jurisdiction=settings.node.jurisdiction,
                custody_mode=custody_mode,
                keepers=0,
                token_allocation=0,
                providers=tuple(sorted(providers)),
                capacity=settings.node.capacity,
                residents=0,
                software_version=software_version,
            )
        except ValueError as exc:
            raise ConfigurationError(f"the node's directory entry cannot be built from its settings: {exc}") from None
        if not settings.node.public_url.strip() and settings.http.host.strip() in _WILDCARDS:
            log.warning(
                "node.public_url is not set and http.host is a wildcard: peers are told %s, which reaches only this "
                "machine; set node.public_url",
                fixed.url,
            )
        return cls(fixed, store, runtime_settings)

    @property
    def url(self) -> str:
        return self.fixed.url

    async def describe(self) -> NodeDescriptorContent:
        runtime = await self.runtime_settings.current()
        return replace(
            self.fixed,
            keepers=await self.store.vetted_keepers(),
            token_allocation=runtime.daily_tokens,
            residents=await self.store.hosted_count(),
        )
