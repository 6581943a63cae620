"""Runtime settings in the database: read fresh on every use, changed with a logged event.

Values are validated with the same rules as file settings (`ftm.config.loading.coerce`). Each change appends a
`setting_changed` event with the old and new value to the signed event log in the same transaction.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from ftm.config.loading import coerce, runtime_field, runtime_settings_from
from ftm.config.settings import RuntimeSettings
from ftm.federation.clock import Clock
from ftm.federation.database import Database
from ftm.federation.eventlog import EventLog


@dataclass(frozen=True, slots=True)
class SettingChange:
    name: str
    old: Any
    new: Any


class RuntimeSettingsStore:
    def __init__(self, db: Database, eventlog: EventLog, clock: Clock) -> None:
        self._db = db
        self._eventlog = eventlog
        self._clock = clock

    async def current(self) -> RuntimeSettings:
        rows = await self._db.fetch_all("SELECT name, value FROM runtime_settings")
        return runtime_settings_from({row["name"]: json.loads(row["value"]) for row in rows})

    async def get(self, name: str) -> Any:
        runtime_field(name)  # unknown names fail with a suggestion
        return getattr(await self.current(), name)

    async def set(self, name: str, raw: str | int, actor: str = "operator") -> SettingChange:
        """Validate and store a new value; the change and who made it go to the event log."""
        spec = runtime_field(name)
        value = coerce(spec, raw, name, "the command line", from_text=True)
        async with self._db.transaction("set_runtime_setting") as tx:
            row = await tx.fetch_one("SELECT value FROM runtime_settings WHERE name = ?", (name,))
            old = json.loads(row["value"]) if row is not None else getattr(RuntimeSettings(), name)
            await tx.execute(
                "INSERT INTO runtime_settings (name, value, updated_at) VALUES (?, ?, ?)"
                " ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                (name, json.dumps(value), int(self._clock.now())),
            )
            await self._eventlog.append(tx, "setting_changed", name, {"old": old, "new": value, "by": actor})
        return SettingChange(name, old, value)

    @staticmethod
    def names() -> list[str]:
        return [f.name for f in dataclasses.fields(RuntimeSettings)]
