"""The `ftm-keeper` command line, run as real processes: help, init, status, enrolment at a node (one that is
down, one that refuses, one that accepts), pairing by hand, and `run` serving a host until SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import stat
import sys
import time
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from pytest_aiohttp.plugin import AiohttpServer

from ftm.federation import codec, gossipwire
from ftm.federation.clock import SystemClock
from ftm.federation.identity import SigningKey
from ftm.federation.signedrequests import RequestSigner, RequestVerifier, SignedRequestError, parse_b64url
from ftm.keeper import protocol
from ftm.keeper.protocol import ENROL_PATH, Enrol, EnrolAnswer, Holdings, HoldingsAnswer
from tests.integration.test_cli import free_port
from tests.keeper.keeperparties import deal_epoch

FTM_KEEPER = str(Path(sys.executable).with_name("ftm-keeper"))
TOKEN = "ftm_keeper_good-token"


def _env(**settings: str) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("FTM_")} | settings


async def keeper_cli(*args: str, **env: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        FTM_KEEPER, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=_env(**env)
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize(
    "command", [[], ["init"], ["enrol"], ["run"], ["status"], ["hosts"], ["hosts", "add"], ["hosts", "list"]]
)
async def test_every_command_has_useful_help(command: list[str]) -> None:
    code, out, _ = await keeper_cli(*command, "--help")
    assert code == 0 and len(out.splitlines()) > 5
    assert "--data-dir" in out or "commands" in out


@pytest.mark.slow
async def test_init_status_and_a_missing_data_directory(tmp_path: Path) -> None:
    data = tmp_path / "keeper"
    code, out, _ = await keeper_cli("init", "--data-dir", str(data), "--public-url", "https://keeper.example")
    assert code == 0 and "Initialised" in out and "ftm-keeper run" in out
    assert mode(data) == 0o700 and mode(data / "keeper.key") == 0o600 and mode(data / "keeper.db") == 0o600
    assert (data / "keeper.key").read_text().startswith("ftm-keeper-key-v1:")
    assert 'public_url = "https://keeper.example"' in (data / "keeper.toml").read_text()
    again = await keeper_cli("init", "--data-dir", str(data))
    assert again[0] == 0 and "Already initialised" in again[1]

    code, out, _ = await keeper_cli("status", "--data-dir", str(data), "--json")
    status = json.loads(out)
    assert code == 0 and status["keeper_id"] in again[1] and status["hosts"] == [] and status["epochs"] == []
    assert (status["event_log_chain"], status["listening"]) == ("valid", False)
    code, _, err = await keeper_cli("status", "--data-dir", str(tmp_path / "nothing"))
    assert code == 2 and "is not initialised" in err


class FakeNode:
    """A node's side of pairing, built from the real federation parts: the hello and the enrolment route."""

    def __init__(self) -> None:
        self.key = SigningKey.generate()
        self.url = ""
        self.enrolled: list[tuple[bytes, Enrol]] = []
        self.verifier = RequestVerifier(self.key.public_key, SystemClock())

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get(gossipwire.API_PREFIX + gossipwire.PATH_HELLO, self.hello)
        app.router.add_post(ENROL_PATH, self.enrol)
        return app

    async def hello(self, request: web.Request) -> web.Response:
        challenge = parse_b64url(request.query["challenge"], gossipwire.CHALLENGE_BYTES)
        assert challenge is not None
        signed = gossipwire.sign_hello(self.key, self.url, int(time.time()), challenge)
        return web.Response(body=codec.encode(signed), content_type=gossipwire.CONTENT_TYPE)

    async def enrol(self, request: web.Request) -> web.Response:
        try:
            verified = await self.verifier.verify(request)
        except SignedRequestError as error:
            return web.json_response({"error": {"code": error.code, "message": error.message}}, status=error.status)
        enrol = protocol.decode(Enrol, verified.body)
        if enrol.token != TOKEN:
            return web.json_response({"error": {"code": "unknown_token", "message": "no such Keeper"}}, status=403)
        self.enrolled.append((verified.key, enrol))
        answer = EnrolAnswer(self.key.public_key, self.url, "keeper-registration-7")
        return web.Response(body=protocol.encode(answer), content_type=protocol.CONTENT_TYPE)


@pytest.mark.slow
async def test_enrolment_fails_clearly_then_succeeds_with_enrol(tmp_path: Path, aiohttp_server: AiohttpServer) -> None:
    data = str(tmp_path / "keeper")
    down = f"http://127.0.0.1:{free_port()}"
    code, out, err = await keeper_cli("init", "--data-dir", data, "--node", down, "--token", TOKEN)
    assert code == 1 and "Initialised" in out
    assert "enrolment failed" in err and "could not be reached" in err and "ftm-keeper enrol" in err
    assert (Path(data) / "keeper.key").exists()

    node = FakeNode()
    server = await aiohttp_server(node.app(), host="127.0.0.1")
    node.url = str(server.make_url("")).rstrip("/")
    code, _, err = await keeper_cli("enrol", "--data-dir", data, "--node", node.url, "--token", "wrong")
    assert code == 1 and "refused the enrolment (403 unknown_token: no such Keeper)" in err

    code, out, _ = await keeper_cli("enrol", "--data-dir", data, "--node", node.url, "--token", TOKEN)
    assert code == 0 and f"Enrolled at {node.url}" in out and node.key.public_key.hex() in out
    [(keeper_key, enrol)] = node.enrolled
    assert enrol.keeper_url == "http://127.0.0.1:8090"  # http.public_url is empty: the listener's address

    status = json.loads((await keeper_cli("status", "--data-dir", data, "--json"))[1])
    assert status["keeper_key"] == keeper_key.hex()
    [host] = status["hosts"]
    assert (host["key"], host["url"], host["registration"]) == (
        node.key.public_key.hex(),
        node.url,
        "keeper-registration-7",
    )

    code, out, _ = await keeper_cli("hosts", "list", "--data-dir", data)
    assert code == 0 and node.url in out and "keeper-registration-7" in out


@pytest.mark.slow
async def test_hosts_add_learns_the_key_from_the_hello_or_takes_it(
    tmp_path: Path, aiohttp_server: AiohttpServer
) -> None:
    data = str(tmp_path / "keeper")
    assert (await keeper_cli("init", "--data-dir", data))[0] == 0
    node = FakeNode()
    server = await aiohttp_server(node.app(), host="127.0.0.1")
    node.url = str(server.make_url("")).rstrip("/")
    code, out, _ = await keeper_cli("hosts", "add", node.url, "--data-dir", data)
    assert code == 0 and f"Added host {node.url} (key {node.key.public_key.hex()})" in out
    mismatch = await keeper_cli("hosts", "add", node.url, "--key", "ab" * 32, "--data-dir", data)
    assert mismatch[0] == 1 and "not the one given" in mismatch[2]
    down = f"http://127.0.0.1:{free_port()}"
    assert (await keeper_cli("hosts", "add", down, "--data-dir", data))[0] == 1
    code, out, _ = await keeper_cli("hosts", "add", down, "--key", "cd" * 32, "--data-dir", data)
    assert code == 0 and "pinning the key given" in out
    hosts = json.loads((await keeper_cli("hosts", "list", "--json", "--data-dir", data))[1])
    assert sorted(h["key"] for h in hosts) == sorted([node.key.public_key.hex(), "cd" * 32])


@pytest.mark.slow
async def test_run_serves_a_host_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    data = tmp_path / "keeper"
    host = SigningKey.generate()
    assert (await keeper_cli("init", "--data-dir", str(data)))[0] == 0
    down = f"http://127.0.0.1:{free_port()}"
    assert (await keeper_cli("hosts", "add", down, "--key", host.public_key.hex(), "--data-dir", str(data)))[0] == 0
    port = str(free_port())
    process = await asyncio.create_subprocess_exec(
        FTM_KEEPER, "run", "--data-dir", str(data), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env=_env(FTM_KEEPER_HTTP_PORT=port, FTM_KEEPER_STRANGERS_BURST_PER_KEY="2"),
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:
            keeper_key = await _wait_for_health(session, base)
            epoch = deal_epoch(keeper_key, length=1_500_000, window=protocol.RunWindow(0, 86_400))
            deposit = epoch.deposit
            signer = RequestSigner(host, SystemClock())

            async def post(path: str, body: bytes, content_type: str = protocol.CONTENT_TYPE) -> bytes:
                url = f"{base}{protocol.PREFIX}{path}"
                headers = signer.headers("POST", url, body, keeper_key) | {"Content-Type": content_type}
                async with session.post(url, data=body, headers=headers) as response:
                    assert response.status == 200, await response.text()
                    return await response.read()

            await post(protocol.PATH_DEPOSIT, protocol.encode(deposit))
            for offset in range(0, len(epoch.vault), protocol.CHUNK_BYTES):
                piece = epoch.vault[offset : offset + protocol.CHUNK_BYTES]
                query = f"{protocol.PATH_DATA}?resident={epoch.resident_id}&epoch=1&offset={offset}"
                await post(query, piece, protocol.DATA_CONTENT_TYPE)
            await post(protocol.PATH_SEAL, protocol.encode(protocol.Seal(1, epoch.resident_id, 1)))
            answer = await post(protocol.PATH_HOLDINGS, protocol.encode(Holdings(1, host.public_key)))
            [entry] = protocol.decode(HoldingsAnswer, answer).entries
            assert (entry.resident_id, entry.state, entry.length) == (epoch.resident_id, "held", 1_500_000)

            # A stranger asking for the share: refused and logged twice (its burst), then 429 and not logged.
            stranger = RequestSigner(SigningKey.generate(), SystemClock())
            ask = protocol.encode(protocol.ReleaseRequest(1, epoch.resident_id, 1, "run", b"\1" * 32, b""))
            url = f"{base}{protocol.PREFIX}{protocol.PATH_RELEASE}"
            statuses = []
            for _ in range(4):
                headers = stranger.headers("POST", url, ask, keeper_key) | {"Content-Type": protocol.CONTENT_TYPE}
                async with session.post(url, data=ask, headers=headers) as response:
                    statuses.append(response.status)
            assert statuses == [403, 403, 429, 429]

            code, out, _ = await keeper_cli("status", "--data-dir", str(data), "--json", FTM_KEEPER_HTTP_PORT=port)
            status = json.loads(out)
            assert code == 0 and status["listening"] is True and status["residents_held"] == 1
            assert status["strangers"] == {"rate_limited": 2, "keys_tracked": 1}
            code, text, _ = await keeper_cli("status", "--data-dir", str(data), FTM_KEEPER_HTTP_PORT=port)
            assert code == 0 and "strangers:       2 requests rate-limited, not logged" in text
            assert status["bytes_held"] == 1_500_000 and status["event_log_chain"] == "valid"
            [held] = status["epochs"]
            assert (held["resident_id"], held["state"], held["last_challenge"]) == (epoch.resident_id, "held", None)
    finally:
        process.send_signal(signal.SIGTERM)
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode == 0, stderr.decode()
    assert f"serving http://127.0.0.1:{port}/keeper/v1/" in stdout.decode() and "Keeper stopped." in stdout.decode()
    assert status["event_log_entries"] == 5  # host added, deposit accepted, seal held, two refusals


async def _wait_for_health(session: aiohttp.ClientSession, base: str) -> bytes:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            async with session.get(base + "/healthz") as response:
                return bytes.fromhex((await response.json())["keeper_key"])
        except aiohttp.ClientError:
            await asyncio.sleep(0.1)
    raise AssertionError("the keeper did not start listening within 30 s")
