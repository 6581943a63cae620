"""What every `ftm-node` command module shares: exit codes and the shape of the `prepare` step.

`ftm.node.cli` owns the parser and mounts the command modules (`intakecli`, `settingscli`, `keepercli`, …); each
receives `prepare`, which resolves the data directory, loads settings and sets up logging the same way for all.
"""

from __future__ import annotations

from collections.abc import Callable

from ftm.config.settings import Settings
from ftm.node.datadir import DataDir

EXIT_OK = 0
EXIT_REFUSED = 1  # the node refused the request (bad upload, unknown resident)
EXIT_CONFIG = 2  # usage or configuration errors (unknown setting, unreadable key file, newer database)

Prepare = Callable[..., tuple[DataDir, Settings]]
