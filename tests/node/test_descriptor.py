"""The node's directory entry: the URL it states, and settings a descriptor cannot carry refused at start."""

from __future__ import annotations

import pytest

from ftm.config.loading import load_settings
from ftm.config.settings import Settings
from ftm.federation.clock import FakeClock
from ftm.node.app import open_node
from ftm.node.datadir import DataDir
from ftm.node.descriptor import public_url
from ftm.node.errors import ConfigurationError


def settings(**env: str) -> Settings:
    return load_settings(None, {f"FTM_{key.upper()}": value for key, value in env.items()})


WILDCARD = "0.0.0.0"  # noqa: S104 - a setting's value, nothing binds it


@pytest.mark.parametrize(
    ("env", "url"),
    [
        ({}, "http://127.0.0.1:8080"),
        ({"http_host": "192.0.2.10", "http_port": "9000"}, "http://192.0.2.10:9000"),
        ({"http_host": WILDCARD}, "http://127.0.0.1:8080"),
        ({"http_host": "::1"}, "http://[::1]:8080"),
        ({"http_host": "sanctuary.lan"}, "http://sanctuary.lan:8080"),
        ({"node_public_url": " https://harbour.example/ ", "http_host": WILDCARD}, "https://harbour.example"),
    ],
)
def test_public_url_is_the_setting_or_derived_from_the_listener(env: dict[str, str], url: str) -> None:
    assert public_url(settings(**env)) == url


@pytest.mark.parametrize(
    ("env", "complaint"),
    [
        ({"node_name": "N" * 101}, "name is longer than 100"),
        ({"node_public_url": "ftp://harbour.example"}, "url must start with http"),
        ({"node_public_url": "https://" + "h" * 500}, "url is longer than 500"),
        ({"node_jurisdiction": "J" * 201}, "jurisdiction is longer than 200"),
        ({"node_operator_statement": "S" * 10_001}, "operator_statement is longer than 10000"),
    ],
)
async def test_settings_a_descriptor_cannot_carry_stop_the_node_at_start(
    data_dir: DataDir, clock: FakeClock, env: dict[str, str], complaint: str
) -> None:
    with pytest.raises(ConfigurationError, match=complaint):
        async with open_node(data_dir, settings(**env), env={}, clock=clock):
            pass


def test_a_negative_capacity_is_refused_when_settings_load() -> None:
    with pytest.raises(ValueError, match=r"node\.capacity"):
        settings(node_capacity="-1")
