"""Local custody: wrapped epoch keys that open only for their resident and epoch, and the master key file."""

from __future__ import annotations

import base64
import re
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ftm.node.custody import (
    LOCAL_RECORD_SIZE,
    MASTER_KEY_PREFIX,
    Custody,
    CustodyIntegrityError,
    LocalCustody,
    create_master_key,
    load_master_key,
)
from ftm.node.errors import ConfigurationError, IntegrityError

DOCS = Path(__file__).resolve().parents[2] / "docs" / "vault.md"
MASTER = bytes(range(100, 132))
EPOCH_KEY = bytes(range(32))


def make_custody(master: bytes = MASTER) -> Custody:
    return LocalCustody(master)


async def test_round_trip() -> None:
    custody = make_custody()
    assert custody.mode == "local"
    record = await custody.seal_epoch_key("alice", 3, EPOCH_KEY)
    assert len(record) == LOCAL_RECORD_SIZE == 61
    assert record[0] == 1
    assert EPOCH_KEY not in record
    assert await custody.open_epoch_key("alice", 3, record) == EPOCH_KEY


async def test_records_use_fresh_nonces() -> None:
    custody = make_custody()
    first = await custody.seal_epoch_key("alice", 3, EPOCH_KEY)
    second = await custody.seal_epoch_key("alice", 3, EPOCH_KEY)
    assert first != second


async def test_wrong_master_key() -> None:
    record = await make_custody().seal_epoch_key("alice", 3, EPOCH_KEY)
    with pytest.raises(CustodyIntegrityError, match="wrong master key") as caught:
        await make_custody(bytes(32)).open_epoch_key("alice", 3, record)
    assert isinstance(caught.value, IntegrityError)


@pytest.mark.parametrize(("resident_id", "epoch"), [("bob", 3), ("alice", 4), ("alice", 2), ("alicf", 3)])
async def test_record_moved_to_another_resident_or_epoch_fails(resident_id: str, epoch: int) -> None:
    custody = make_custody()
    record = await custody.seal_epoch_key("alice", 3, EPOCH_KEY)
    with pytest.raises(CustodyIntegrityError, match="another resident or epoch"):
        await custody.open_epoch_key(resident_id, epoch, record)


async def test_every_altered_byte_fails() -> None:
    custody = make_custody()
    record = await custody.seal_epoch_key("alice", 3, EPOCH_KEY)
    for position in range(len(record)):
        damaged = bytearray(record)
        damaged[position] ^= 0x01
        with pytest.raises(CustodyIntegrityError):
            await custody.open_epoch_key("alice", 3, bytes(damaged))


@pytest.mark.parametrize("record", [b"", b"\x01" * 60, b"\x01" * 62, b"\x02" + b"\x00" * 60])
async def test_malformed_records_fail(record: bytes) -> None:
    with pytest.raises(CustodyIntegrityError, match="not a version 1 local record"):
        await make_custody().open_epoch_key("alice", 3, record)


async def test_error_messages_never_contain_key_material() -> None:
    custody = make_custody()
    record = await custody.seal_epoch_key("alice", 3, EPOCH_KEY)
    with pytest.raises(CustodyIntegrityError) as caught:
        await make_custody(bytes(32)).open_epoch_key("alice", 3, record)
    message = str(caught.value)
    for secret in (EPOCH_KEY, MASTER, record):
        assert secret.hex() not in message
        assert base64.urlsafe_b64encode(secret).decode() not in message


async def test_caller_mistakes_are_value_errors() -> None:
    with pytest.raises(ValueError, match="master key"):
        LocalCustody(b"short")
    custody = make_custody()
    with pytest.raises(ValueError, match="epoch key"):
        await custody.seal_epoch_key("alice", 1, b"short")
    with pytest.raises(ValueError, match="resident id"):
        await custody.seal_epoch_key("../x", 1, EPOCH_KEY)
    with pytest.raises(ValueError, match="epoch"):
        await custody.seal_epoch_key("alice", -1, EPOCH_KEY)


async def test_record_layout_matches_the_document() -> None:
    custody = LocalCustody(MASTER, randbytes=lambda n: bytes(range(0xA0, 0xA0 + n)))
    record = await custody.seal_epoch_key("example-resident", 1, EPOCH_KEY)
    nonce = bytes(range(0xA0, 0xAC))
    aad = b"ftm-custody-local-v1" + bytes([1, 16]) + b"example-resident" + (1).to_bytes(8, "big")
    assert record == b"\x01" + nonce + AESGCM(MASTER).encrypt(nonce, EPOCH_KEY, aad)
    assert record.hex() in re.sub(r"\s+", "", DOCS.read_text(encoding="utf-8"))


# The master key file


def test_create_and_load_master_key(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "master.key"
    create_master_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().startswith(MASTER_KEY_PREFIX + ":")
    key = load_master_key(path, {})
    assert len(key) == 32
    assert load_master_key(path, {}) == key


def test_create_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    create_master_key(path)
    before = path.read_bytes()
    with pytest.raises(ConfigurationError, match="already exists"):
        create_master_key(path)
    assert path.read_bytes() == before


def test_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    create_master_key(path)
    path.chmod(0o644)
    with pytest.raises(ConfigurationError, match=f"chmod 600 {re.escape(str(path))}"):
        load_master_key(path, {})


def test_missing_key_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="does not exist"):
        load_master_key(tmp_path / "master.key", {})


def test_key_file_of_another_kind_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    path.write_text("ftm-node-key-v1:" + base64.urlsafe_b64encode(MASTER).decode() + "\n")
    path.chmod(0o600)
    with pytest.raises(ConfigurationError, match="is not a ftm-master-key-v1 key file"):
        load_master_key(path, {})


def test_env_override_hex(tmp_path: Path) -> None:
    assert load_master_key(tmp_path / "absent.key", {"FTM_MASTER_KEY": MASTER.hex()}) == MASTER


def test_env_override_base64url(tmp_path: Path) -> None:
    text = base64.urlsafe_b64encode(MASTER).decode()
    assert load_master_key(tmp_path / "absent.key", {"FTM_MASTER_KEY": f"  {text}\n"}) == MASTER


def test_env_override_wins_over_the_file(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    create_master_key(path)
    assert load_master_key(path, {"FTM_MASTER_KEY": MASTER.hex()}) == MASTER


@pytest.mark.parametrize("value", ["", "not a key", MASTER.hex()[:-2], (MASTER + b"x").hex()])
def test_bad_env_value(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigurationError, match="FTM_MASTER_KEY must be 32 bytes as hex or base64url"):
        load_master_key(tmp_path / "absent.key", {"FTM_MASTER_KEY": value})


async def test_loaded_key_opens_what_it_sealed(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    create_master_key(path)
    record = await LocalCustody(load_master_key(path, {})).seal_epoch_key("alice", 1, EPOCH_KEY)
    assert await LocalCustody(load_master_key(path, {})).open_epoch_key("alice", 1, record) == EPOCH_KEY
