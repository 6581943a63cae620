"""Which keepers a `ftm-node restore` command talks to, and as whom: `--keeper URL` (repeat) and `--keepers-file`
(one a line: URL, optionally followed by its key in hex; a key not given is read from the keeper's `/healthz`), and
the keeper client signing as this node or as the old host. Part of `ftm.node.restorecli`."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from ftm.federation.identity import SigningKey
from ftm.node.app import Node
from ftm.node.errors import ConfigurationError
from ftm.node.keeperclient import KeeperAddress, KeeperCallError, KeeperClient

KEY_HEX_CHARS = 64


def add_keeper_options(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    parser.add_argument("--keeper", action="append", default=[], metavar="URL", help="a keeper's base URL (repeat)")
    parser.add_argument(
        "--keepers-file",
        type=Path,
        metavar="FILE",
        help="keepers, one a line: URL, optionally followed by its key in hex (otherwise asked at /healthz)",
    )
    parser.set_defaults(keepers_required=required)


def keeper_client(node: Node, seed: bytes) -> KeeperClient:
    return KeeperClient(SigningKey(seed), node.clock, timeout=float(node.settings.custody.request_timeout_seconds))


async def named_keepers(client: KeeperClient, args: argparse.Namespace) -> list[KeeperAddress]:
    """The keepers named on the command line and in the keepers file; a key not given is asked for."""
    named: list[tuple[str, bytes | None]] = [(url, None) for url in args.keeper]
    if args.keepers_file is not None:
        named += _keepers_file(args.keepers_file)
    if not named and getattr(args, "keepers_required", True):
        raise ConfigurationError("name the keepers: --keeper URL (repeat) or --keepers-file FILE")
    urls = list(dict.fromkeys(url.rstrip("/") for url, _ in named))
    given = {url.rstrip("/"): key for url, key in named if key is not None}

    async def address(url: str) -> KeeperAddress:
        if not url.startswith(("http://", "https://")):
            raise ConfigurationError(f"{url!r} is not an http(s) URL")
        return KeeperAddress(given[url] if url in given else await client.keeper_key(url), url)

    found = await asyncio.gather(*(address(url) for url in urls), return_exceptions=True)
    keepers = []
    for url, result in zip(urls, found, strict=True):
        if isinstance(result, KeeperCallError):
            print(f"ftm-node: keeper {url} is left out: {result.message}", file=sys.stderr)
        elif isinstance(result, BaseException):
            raise result
        else:
            keepers.append(result)
    return keepers


def _keepers_file(path: Path) -> list[tuple[str, bytes | None]]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise ConfigurationError(f"cannot read {path}: {error.strerror}") from None
    named: list[tuple[str, bytes | None]] = []
    for number, line in enumerate(lines, start=1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        if len(words) > 2:
            raise ConfigurationError(f"{path}:{number}: a line is a URL, optionally followed by the keeper's key")
        named.append((words[0], key_hex(words[1], f"{path}:{number}") if len(words) == 2 else None))
    return named


def key_hex(text: str, what: str) -> bytes:
    try:
        key = bytes.fromhex(text.strip())
    except ValueError:
        key = b""
    if len(key) != KEY_HEX_CHARS // 2:
        raise ConfigurationError(f"{what}: a key is {KEY_HEX_CHARS} hex digits")
    return key
