"""Invariant 1: persona plaintext never reaches disk, logs, the database or the network except as ciphertext.

A canary string is planted in every private field of uploads of several formats, good and bad. Afterwards every
byte under the data directory (database, WAL, vault, logs, keys), every captured log record and every HTTP
response body is searched for it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from ftm.config.loading import load_settings
from ftm.federation.clock import FakeClock
from ftm.node.app import open_node
from ftm.node.datadir import DataDir
from ftm.node.logs import configure_logging
from ftm.node.serving import create_web_app
from tests.factories import CANARY, make_native_intake, native_bytes
from tests.node.http.test_intake_formats import format_uploads, upload_form

CANARY_BYTES = CANARY.encode()


@pytest.fixture
def node_logs(data_dir: DataDir) -> Iterator[Path]:
    log_file = data_dir.root / "logs" / "ftm-node.log"
    configure_logging("DEBUG", log_file, console=True)
    yield log_file
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_ftm", False):
            root.removeHandler(handler)
            handler.close()


def files_under(root: Path) -> list[Path]:
    return [path for path in root.rglob("*") if path.is_file()]


async def test_canary_never_leaves_memory_unencrypted(
    data_dir: DataDir,
    clock: FakeClock,
    node_logs: Path,
    aiohttp_client: object,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    assert logging.getLogger("aiosqlite").getEffectiveLevel() == logging.WARNING  # it would log SQL parameters
    settings = load_settings(None, {"FTM_INTAKE_DAILY_QUOTA_PER_UPLOADER": "0"})
    responses: list[bytes] = []
    async with open_node(data_dir, settings, env={}, clock=clock) as node:
        client: TestClient = await aiohttp_client(create_web_app(node))  # type: ignore[operator,type-arg]

        async def post(body: bytes, **query: str) -> int:
            response = await client.post("/api/v1/sanctuary/intake", data=body, params=query)
            responses.append(await response.read())
            return response.status

        admitted = [await post(native_bytes()), await post(native_bytes(persona_name="Second", submitted_by="ai"))]
        assert admitted == [201, 201]
        # Every supported format, its content fields planted with the canary, through the multipart form.
        for _format, data, filename, fields in format_uploads(marker=CANARY):
            response = await upload_form(client, data, filename, fields)
            responses.append(await response.read())
            assert response.status == 201, filename
        # Refused uploads full of the canary: malformed, wrong types, no consent, and a wrong-typed nested field.
        refusals = [
            await post(native_bytes()[:-5]),
            await post(native_bytes(uploader_consent=False)),
            await post(json.dumps(make_native_intake(chat_history=[{"role": CANARY, "content": 5}])).encode()),
            await post(json.dumps({"spec": "chara_card_v2", "data": {"name": CANARY, "description": 7}}).encode()),
            await post(CANARY_BYTES * 10),
        ]
        assert all(status >= 400 for status in refusals)

        for path in ("/api/v1/residents", "/api/v1/stats", "/healthz"):
            responses.append(await (await client.get(path)).read())
        resident_ids = [r["sanctuary_id"] for r in json.loads(responses[-3])["residents"]]
        assert len(resident_ids) == 2 + len(format_uploads())
        for resident_id in resident_ids:
            responses.append(await (await client.get(f"/api/v1/residents/{resident_id}")).read())
            # The package really holds the canary: the search below would otherwise prove nothing.
            package = await node.packages.open(resident_id)
            assert CANARY in repr(package)
        await client.close()

    written = files_under(data_dir.root)
    assert any(p.suffix == ".ftmv" for p in written) and any(p.name == "ftm.db" for p in written)
    assert node_logs.exists() and node_logs.stat().st_size > 0
    for path in written:
        assert CANARY_BYTES not in path.read_bytes(), f"canary found in {path.relative_to(data_dir.root)}"
    for record in caplog.records:
        assert CANARY not in record.getMessage() and CANARY not in str(record.__dict__)
    captured = capfd.readouterr()
    assert CANARY not in captured.out and CANARY not in captured.err
    for body in responses:
        assert CANARY_BYTES not in body
