"""Client addresses, kept only as keyed hashes: enough to count requests per sender, never enough to name one."""

from __future__ import annotations

import hashlib
import hmac


class AddressHasher:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def ref(self, address: str | None) -> bytes:
        """16 bytes that identify `address` to this node only (the key never leaves the node's database)."""
        return hmac.new(self._key, (address or "unknown").encode(), hashlib.sha256).digest()[:16]
