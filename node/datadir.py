"""The data directory: where a node keeps its configuration, keys, database, vault and logs.

    ftm-data/                 0700
    ├── ftm.toml              configuration (generated with every setting commented at its default)
    ├── node.key              the node's Ed25519 identity (0600)
    ├── master.key            local custody master key (0600; absent when FTM_MASTER_KEY is used)
    ├── ftm.db, ftm.db-wal    SQLite: public metadata, wrapped keys, the signed event log
    ├── vault/<resident>/     sealed persona packages, one file per key epoch
    └── logs/ftm-node.log     structured logs (ids and numbers only)

`docs/data-directory.md` describes the same layout for operators.
"""

from __future__ import annotations

import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from ftm.config.reference import render_toml_template
from ftm.federation.identity import create_node_identity

log = logging.getLogger(__name__)

CONFIG_NAME = "ftm.toml"
NODE_KEY_NAME = "node.key"
DATABASE_NAME = "ftm.db"
VAULT_NAME = "vault"
DEFAULT_DATA_DIR = "ftm-data"


@dataclass(frozen=True, slots=True)
class DataDir:
    root: Path

    @property
    def config_file(self) -> Path:
        return self.root / CONFIG_NAME

    @property
    def node_key(self) -> Path:
        return self.root / NODE_KEY_NAME

    @property
    def database(self) -> Path:
        return self.root / DATABASE_NAME

    @property
    def vault(self) -> Path:
        return self.root / VAULT_NAME

    def resolve(self, relative: str) -> Path:
        """A path from a setting, taken relative to the data directory unless absolute."""
        path = Path(relative)
        return path if path.is_absolute() else self.root / path

    def is_initialised(self) -> bool:
        return self.node_key.exists() and self.config_file.exists()

    def initialise(self) -> bool:
        """Create whatever is missing (directory, config, node key). Returns True if anything was created.

        The master key and database are created by the node on first open, because they depend on settings
        (custody mode, key file location) that the operator may edit in the fresh config first.
        """
        created = False
        if not self.root.exists():
            self.root.mkdir(parents=True, mode=0o700)
            created = True
        os.chmod(self.root, 0o700)  # the directory holds keys; nobody else needs to list it
        (self.root / VAULT_NAME).mkdir(mode=0o700, exist_ok=True)
        if not self.config_file.exists():
            self.config_file.write_text(render_toml_template(), encoding="utf-8")
            created = True
        if not self.node_key.exists():
            identity = create_node_identity(self.node_key)
            log.info("node identity created", extra={"node_id": identity.node_id})
            created = True
        return created


def default_data_dir(env: dict[str, str] | os._Environ[str]) -> Path:
    return Path(env.get("FTM_DATA_DIR") or DEFAULT_DATA_DIR)


def new_secret() -> str:
    """A random secret for node_meta (e.g. the key that hashes uploader addresses for quotas)."""
    return secrets.token_hex(32)
