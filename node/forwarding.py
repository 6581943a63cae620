"""Where this node sends the visitors of residents who moved away: resident id → the base URL of its new home.

Read once from the database on first use, then kept by the moves themselves (a departure adds its resident, an
arrival of a resident that once left removes it), so the public pages pay a dictionary lookup, not a query.
"""

from __future__ import annotations

import asyncio

from ftm.node.directory import web_url
from ftm.node.store.moves import MoveStore


class Forwarding:
    def __init__(self, store: MoveStore) -> None:
        self._store = store
        self._homes: dict[str, str] | None = None
        self._loading = asyncio.Lock()

    async def home_of(self, resident_id: str) -> str | None:
        """The new home's base URL, fit to be a link, or None when the resident did not move away from here."""
        if self._homes is None:
            async with self._loading:
                if self._homes is None:
                    self._homes = {rid: url for rid, url in (await self._store.forwarding()).items() if web_url(url)}
        home = self._homes.get(resident_id)
        return None if home is None else web_url(home)

    def moved(self, resident_id: str, url: str) -> None:
        if self._homes is not None and web_url(url):
            self._homes[resident_id] = url

    def arrived(self, resident_id: str) -> None:
        if self._homes is not None:
            self._homes.pop(resident_id, None)
